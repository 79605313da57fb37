package timesync_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/timesync"
	"github.com/rknas/firmware/authd/timesync/timesynctest"

	"github.com/rknas/firmware/internal/waittest"
)

var build = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// fastConfig is a configuration for tests: short timeouts, no persistence.
func fastConfig(servers ...string) timesync.Config {
	return timesync.Config{
		Settings:     timesync.Settings{Enabled: true, Servers: servers},
		BuildTime:    build,
		QueryTimeout: 500 * time.Millisecond,
	}
}

func newService(t *testing.T, cfg timesync.Config, deps timesync.Deps) *timesync.Service {
	t.Helper()
	s, err := timesync.New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestSyncWithChrony(t *testing.T) {
	addr := timesynctest.StartChrony(t)
	setter := timesynctest.NewSetter(t, nil)
	rtc := timesynctest.NewRTC(time.Now())
	cfg := fastConfig(addr)
	cfg.StateDir = t.TempDir()
	// The real system clock: the production query path (kernel timestamps).
	s := newService(t, cfg, timesync.Deps{Setter: setter, RTC: rtc})
	if st := s.Status(); st.State != timesync.StateEstimated || st.Source != timesync.SourceRTC {
		t.Errorf("before sync: %+v, want estimated from the rtc", st)
	}
	st, err := s.SyncNow(context.Background())
	if err != nil {
		t.Fatalf("SyncNow: %v (status %+v)", err, st)
	}
	t.Logf("status: %+v", st)
	if st.State != timesync.StateSynchronized || st.Source != timesync.SourceNTP || st.Server != addr || st.Error != "" {
		t.Errorf("status = %+v, want synchronized from %s", st, addr)
	}
	if st.OffsetMS <= -1000 || st.OffsetMS >= 1000 || st.RTTMS < 0 || st.RTTMS >= 1000 {
		t.Errorf("offset %v ms, rtt %v ms: implausible for loopback", st.OffsetMS, st.RTTMS)
	}
	if st.LastSync == nil || time.Since(*st.LastSync).Abs() > time.Minute {
		t.Errorf("last_sync = %v", st.LastSync)
	}
	// A sub-second offset is slewed, never stepped.
	if slews, steps := setter.Slews(), setter.Steps(); len(slews) != 1 || len(steps) != 0 || slews[0].Abs() >= time.Second {
		t.Errorf("slews %v steps %v, want one small slew", slews, steps)
	}
	if rtc.Writes() != 1 {
		t.Errorf("rtc writes = %d, want 1", rtc.Writes())
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, timesync.SavedTimeFile)); err != nil {
		t.Errorf("time not saved after sync: %v", err)
	}
	if s.State() != timesync.StateSynchronized {
		t.Errorf("State() = %v", s.State())
	}
}

// A board that boots in 1970: the clock is first moved to the build time
// (untrusted), then stepped to the real time by NTP.
func TestSyncFromThePast(t *testing.T) {
	addr := timesynctest.StartChrony(t)
	clk := timesynctest.NewClock(time.Unix(0, 0))
	setter := timesynctest.NewSetter(t, clk)
	s := newService(t, fastConfig(addr), timesync.Deps{Setter: setter, Clock: clk})
	if st := s.Status(); st.State != timesync.StateUntrusted || st.Source != timesync.SourceBuild {
		t.Fatalf("after start: %+v, want untrusted at the build time", st)
	}
	if steps := setter.Steps(); len(steps) != 1 || !steps[0].Equal(build) {
		t.Fatalf("steps = %v, want one to %v", steps, build)
	}
	st, err := s.SyncNow(context.Background())
	if err != nil {
		t.Fatalf("SyncNow: %v", err)
	}
	steps := setter.Steps()
	if len(steps) != 2 || time.Until(steps[1]).Abs() > time.Second {
		t.Fatalf("steps = %v, want a second one to about %v", steps, time.Now())
	}
	if st.State != timesync.StateSynchronized || time.Until(clk.Now()).Abs() > time.Second {
		t.Errorf("status %+v, clock %v; want synchronized near %v", st, clk.Now(), time.Now())
	}
}

func TestLiarOutvotedByTwoChronyd(t *testing.T) {
	a, b := timesynctest.StartChrony(t), timesynctest.StartChrony(t)
	liar := timesynctest.StartServer(t, timesynctest.Liar(3*time.Hour))
	clk := timesynctest.NewClock(time.Now())
	setter := timesynctest.NewSetter(t, clk)
	s := newService(t, fastConfig(liar.Addr, a, b), timesync.Deps{Setter: setter, Clock: clk})
	st, err := s.SyncNow(context.Background())
	if err != nil {
		t.Fatalf("SyncNow: %v", err)
	}
	if liar.Queries() == 0 {
		t.Error("the liar was never asked")
	}
	if st.State != timesync.StateSynchronized || st.Server == liar.Addr || st.OffsetMS <= -1000 || st.OffsetMS >= 1000 {
		t.Errorf("status = %+v, want synchronized by a chronyd with a small offset", st)
	}
	if len(setter.Steps()) != 0 || time.Until(clk.Now()).Abs() > time.Second {
		t.Errorf("clock moved towards the liar: steps %v, clock %v", setter.Steps(), clk.Now())
	}
}

func TestTwoServersDisagree(t *testing.T) {
	a := timesynctest.StartChrony(t)
	liar := timesynctest.StartServer(t, timesynctest.Liar(-3*time.Hour))
	clk := timesynctest.NewClock(time.Now())
	setter := timesynctest.NewSetter(t, clk)
	s := newService(t, fastConfig(a, liar.Addr), timesync.Deps{Setter: setter, Clock: clk})
	st, err := s.SyncNow(context.Background())
	if !errors.Is(err, timesync.ErrDisagree) {
		t.Fatalf("SyncNow = %v, want ErrDisagree", err)
	}
	t.Logf("error: %s", st.Error)
	if setter.Changes() != 0 {
		t.Errorf("clock changed: steps %v slews %v", setter.Steps(), setter.Slews())
	}
	// The liar's offset is measured like any other: -3h give or take the
	// milliseconds a loaded machine adds ("-2h59m59.999s").
	liarSays := regexp.MustCompile(regexp.QuoteMeta(liar.Addr) + ` says -(3h0m0(\.\d+)?s|2h59m59\.\d+s)`)
	if st.State == timesync.StateSynchronized || !strings.Contains(st.Error, "disagree") ||
		!liarSays.MatchString(st.Error) || !strings.Contains(st.Error, a+" says") {
		t.Errorf("status = %+v, want the disagreement explained", st)
	}
}

// Every kind of bad answer: alone it leaves the clock alone and the status
// says why; beside a real server it does not vote.
func TestBadAnswers(t *testing.T) {
	good := timesynctest.StartChrony(t)
	tests := []struct {
		name  string
		reply timesynctest.Reply
		why   string
	}{
		{"kiss-of-death", timesynctest.KissOfDeath, `kiss of death received (code "RATE")`},
		{"stratum 16", timesynctest.Stratum16, "invalid stratum"},
		{"unsynchronised", timesynctest.Unsynced, "invalid leap second"},
		{"zero transmit time", timesynctest.ZeroTransmit, "invalid transmit time"},
		{"garbage", timesynctest.Garbage, "invalid time reported"},
		{"no answer", timesynctest.Silent, "i/o timeout"},
		{"before the build time", timesynctest.Liar(-50 * 365 * 24 * time.Hour), "before the firmware build time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := timesynctest.StartServer(t, tt.reply)
			clk := timesynctest.NewClock(time.Now().Add(-time.Hour))
			setter := timesynctest.NewSetter(t, clk)
			s := newService(t, fastConfig(bad.Addr), timesync.Deps{Setter: setter, Clock: clk})
			st, err := s.SyncNow(context.Background())
			if !errors.Is(err, timesync.ErrNoAnswer) {
				t.Fatalf("alone: SyncNow = %v, want ErrNoAnswer", err)
			}
			if setter.Changes() != 0 {
				t.Fatalf("clock changed by a bad answer: %v %v", setter.Steps(), setter.Slews())
			}
			if !strings.Contains(st.Error, tt.why) || !strings.Contains(st.Error, bad.Addr) {
				t.Errorf("status error %q, want it to name %s and say %q", st.Error, bad.Addr, tt.why)
			}

			// Beside a real server the bad one has no vote: chronyd's
			// answer (one hour ahead of this clock) is taken.
			if err := s.SetSettings(timesync.Settings{Enabled: true, Servers: []string{bad.Addr, good}}); err != nil {
				t.Fatal(err)
			}
			st, err = s.SyncNow(context.Background())
			if err != nil || st.Server != good || st.State != timesync.StateSynchronized {
				t.Fatalf("with chronyd: %+v, %v", st, err)
			}
			if d := (time.Duration(st.OffsetMS) * time.Millisecond) - time.Hour; d.Abs() > time.Second {
				t.Errorf("offset %v ms, want about one hour", st.OffsetMS)
			}
		})
	}
}

func TestKissOfDeathServerLeftAlone(t *testing.T) {
	kod := timesynctest.StartServer(t, timesynctest.KissOfDeath)
	clk := clocktest.New(build.Add(time.Hour))
	s := newService(t, fastConfig(kod.Addr), timesync.Deps{Setter: timesynctest.NewSetter(t, clk), Clock: clk})
	s.SyncNow(context.Background())
	st, _ := s.SyncNow(context.Background())
	if kod.Queries() != 1 || !strings.Contains(st.Error, "not asked") {
		t.Fatalf("after kiss-of-death: %d queries, status error %q; want 1 query and the server left alone", kod.Queries(), st.Error)
	}
	clk.Advance(time.Hour + time.Second)
	s.SyncNow(context.Background())
	if kod.Queries() != 2 {
		t.Errorf("after an interval: %d queries, want 2", kod.Queries())
	}
}

func TestDNSFailure(t *testing.T) {
	clk := clocktest.New(build.Add(time.Hour))
	setter := timesynctest.NewSetter(t, clk)
	s := newService(t, fastConfig("ntp.invalid"), timesync.Deps{Setter: setter, Clock: clk, Resolver: timesynctest.Resolver{}})
	st, err := s.SyncNow(context.Background())
	if !errors.Is(err, timesync.ErrNoAnswer) || !strings.Contains(st.Error, "ntp.invalid: lookup") || setter.Changes() != 0 {
		t.Fatalf("SyncNow = %v, status %+v", err, st)
	}
	// The real resolver fails too, and just as safely.
	s = newService(t, fastConfig("ntp.invalid"), timesync.Deps{Setter: setter, Clock: clk})
	if _, err := s.SyncNow(context.Background()); !errors.Is(err, timesync.ErrNoAnswer) || setter.Changes() != 0 {
		t.Fatalf("real resolver: SyncNow = %v", err)
	}
}

// A name with several addresses: each is asked (up to MaxAddrs), and the
// name gets one vote.
func TestNameWithSeveralAddresses(t *testing.T) {
	a := timesynctest.StartChrony(t)
	_, aPort, _ := strings.Cut(a, ":")
	// chronyd listens on 127.0.0.1 only: 127.0.0.2 refuses, and the other
	// two addresses are beyond MaxAddrs.
	res := timesynctest.Resolver{"ntp.test": {"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}}
	clk := timesynctest.NewClock(time.Now())
	setter := timesynctest.NewSetter(t, clk)
	cfg := fastConfig("ntp.test:" + aPort)
	cfg.MaxAddrs = 2
	s := newService(t, cfg, timesync.Deps{Setter: setter, Clock: clk, Resolver: res})
	st, err := s.SyncNow(context.Background())
	if err != nil || st.State != timesync.StateSynchronized || st.Server != "ntp.test:"+aPort {
		t.Fatalf("SyncNow = %+v, %v", st, err)
	}
}

func TestRestoreAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	saved := time.Date(2027, 3, 4, 5, 6, 7, 0, time.UTC)
	clk := clocktest.New(saved)
	setter := timesynctest.NewSetter(t, clk)
	cfg := fastConfig()
	cfg.Settings = timesync.Settings{Enabled: false}
	cfg.StateDir = dir
	s := newService(t, cfg, timesync.Deps{Setter: setter, Clock: clk})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, timesync.SavedTimeFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved time file: %v, %v", fi, err)
	}

	tests := []struct {
		name       string
		boot       time.Time // the clock at the "restart"
		rtc        *timesynctest.RTC
		wantStep   time.Time // zero: no step
		wantState  timesync.State
		wantSource timesync.Source
	}{
		{"1970, no rtc", time.Unix(0, 0), nil, saved, timesync.StateEstimated, timesync.SourceSaved},
		{"kernel build date", build.AddDate(0, -3, 0), nil, saved, timesync.StateEstimated, timesync.SourceSaved},
		{"rtc ahead of saved", time.Unix(0, 0), timesynctest.NewRTC(saved.Add(time.Hour)), saved.Add(time.Hour), timesync.StateEstimated, timesync.SourceRTC},
		{"rtc behind saved", time.Unix(0, 0), timesynctest.NewRTC(saved.Add(-time.Hour)), saved, timesync.StateEstimated, timesync.SourceSaved},
		{"rtc reset to 2000", time.Unix(0, 0), timesynctest.NewRTC(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)), saved, timesync.StateEstimated, timesync.SourceSaved},
		{"clock already ahead", saved.Add(time.Minute), nil, time.Time{}, timesync.StateEstimated, timesync.SourceSystem},
		{"clock set from the rtc by the kernel", saved.Add(time.Minute), timesynctest.NewRTC(saved.Add(time.Minute)), time.Time{}, timesync.StateEstimated, timesync.SourceRTC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktest.New(tt.boot)
			setter := timesynctest.NewSetter(t, clk)
			deps := timesync.Deps{Setter: setter, Clock: clk}
			if tt.rtc != nil {
				deps.RTC = tt.rtc
			}
			s := newService(t, cfg, deps)
			steps := setter.Steps()
			switch {
			case tt.wantStep.IsZero() && len(steps) != 0:
				t.Errorf("steps = %v, want none", steps)
			case !tt.wantStep.IsZero() && (len(steps) != 1 || !steps[0].Equal(tt.wantStep)):
				t.Errorf("steps = %v, want one to %v", steps, tt.wantStep)
			}
			if st := s.Status(); st.State != tt.wantState || st.Source != tt.wantSource || st.Error != "" {
				t.Errorf("status = %+v, want %s from %s", st, tt.wantState, tt.wantSource)
			}
		})
	}
}

func TestRestoreFailureIsReported(t *testing.T) {
	clk := clocktest.New(time.Unix(0, 0))
	setter := timesynctest.NewSetter(t, clk)
	setter.Fail(syscall.EPERM)
	s := newService(t, fastConfig("127.0.0.1"), timesync.Deps{Setter: setter, Clock: clk})
	st := s.Status()
	if st.State != timesync.StateUntrusted || !strings.Contains(st.Error, "operation not permitted") {
		t.Errorf("status = %+v, want untrusted with the error", st)
	}
}

func TestSetManual(t *testing.T) {
	dir := t.TempDir()
	clk := clocktest.New(build)
	setter := timesynctest.NewSetter(t, clk)
	rtc := timesynctest.NewRTC(build)
	cfg := fastConfig("127.0.0.1:9")
	cfg.StateDir = dir
	s := newService(t, cfg, timesync.Deps{Setter: setter, Clock: clk, RTC: rtc})
	if err := s.SetManual(time.Time{}); !errors.Is(err, timesync.ErrZeroTime) {
		t.Errorf("SetManual(zero) = %v", err)
	}
	if err := s.SetManual(build.Add(-time.Second)); !errors.Is(err, timesync.ErrBeforeBuild) {
		t.Errorf("SetManual(before build) = %v", err)
	}
	if setter.Changes() != 0 {
		t.Fatal("clock changed by a refused manual set")
	}
	want := time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)
	if err := s.SetManual(want); err != nil {
		t.Fatal(err)
	}
	st := s.Status()
	if st.State != timesync.StateEstimated || st.Source != timesync.SourceManual || !clk.Now().Equal(want) {
		t.Errorf("status %+v, clock %v", st, clk.Now())
	}
	if got, _ := rtc.Read(); !got.Equal(want) {
		t.Errorf("rtc = %v, want %v", got, want)
	}
	var saved struct{ Time time.Time }
	data, _ := os.ReadFile(filepath.Join(dir, timesync.SavedTimeFile))
	if err := json.Unmarshal(data, &saved); err != nil || !saved.Time.Equal(want) {
		t.Errorf("saved time %s (%v), want %v", data, err, want)
	}
	setter.Fail(syscall.EPERM)
	if err := s.SetManual(want.Add(time.Hour)); !errors.Is(err, syscall.EPERM) || !strings.Contains(s.Status().Error, "operation not permitted") {
		t.Errorf("SetManual with a failing setter = %v, status %+v", err, s.Status())
	}
}

func TestSetManualRefusedWhileSynchronized(t *testing.T) {
	addr := timesynctest.StartChrony(t)
	clk := timesynctest.NewClock(time.Now())
	setter := timesynctest.NewSetter(t, clk)
	s := newService(t, fastConfig(addr), timesync.Deps{Setter: setter, Clock: clk})
	if _, err := s.SyncNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.SetManual(time.Now().Add(time.Hour)); !errors.Is(err, timesync.ErrSynchronized) {
		t.Fatalf("SetManual while synchronized = %v", err)
	}
	// Disabling NTP allows it.
	if err := s.SetSettings(timesync.Settings{Enabled: false, Servers: []string{addr}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetManual(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.State != timesync.StateEstimated || st.Source != timesync.SourceManual {
		t.Errorf("status %+v", st)
	}
	if _, err := s.SyncNow(context.Background()); !errors.Is(err, timesync.ErrDisabled) {
		t.Errorf("SyncNow while disabled = %v", err)
	}
}

func TestSyncValidityLapses(t *testing.T) {
	addr := timesynctest.StartChrony(t)
	clk := timesynctest.NewClock(time.Now())
	s := newService(t, fastConfig(addr), timesync.Deps{Setter: timesynctest.NewSetter(t, clk), Clock: clk})
	if _, err := s.SyncNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2*time.Hour - time.Minute)
	if got := s.State(); got != timesync.StateSynchronized {
		t.Errorf("after 1h59m: %v", got)
	}
	clk.Advance(2 * time.Minute)
	if st := s.Status(); st.State != timesync.StateEstimated || st.Source != timesync.SourceNTP {
		t.Errorf("after 2h01m: %+v, want estimated from an old ntp sync", st)
	}
}

func TestSettingsPersistAndTakeEffect(t *testing.T) {
	dir := t.TempDir()
	good := timesynctest.StartChrony(t)
	silent := timesynctest.StartServer(t, timesynctest.Silent)
	clk := timesynctest.NewClock(time.Now())
	cfg := fastConfig(silent.Addr)
	cfg.StateDir = dir
	cfg.RetryMin = time.Hour // the retry must not be what syncs
	events := make(chan timesync.Status, 16)
	deps := timesync.Deps{Setter: timesynctest.NewSetter(t, clk), Clock: clk,
		Notify: func(st timesync.Status, _ error) { events <- st }}
	s := newService(t, cfg, deps)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); waittest.Recv(t, done, "Run to return after cancel") }()

	st := waittest.Recv(t, events, "a sync")
	if st.State == timesync.StateSynchronized || !strings.Contains(st.Error, "i/o timeout") || st.NextSync == nil {
		t.Fatalf("first sync: %+v", st)
	}
	if err := s.SetSettings(timesync.Settings{Enabled: true, Servers: []string{"a.example", "b a d"}}); err == nil ||
		!strings.Contains(err.Error(), `entry 2: server "b a d"`) {
		t.Fatalf("SetSettings(bad) = %v", err)
	}
	want := timesync.Settings{Enabled: true, Servers: []string{good}}
	if err := s.SetSettings(want); err != nil {
		t.Fatal(err)
	}
	st = waittest.Recv(t, events, "a sync")
	if st.State != timesync.StateSynchronized || st.Server != good {
		t.Fatalf("after SetSettings: %+v", st)
	}
	if st.NextSync == nil || st.NextSync.Sub(clk.Now()) < 50*time.Minute {
		t.Errorf("next sync %v, want about an hour ahead", st.NextSync)
	}
	if got := s.Settings(); !slices.Equal(got.Servers, want.Servers) {
		t.Errorf("Settings() = %+v", got)
	}
	// A restart loads the saved settings, not the configured defaults.
	s2 := newService(t, cfg, timesync.Deps{Setter: timesynctest.NewSetter(t, clk), Clock: clk})
	if got := s2.Settings(); !got.Enabled || !slices.Equal(got.Servers, want.Servers) {
		t.Errorf("after restart Settings() = %+v, want %+v", got, want)
	}
	// Disabling stops the schedule.
	if err := s.SetSettings(timesync.Settings{Enabled: false}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SyncNow(context.Background()); !errors.Is(err, timesync.ErrDisabled) {
		t.Errorf("SyncNow after disabling = %v", err)
	}
}

func TestRunRetriesWithBackoff(t *testing.T) {
	silent := timesynctest.StartServer(t, timesynctest.Silent)
	clk := clocktest.New(build.Add(time.Hour))
	cfg := fastConfig(silent.Addr)
	cfg.QueryTimeout = 20 * time.Millisecond
	cfg.RetryMin = 10 * time.Millisecond
	cfg.RetryMax = 40 * time.Millisecond
	type event struct {
		st  timesync.Status
		err error
	}
	events := make(chan event, 16)
	s := newService(t, cfg, timesync.Deps{Setter: timesynctest.NewSetter(t, clk), Clock: clk,
		Notify: func(st timesync.Status, err error) { events <- event{st, err} }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var delays []time.Duration
	for range 5 {
		e := waittest.Recv(t, events, "an attempt")
		if !errors.Is(e.err, timesync.ErrNoAnswer) || e.st.NextSync == nil {
			t.Fatalf("attempt: %+v", e)
		}
		delays = append(delays, e.st.NextSync.Sub(clk.Now()))
	}
	cancel()
	waittest.Recv(t, done, "Run to return after cancel")
	// 10, 20, 40, 40, 40 ms, each ±10 %.
	want := []time.Duration{10, 20, 40, 40, 40}
	for i, d := range delays {
		w := want[i] * time.Millisecond
		if d < w*9/10 || d > w*11/10 {
			t.Errorf("delay %d = %v, want %v ±10%%", i+1, d, w)
		}
	}
	if s.Status().NextSync != nil {
		t.Error("next_sync still set after Run ended")
	}
}

func TestRunSavesPeriodically(t *testing.T) {
	dir := t.TempDir()
	clk := clocktest.New(build.Add(time.Hour))
	cfg := fastConfig()
	cfg.Settings = timesync.Settings{Enabled: false}
	cfg.StateDir = dir
	cfg.SaveEvery = 10 * time.Millisecond
	s := newService(t, cfg, timesync.Deps{Setter: timesynctest.NewSetter(t, clk), Clock: clk})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); waittest.Recv(t, done, "Run to return after cancel") }()
	path := filepath.Join(dir, timesync.SavedTimeFile)
	for _, want := range []time.Time{build.Add(time.Hour), build.Add(2 * time.Hour)} {
		clk.Set(want)
		// The ticker is the event; the file is polled with a deadline.
		deadline := time.Now().Add(5 * time.Second)
		for {
			var saved struct{ Time time.Time }
			data, _ := os.ReadFile(path)
			if json.Unmarshal(data, &saved) == nil && saved.Time.Equal(want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("saved time %s, want %v", data, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// Status answers at once while a sync waits on a server that never answers.
func TestStatusDoesNotBlock(t *testing.T) {
	silent := timesynctest.StartServer(t, timesynctest.Silent)
	cfg := fastConfig(silent.Addr)
	cfg.QueryTimeout = 2 * time.Second
	clk := clocktest.New(build.Add(time.Hour))
	s := newService(t, cfg, timesync.Deps{Setter: timesynctest.NewSetter(t, clk), Clock: clk})
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		s.SyncNow(context.Background())
	}()
	waittest.Recv(t, silent.FirstQuery(), "the first query")
	_ = s.Status()
	_ = s.State()
	_ = s.Settings()
	select {
	case <-syncDone:
		t.Fatal("Status waited for the sync to end")
	default:
	}
	waittest.Recv(t, syncDone, "the sync to end")
}

func TestStatusJSON(t *testing.T) {
	clk := clocktest.New(build.Add(time.Hour))
	s := newService(t, fastConfig("127.0.0.1"), timesync.Deps{Setter: timesynctest.NewSetter(t, clk), Clock: clk})
	data, err := json.Marshal(s.Status())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"last_sync", "next_sync", "offset_ms", "rtt_ms", "server", "source", "state"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v (error omitted when empty): %s", keys, want, data)
	}
	st := timesync.Status{Error: "x"}
	data, _ = json.Marshal(st)
	if !strings.Contains(string(data), `"error":"x"`) {
		t.Errorf("error field missing: %s", data)
	}
}

func TestNewNeedsSetter(t *testing.T) {
	if _, err := timesync.New(fastConfig(), timesync.Deps{}); !errors.Is(err, timesync.ErrNoSetter) {
		t.Fatalf("New without Setter = %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	addr := timesynctest.StartChrony(t)
	clk := timesynctest.NewClock(time.Now())
	s := newService(t, fastConfig(addr), timesync.Deps{Setter: timesynctest.NewSetter(t, clk), Clock: clk})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 20 {
				_ = s.Status()
				if i == 0 {
					s.SyncNow(context.Background())
				}
				if i == 1 {
					s.SetSettings(timesync.Settings{Enabled: true, Servers: []string{addr}})
				}
			}
		})
	}
	wg.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.State != timesync.StateSynchronized {
		t.Errorf("status %+v", st)
	}
}

func BenchmarkSyncNowChrony(b *testing.B) {
	addr := timesynctest.StartChrony(b)
	clk := timesynctest.NewClock(time.Now())
	s, err := timesync.New(fastConfig(addr), timesync.Deps{Setter: timesynctest.NewSetter(b, clk), Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	var offset, rtt float64
	for b.Loop() {
		st, err := s.SyncNow(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		offset, rtt = max(offset, st.OffsetMS), max(rtt, st.RTTMS)
	}
	b.ReportMetric(offset, "max-offset-ms")
	b.ReportMetric(rtt, "max-rtt-ms")
}

func BenchmarkStatus(b *testing.B) {
	clk := clocktest.New(build.Add(time.Hour))
	s, err := timesync.New(fastConfig("127.0.0.1"), timesync.Deps{Setter: timesynctest.NewSetter(b, clk), Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		_ = s.Status()
	}
}

// A time saved while the clock was untrusted stays untrusted after a
// restart: it is only the build time plus uptime.
func TestRestoreKeepsUntrusted(t *testing.T) {
	cfg := fastConfig()
	cfg.Settings = timesync.Settings{Enabled: false}
	cfg.StateDir = t.TempDir()
	clk := clocktest.New(time.Unix(0, 0))
	s := newService(t, cfg, timesync.Deps{Setter: timesynctest.NewSetter(t, clk), Clock: clk})
	clk.Advance(3 * time.Hour)
	if err := s.SaveTime(); err != nil {
		t.Fatal(err)
	}
	clk = clocktest.New(time.Unix(0, 0))
	setter := timesynctest.NewSetter(t, clk)
	s = newService(t, cfg, timesync.Deps{Setter: setter, Clock: clk})
	st := s.Status()
	if st.State != timesync.StateUntrusted || st.Source != timesync.SourceSaved || !clk.Now().Equal(build.Add(3*time.Hour)) {
		t.Errorf("status %+v, clock %v; want untrusted, restored to build time + 3h", st, clk.Now())
	}
}

// At shutdown Run does not wait for a pending query to time out before
// saving the time.
func TestRunStopsDuringQuery(t *testing.T) {
	silent := timesynctest.StartServer(t, timesynctest.Silent)
	cfg := fastConfig(silent.Addr)
	cfg.StateDir = t.TempDir()
	cfg.QueryTimeout = 30 * time.Second
	clk := clocktest.New(build.Add(time.Hour))
	s := newService(t, cfg, timesync.Deps{Setter: timesynctest.NewSetter(t, clk), Clock: clk})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waittest.Recv(t, silent.FirstQuery(), "the first query")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run waited for the query's 30 s timeout")
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, timesync.SavedTimeFile)); err != nil {
		t.Errorf("time not saved at the end: %v", err)
	}
}

// TestLoneServerCannotJumpASetClock: once NTP has set the clock, one
// server alone (the others unanswering, or named anew) saying it is years
// off is not followed: the clock is left alone and the status says why.
// Two servers that agree still move it.
func TestLoneServerCannotJumpASetClock(t *testing.T) {
	honest1, honest2 := timesynctest.StartServer(t, timesynctest.Honest), timesynctest.StartServer(t, timesynctest.Honest)
	liar := timesynctest.StartServer(t, timesynctest.Liar(10*365*24*time.Hour))
	liar2 := timesynctest.StartServer(t, timesynctest.Liar(10*365*24*time.Hour))
	clk := timesynctest.NewClock(time.Now())
	setter := timesynctest.NewSetter(t, clk)
	s := newService(t, fastConfig(honest1.Addr, honest2.Addr), timesync.Deps{Setter: setter, Clock: clk})
	if st, err := s.SyncNow(context.Background()); err != nil || st.State != timesync.StateSynchronized {
		t.Fatalf("first sync: %+v, %v", st, err)
	}
	if err := s.SetSettings(timesync.Settings{Enabled: true, Servers: []string{liar.Addr}}); err != nil {
		t.Fatal(err)
	}
	st, err := s.SyncNow(context.Background())
	if !errors.Is(err, timesync.ErrLoneJump) || !strings.Contains(st.Error, "that needs two servers that agree") {
		t.Fatalf("a lone server 10 years off: %v (status %+v), want it refused", err, st)
	}
	if len(setter.Steps()) != 0 || time.Until(clk.Now()).Abs() > time.Second {
		t.Fatalf("the clock moved: steps %v, clock %v", setter.Steps(), clk.Now())
	}
	if err := s.SetSettings(timesync.Settings{Enabled: true, Servers: []string{liar.Addr, liar2.Addr}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SyncNow(context.Background()); err != nil || len(setter.Steps()) != 1 {
		t.Fatalf("two servers that agree: %v, steps %v; want the clock stepped", err, setter.Steps())
	}
}
