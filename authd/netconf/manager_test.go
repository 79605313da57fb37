package netconf_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/netconf"
	"github.com/rknas/firmware/authd/netconf/netconftest"
	"github.com/rknas/firmware/internal/lockedbuf"
)

type rig struct {
	dir     string
	clk     *clocktest.Clock
	timers  *netconftest.Timers
	applier *netconftest.Applier
	log     *lockedbuf.Buffer
	m       *netconf.Manager
}

func ports() ([]string, error) { return []string{"eth0", "eth1"}, nil }

// newRig builds a Manager over dir (a new temp dir when empty) with fakes.
func newRig(t *testing.T, dir string, mod func(*netconf.Options)) *rig {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	r := &rig{dir: dir, clk: clocktest.New(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)), applier: &netconftest.Applier{}, log: &lockedbuf.Buffer{}}
	r.timers = netconftest.NewTimers(r.clk)
	o := netconf.Options{
		Dir: dir, Applier: r.applier, Ports: ports, Clock: r.clk, Timers: r.timers,
		Logger: slog.New(slog.NewTextHandler(r.log, nil)),
	}
	if mod != nil {
		mod(&o)
	}
	m, err := netconf.NewManager(o)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	r.m = m
	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return r
}

func (r *rig) system(t *testing.T) netconf.Config {
	t.Helper()
	c, ok := r.applier.Current()
	if !ok {
		t.Fatal("nothing applied")
	}
	return c
}

func staticCfg() netconf.Config {
	return netconf.Config{Hostname: "vault", Interfaces: []netconf.Interface{
		{Name: "eth0", Mode: netconf.ModeStatic, Addresses: []string{"192.168.7.2/24"}, Gateway4: "192.168.7.1"},
		{Name: "eth1", Mode: netconf.ModeDHCP},
	}, DNS: []string{"192.168.7.1"}}
}

func TestFreshDeviceRunsDefault(t *testing.T) {
	r := newRig(t, "", func(o *netconf.Options) { o.DefaultHostname = "rknas-1a2b3c" })
	want := netconf.Default([]string{"eth0", "eth1"})
	want.Hostname = "rknas-1a2b3c"
	if got := r.system(t); !got.Equal(want) {
		t.Fatalf("applied %+v, want %+v", got, want)
	}
	if _, err := os.Stat(netconf.Path(r.dir)); !os.IsNotExist(err) {
		t.Errorf("starting wrote the file (stat: %v); only a confirmation or a reset should", err)
	}
}

func TestRollbackAfterTimeout(t *testing.T) {
	var rolledBack []string
	r := newRig(t, "", func(o *netconf.Options) {
		o.ConfirmTimeout = 30 * time.Second
		o.OnRollback = func(id string) { rolledBack = append(rolledBack, id) }
	})
	before := r.m.Current()
	id, deadline, err := r.m.Apply(context.Background(), staticCfg())
	if err != nil {
		t.Fatal(err)
	}
	if want := r.clk.Now().Add(30 * time.Second); !deadline.Equal(want) {
		t.Errorf("deadline %v, want %v", deadline, want)
	}
	if got := r.system(t); !got.Equal(staticCfg()) {
		t.Fatalf("the change was not applied at once: %+v", got)
	}
	if got := r.m.Current(); !got.Equal(staticCfg()) {
		t.Errorf("Current during trial = %+v", got)
	}
	st, err := r.m.Status(context.Background())
	if err != nil || st.Pending == nil || st.Pending.ID != id || !st.Pending.Deadline.Equal(deadline) {
		t.Fatalf("Status during trial = %+v, %v", st, err)
	}

	r.timers.Advance(29 * time.Second)
	if got := r.system(t); !got.Equal(staticCfg()) {
		t.Fatal("rolled back before the deadline")
	}
	r.timers.Advance(time.Second)
	if got := r.system(t); !got.Equal(before) {
		t.Fatalf("after the deadline the system runs %+v, want the previous %+v", got, before)
	}
	if !r.m.Current().Equal(before) {
		t.Error("Current still reports the rolled-back change")
	}
	if len(rolledBack) != 1 || rolledBack[0] != id {
		t.Errorf("OnRollback calls = %v, want [%s]", rolledBack, id)
	}
	if !strings.Contains(r.log.String(), "rolled back") || !strings.Contains(r.log.String(), id) {
		t.Errorf("rollback not logged with its id: %s", r.log)
	}
	if err := r.m.Confirm(id); !errors.Is(err, netconf.ErrNoPending) {
		t.Errorf("Confirm after rollback = %v, want ErrNoPending", err)
	}
	if _, err := os.Stat(netconf.Path(r.dir)); !os.IsNotExist(err) {
		t.Error("an unconfirmed change reached the disk")
	}
}

func TestConfirmInTime(t *testing.T) {
	r := newRig(t, "", nil)
	id, _, err := r.m.Apply(context.Background(), staticCfg())
	if err != nil {
		t.Fatal(err)
	}
	r.timers.Advance(netconf.DefaultConfirmTimeout - time.Second)
	if err := r.m.Confirm("not-" + id); !errors.Is(err, netconf.ErrNoPending) {
		t.Errorf("Confirm(wrong id) = %v, want ErrNoPending", err)
	}
	if err := r.m.Confirm(id); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	if r.timers.Waiting() != 0 {
		t.Error("the rollback timer still runs after the confirmation")
	}
	r.timers.Advance(time.Hour)
	if got := r.system(t); !got.Equal(staticCfg()) {
		t.Fatalf("a confirmed change was rolled back: %+v", got)
	}
	saved, err := netconf.Load(netconf.Path(r.dir), netconf.Config{})
	if err != nil || !saved.Equal(staticCfg()) {
		t.Fatalf("saved = %+v, %v", saved, err)
	}
	if err := r.m.Confirm(id); !errors.Is(err, netconf.ErrNoPending) {
		t.Errorf("second Confirm = %v, want ErrNoPending", err)
	}
	// A new manager on the same directory (a reboot) runs it.
	r2 := newRig(t, r.dir, nil)
	if got := r2.system(t); !got.Equal(staticCfg()) {
		t.Errorf("after reboot runs %+v", got)
	}
}

func TestConfirmAtDeadlineIsLate(t *testing.T) {
	r := newRig(t, "", nil)
	before := r.m.Current()
	id, deadline, err := r.m.Apply(context.Background(), staticCfg())
	if err != nil {
		t.Fatal(err)
	}
	// The clock reaches the deadline but the timer has not run yet (as a
	// busy real timer might): the confirmation must still be refused.
	r.clk.Set(deadline)
	if err := r.m.Confirm(id); !errors.Is(err, netconf.ErrExpired) {
		t.Fatalf("late Confirm = %v, want ErrExpired", err)
	}
	if got := r.system(t); !got.Equal(before) {
		t.Errorf("late Confirm left %+v running, want the rollback", got)
	}
}

func TestPowerCutDuringTrial(t *testing.T) {
	r := newRig(t, "", nil)
	confirmedCfg := staticCfg()
	id, _, err := r.m.Apply(context.Background(), confirmedCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.m.Confirm(id); err != nil {
		t.Fatal(err)
	}
	trial := netconf.Config{Hostname: "oops", Interfaces: []netconf.Interface{
		{Name: "eth0", Mode: netconf.ModeStatic, Addresses: []string{"10.9.9.9/8"}}}}
	if _, _, err := r.m.Apply(context.Background(), trial); err != nil {
		t.Fatal(err)
	}
	// Power cut: the old Manager is gone without Close; a new one starts
	// on the same directory.
	r2 := newRig(t, r.dir, nil)
	if got := r2.system(t); !got.Equal(confirmedCfg) {
		t.Fatalf("after the power cut the device runs %+v, want the confirmed %+v", got, confirmedCfg)
	}
	if st, _ := r2.m.Status(context.Background()); st.Pending != nil {
		t.Errorf("a trial survived the reboot: %+v", st.Pending)
	}
}

func TestSecondChangeReplacesTrial(t *testing.T) {
	r := newRig(t, "", nil)
	before := r.m.Current()
	id1, _, err := r.m.Apply(context.Background(), staticCfg())
	if err != nil {
		t.Fatal(err)
	}
	r.timers.Advance(60 * time.Second)
	second := staticCfg()
	second.Hostname = "vault2"
	id2, deadline2, err := r.m.Apply(context.Background(), second)
	if err != nil {
		t.Fatal(err)
	}
	if id1 == id2 {
		t.Fatal("two changes got the same id")
	}
	if want := r.clk.Now().Add(netconf.DefaultConfirmTimeout); !deadline2.Equal(want) {
		t.Errorf("deadline %v, want a fresh %v", deadline2, want)
	}
	if err := r.m.Confirm(id1); !errors.Is(err, netconf.ErrNoPending) {
		t.Errorf("Confirm(replaced id) = %v, want ErrNoPending", err)
	}
	r.timers.Advance(netconf.DefaultConfirmTimeout)
	if got := r.system(t); !got.Equal(before) {
		t.Errorf("rollback went to %+v, want the last confirmed %+v", got, before)
	}
}

func TestFailedApplyRestoresPrevious(t *testing.T) {
	r := newRig(t, "", nil)
	before := r.m.Current()
	r.applier.Fail = func(c netconf.Config) error {
		if c.Hostname == "vault" {
			return errors.New("link eth0 not found")
		}
		return nil
	}
	_, _, err := r.m.Apply(context.Background(), staticCfg())
	if err == nil || !strings.Contains(err.Error(), "link eth0 not found") {
		t.Fatalf("Apply = %v, want the applier's error", err)
	}
	if got := r.system(t); !got.Equal(before) {
		t.Errorf("system runs %+v after a failed change, want %+v", got, before)
	}
	if st, _ := r.m.Status(context.Background()); st.Pending != nil {
		t.Error("a failed change is pending")
	}
}

func TestApplyRefusesInvalid(t *testing.T) {
	r := newRig(t, "", nil)
	calls := len(r.applier.Calls())
	bad := staticCfg()
	bad.Interfaces[0].Gateway4 = "10.0.0.1"
	_, _, err := r.m.Apply(context.Background(), bad)
	var fe *netconf.FieldError
	if !errors.As(err, &fe) || fe.Field != "interfaces[eth0].gateway4" {
		t.Fatalf("Apply = %v, want a FieldError on interfaces[eth0].gateway4", err)
	}
	if len(r.applier.Calls()) != calls {
		t.Error("an invalid configuration reached the applier")
	}
}

func TestResetToDefault(t *testing.T) {
	r := newRig(t, "", nil)
	id, _, err := r.m.Apply(context.Background(), staticCfg())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.m.Confirm(id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.m.Apply(context.Background(), netconf.Config{Hostname: "trial"}); err != nil {
		t.Fatal(err)
	}
	def := netconf.Default([]string{"eth0", "eth1"})
	var files [][]byte
	for i := range 2 {
		if err := r.m.ResetToDefault(context.Background()); err != nil {
			t.Fatalf("ResetToDefault #%d: %v", i+1, err)
		}
		if got := r.system(t); !got.Equal(def) {
			t.Fatalf("after reset #%d the system runs %+v", i+1, got)
		}
		data, err := os.ReadFile(netconf.Path(r.dir))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, data)
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Errorf("second reset wrote something else:\n%s\n%s", files[0], files[1])
	}
	if r.timers.Waiting() != 0 {
		t.Error("the trial's rollback timer survived the reset")
	}
	r.timers.Advance(time.Hour)
	if got := r.system(t); !got.Equal(def) {
		t.Errorf("a rollback after the reset put back %+v", got)
	}
	r2 := newRig(t, r.dir, nil)
	if got := r2.system(t); !got.Equal(def) {
		t.Errorf("after reboot runs %+v", got)
	}
}

func TestCorruptFile(t *testing.T) {
	dir := t.TempDir()
	path := netconf.Path(dir)
	if err := os.WriteFile(path, []byte(`{"hostname":`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := netconf.NewManager(netconf.Options{Dir: dir, Applier: &netconftest.Applier{}, Ports: ports})
	if !errors.Is(err, netconf.ErrCorrupt) {
		t.Fatalf("NewManager = %v, want ErrCorrupt", err)
	}

	r := newRig(t, dir, func(o *netconf.Options) { o.RunDefaultIfCorrupt = true })
	if got := r.system(t); !got.Equal(netconf.Default([]string{"eth0", "eth1"})) {
		t.Errorf("with RunDefaultIfCorrupt the system runs %+v", got)
	}
	st, err := r.m.Status(context.Background())
	if err != nil || !strings.Contains(st.LoadError, "corrupt") {
		t.Errorf("Status.LoadError = %q (%v), want the corruption", st.LoadError, err)
	}
	if data, _ := os.ReadFile(path); string(data) != `{"hostname":` {
		t.Error("the corrupt file was replaced without a confirmation")
	}
	if err := r.m.ResetToDefault(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := netconf.Load(path, netconf.Config{}); err != nil {
		t.Errorf("after reset the file is still unreadable: %v", err)
	}
	if st, _ := r.m.Status(context.Background()); st.LoadError != "" {
		t.Errorf("LoadError after reset = %q", st.LoadError)
	}
}

func TestConfirmSaveFailureKeepsTrial(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, nil)
	before := r.m.Current()
	id, _, err := r.m.Apply(context.Background(), staticCfg())
	if err != nil {
		t.Fatal(err)
	}
	// Make the state directory unwritable by replacing it with a file.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	if err := r.m.Confirm(id); err == nil {
		t.Fatal("Confirm succeeded without a writable state directory")
	}
	r.timers.Advance(netconf.DefaultConfirmTimeout)
	if got := r.system(t); !got.Equal(before) {
		t.Errorf("an unsaved change was kept: %+v", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	r := newRig(t, "", nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := staticCfg()
			if i%2 == 0 {
				c = netconf.Default([]string{"eth0"})
			}
			id, _, err := r.m.Apply(context.Background(), c)
			if err != nil {
				t.Error(err)
				return
			}
			_ = r.m.Confirm(id) // may have been replaced: ErrNoPending is fine
			_, _ = r.m.Status(context.Background())
			_ = r.m.Current()
		}()
	}
	wg.Wait()
	r.timers.Advance(time.Hour)
	if err := r.m.Close(); err != nil || !r.applier.Closed() {
		t.Errorf("Close = %v, applier closed %v", err, r.applier.Closed())
	}
}
