package netconftest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/netconf"
)

func TestTimersFireInOrderAndStop(t *testing.T) {
	clk := clocktest.New(time.Unix(1000, 0))
	tm := NewTimers(clk)
	var fired []string
	tm.AfterFunc(3*time.Second, func() { fired = append(fired, "c") })
	tm.AfterFunc(1*time.Second, func() { fired = append(fired, "a") })
	stopped := tm.AfterFunc(2*time.Second, func() { fired = append(fired, "stopped") })
	tm.AfterFunc(2*time.Second, func() { fired = append(fired, "b") })
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop should report true once, then false")
	}
	tm.Advance(999 * time.Millisecond)
	if len(fired) != 0 {
		t.Fatalf("fired early: %v", fired)
	}
	tm.Advance(5 * time.Second)
	if !slices.Equal(fired, []string{"a", "b", "c"}) {
		t.Errorf("fired %v, want [a b c]", fired)
	}
	if tm.Waiting() != 0 {
		t.Errorf("Waiting = %d after all fired", tm.Waiting())
	}
}

func TestApplierFail(t *testing.T) {
	a := &Applier{Fail: func(c netconf.Config) error {
		if c.Hostname == "bad" {
			return errors.New("refused")
		}
		return nil
	}}
	if _, ok := a.Current(); ok {
		t.Fatal("Current before any Apply")
	}
	good := netconf.Default([]string{"eth0"})
	if err := a.Apply(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(context.Background(), netconf.Config{Hostname: "bad"}); err == nil {
		t.Fatal("Fail was not consulted")
	}
	if cur, _ := a.Current(); !cur.Equal(good) || len(a.Calls()) != 2 {
		t.Errorf("Current = %+v, calls %d", cur, len(a.Calls()))
	}
	st, err := a.Status(context.Background())
	if err != nil || len(st) != 1 || st[0].Lease == nil || st[0].Lease.State != netconf.LeaseAcquiring {
		t.Errorf("Status = %+v, %v", st, err)
	}
}
