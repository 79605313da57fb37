package regulate

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
)

func TestBanAfterMaxFailuresInWindow(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	r := New(c, ClientLimits)
	for i := 0; i < 4; i++ {
		if ban := r.Fail("a"); ban != 0 {
			t.Fatalf("failure %d banned for %v", i+1, ban)
		}
		c.Advance(time.Minute)
	}
	if ban := r.Fail("a"); ban != 5*time.Minute {
		t.Fatalf("fifth failure: ban %v, want 5m", ban)
	}
	if w := r.Check("a"); w != 5*time.Minute {
		t.Fatalf("Check = %v", w)
	}
	c.Advance(5*time.Minute - time.Second)
	if w := r.Check("a"); w != time.Second {
		t.Fatalf("one second before the end: %v", w)
	}
	c.Advance(time.Second)
	if w := r.Check("a"); w != 0 {
		t.Fatalf("after the ban: %v", w)
	}
	if r.Check("b") != 0 {
		t.Fatal("another key is banned")
	}
}

func TestFailuresOutsideWindowDoNotCount(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	r := New(c, ClientLimits)
	for i := 0; i < 20; i++ {
		if ban := r.Fail("a"); ban != 0 {
			t.Fatalf("failure %d, one every 76 s, banned", i)
		}
		c.Advance(76 * time.Second)
	}
}

func TestRepeatOffendersWaitLonger(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	r := New(c, ClientLimits)
	var bans []time.Duration
	for round := 0; round < 10; round++ {
		var ban time.Duration
		for i := 0; i < 5; i++ {
			ban = r.Fail("a")
		}
		bans = append(bans, ban)
		c.Advance(ban)
	}
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 80 * time.Minute,
		160 * time.Minute, 320 * time.Minute, 640 * time.Minute, 1280 * time.Minute, 24 * time.Hour}
	if fmt.Sprint(bans) != fmt.Sprint(want) {
		t.Fatalf("bans %v, want %v", bans, want)
	}
	// A day of quiet forgives.
	c.Advance(25 * time.Hour)
	for i := 0; i < 5; i++ {
		bans[0] = r.Fail("a")
	}
	if bans[0] != 5*time.Minute {
		t.Fatalf("after a quiet day: %v", bans[0])
	}
}

func TestFailuresDuringBanDoNotExtendIt(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	r := New(c, ClientLimits)
	for i := 0; i < 5; i++ {
		r.Fail("a")
	}
	for i := 0; i < 100; i++ {
		c.Advance(time.Second)
		r.Fail("a")
	}
	if w := r.Check("a"); w != 5*time.Minute-100*time.Second {
		t.Fatalf("wait %v", w)
	}
}

func TestSucceedKeepsBan(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	r := New(c, ClientLimits)
	for i := 0; i < 5; i++ {
		r.Fail("a")
	}
	r.Succeed("a")
	if r.Check("a") == 0 {
		t.Fatal("Succeed lifted a ban")
	}
	r.Reset("a")
	if r.Check("a") != 0 {
		t.Fatal("Reset kept the ban")
	}
}

func TestMemoryIsBoundedAndBansSurviveFlood(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	l := ClientLimits
	l.MaxKeys = 100
	r := New(c, l)
	for i := 0; i < 5; i++ {
		r.Fail("attacker")
	}
	for i := 0; i < 100000; i++ {
		r.Fail(fmt.Sprintf("spray-%d", i))
	}
	if n := r.Len(); n > l.MaxKeys {
		t.Fatalf("%d keys remembered, bound %d", n, l.MaxKeys)
	}
	if r.Check("attacker") == 0 {
		t.Fatal("spraying new keys evicted a ban")
	}
}

func TestClientKey(t *testing.T) {
	tests := map[string]string{
		"192.0.2.7":             "192.0.2.7",
		"::ffff:192.0.2.7":      "192.0.2.7",
		"2001:db8:1:2:3:4:5:6":  "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::99": "2001:db8:1:2::/64",
		"::1":                   "::/64",
	}
	for in, want := range tests {
		if got := ClientKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("ClientKey(%s) = %s, want %s", in, got, want)
		}
	}
}
