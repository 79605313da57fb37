package button_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/button"
	"github.com/rknas/firmware/authd/button/buttontest"
	"github.com/rknas/firmware/authd/clock/clocktest"

	"github.com/rknas/firmware/internal/waittest"
)

const ms = time.Millisecond

type rig struct {
	t         *testing.T
	src       *buttontest.Source
	clk       *buttontest.Clock
	led       *buttontest.LED
	w         *button.Watcher
	effects   chan button.Effect
	recovered chan button.Press
	done      chan error
	cancel    context.CancelFunc
	seen      []string
	// during, if set, runs inside the recovery action.
	during func(ctx context.Context)
}

func newRig(t *testing.T, src *buttontest.Source, recoverErr error) *rig {
	t.Helper()
	r := &rig{
		t: t, src: src, clk: buttontest.NewClock(0), led: buttontest.NewLED(),
		effects: make(chan button.Effect, 100), recovered: make(chan button.Press, 10), done: make(chan error, 1),
	}
	w, err := button.NewWatcher(button.Config{
		Source: src,
		Recover: func(ctx context.Context) error {
			p, ok := button.PressFrom(ctx)
			if !ok {
				t.Error("recovery context carries no Press")
			}
			if r.during != nil {
				r.during(ctx)
			}
			r.recovered <- p
			return recoverErr
		},
		LED:    r.led,
		Clock:  r.clk,
		Wall:   clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Notify: func(e button.Effect) { r.effects <- e },
	})
	if err != nil {
		t.Fatal(err)
	}
	r.w = w
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Error("watcher did not stop")
		}
	})
	return r
}

// waitFor reads effects until one of kind arrives. The timeout only turns a
// hang into a failure; synchronisation is the effect itself.
func (r *rig) waitFor(kind button.EffectKind) button.Effect {
	r.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-r.effects:
			r.seen = append(r.seen, string(e.Kind))
			if e.Kind == kind {
				return e
			}
		case <-timeout:
			r.t.Fatalf("no %s effect; saw %v", kind, r.seen)
		}
	}
}

func (r *rig) noRecovery() {
	r.t.Helper()
	select {
	case p := <-r.recovered:
		r.t.Fatalf("recovery ran for press %+v", p)
	default:
	}
	if n := r.w.Status().Actions; n != 0 {
		r.t.Fatalf("status counts %d actions", n)
	}
}

// The action says when its effect is on disk; the watcher keeps that
// latency apart from the action's end, once per press, and Durable does
// nothing outside a press.
func TestWatcherDurableLatency(t *testing.T) {
	button.Durable(context.Background())
	r := newRig(t, buttontest.NewSource(), nil)
	r.during = func(ctx context.Context) {
		r.clk.Set(r.clk.Now() + 12*ms)
		button.Durable(ctx)
		r.clk.Set(r.clk.Now() + 5*ms)
		button.Durable(ctx) // a second call changes nothing
		r.clk.Set(r.clk.Now() + 20*ms)
	}
	r.src.Press(0)
	r.clk.Set(4000 * ms)
	r.waitFor(button.EffectArmed)
	r.src.Release(4100 * ms)
	r.clk.Set(4130 * ms)
	r.waitFor(button.EffectRecover)
	waittest.Recv(t, r.recovered, "the recovery")
	s := r.w.Status()
	if s.LastDurableLatency != 42*ms || s.LastActionLatency != 67*ms {
		t.Errorf("durable after %s, action done after %s: want 42ms and 67ms", s.LastDurableLatency, s.LastActionLatency)
	}
	raw, err := json.Marshal(s)
	if err != nil || !strings.Contains(string(raw), `"last_durable_latency":"42ms"`) {
		t.Errorf("status JSON %s (%v) lacks the durable latency", raw, err)
	}
}

func TestWatcherResetAt4100ms(t *testing.T) {
	r := newRig(t, buttontest.NewSource(), nil)
	r.src.Press(0)
	r.clk.Set(4000 * ms)
	r.waitFor(button.EffectArmed)
	if got := r.led.Calls(); len(got) != 1 || got[0] != "blink 100ms/100ms" {
		t.Fatalf("LED calls at arming = %v", got)
	}
	if s := r.w.Status(); s.State != button.StateArmed || !s.Available || s.Device != "fake button" {
		t.Fatalf("status while armed = %+v", s)
	}
	r.src.Release(4100 * ms)
	r.clk.Set(4130 * ms)
	e := r.waitFor(button.EffectRecover)
	if e.Held != 4100*ms {
		t.Errorf("held = %s, want 4.1s", e.Held)
	}
	p := waittest.Recv(t, r.recovered, "the recovery")
	if p.Start != 0 || p.End != 4100*ms || p.Held() != 4100*ms {
		t.Errorf("press = %+v", p)
	}
	s := r.w.Status()
	if s.Actions != 1 || s.LastAction != "ok" || s.LastPressDuration != 4100*ms || s.State != button.StateIdle {
		t.Errorf("status after reset = %+v", s)
	}
	// The release was acted on once stable for the debounce: 30 ms later.
	if s.LastActionLatency != 30*ms {
		t.Errorf("latency = %s, want the 30ms debounce", s.LastActionLatency)
	}
	// The press was confirmed with the event clock at 4 s and the wall clock
	// standing still, so it began 4 s before the wall clock's time.
	if want := time.Date(2026, 1, 2, 3, 4, 1, 0, time.UTC); !s.LastPress.Equal(want) {
		t.Errorf("LastPress = %s, want %s", s.LastPress, want)
	}
	if got := r.led.Calls(); got[len(got)-1] != "normal" {
		t.Errorf("LED after the action = %v, want normal last", got)
	}
	b, _ := json.Marshal(s)
	for _, want := range []string{`"state":"idle"`, `"last_press_duration":"4.1s"`, `"last_action":"ok"`, `"available":true`, `"actions":1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status JSON %s lacks %s", b, want)
		}
	}
}

func TestWatcherShortPressDoesNothing(t *testing.T) {
	r := newRig(t, buttontest.NewSource(), nil)
	r.src.Press(0)
	r.clk.Set(3900 * ms)
	r.src.Release(3900 * ms)
	r.clk.Set(3930 * ms)
	e := r.waitFor(button.EffectShortPress)
	if e.Held != 3900*ms {
		t.Errorf("held = %s", e.Held)
	}
	r.noRecovery()
	if got := r.led.Calls(); len(got) != 0 {
		t.Errorf("LED calls = %v, want none", got)
	}
}

func TestWatcherHoldPastCancel(t *testing.T) {
	r := newRig(t, buttontest.NewSource(), nil)
	r.src.Press(0)
	r.clk.Set(4000 * ms)
	r.waitFor(button.EffectArmed)
	r.clk.Set(15000 * ms)
	r.waitFor(button.EffectCancelled)
	if s := r.w.Status(); s.State != button.StateCancelled {
		t.Errorf("state = %s", s.State)
	}
	r.src.Release(16000 * ms)
	r.clk.Set(16030 * ms)
	e := r.waitFor(button.EffectCancelRelease)
	if e.Held != 16000*ms {
		t.Errorf("held = %s", e.Held)
	}
	r.noRecovery()
	if got := strings.Join(r.led.Calls(), ","); got != "blink 100ms/100ms,normal" {
		t.Errorf("LED calls = %s", got)
	}
}

func TestWatcherHeldAtStart(t *testing.T) {
	src := buttontest.NewSource()
	src.Initial = true
	r := newRig(t, src, nil)
	r.waitFor(button.EffectHeldAtStart)
	r.clk.Set(20000 * ms)
	r.src.Release(20000 * ms)
	r.clk.Set(20030 * ms)
	r.waitFor(button.EffectIgnoredRelease)
	r.noRecovery()
	// Once released, the button works.
	r.src.Press(21000 * ms)
	r.clk.Set(25000 * ms)
	r.waitFor(button.EffectArmed)
	r.src.Release(25100 * ms)
	r.clk.Set(25130 * ms)
	if e := r.waitFor(button.EffectRecover); e.Held != 4100*ms {
		t.Errorf("held = %s", e.Held)
	}
}

func TestWatcherGlitchAndTwoPresses(t *testing.T) {
	r := newRig(t, buttontest.NewSource(), nil)
	r.src.Press(0)
	r.src.Release(10 * ms)
	r.clk.Set(100 * ms)
	r.waitFor(button.EffectGlitch)
	for i, start := range []time.Duration{1000 * ms, 10000 * ms} {
		r.src.Press(start)
		r.clk.Set(start + 4000*ms)
		r.waitFor(button.EffectArmed)
		r.src.Release(start + 4200*ms)
		r.clk.Set(start + 4300*ms)
		r.waitFor(button.EffectRecover)
		if n := r.w.Status().Actions; n != i+1 {
			t.Fatalf("actions after press %d = %d", i+1, n)
		}
	}
}

func TestWatcherRecoveryFailureIsRecorded(t *testing.T) {
	r := newRig(t, buttontest.NewSource(), errors.New("recovery: journal write: no space left on device"))
	r.src.Press(0)
	r.clk.Set(5000 * ms)
	r.src.Release(5000 * ms)
	r.clk.Set(5100 * ms)
	r.waitFor(button.EffectRecover)
	s := r.w.Status()
	if s.LastAction != "failed" || !strings.Contains(s.LastActionError, "no space left") || s.Actions != 1 {
		t.Errorf("status = %+v", s)
	}
}

func TestWatcherLostEvents(t *testing.T) {
	r := newRig(t, buttontest.NewSource(), nil)
	r.src.Press(0)
	r.clk.Set(4000 * ms)
	r.waitFor(button.EffectArmed)
	r.src.Send(button.Event{Pressed: false, At: 5000 * ms, Lost: true})
	r.clk.Set(5100 * ms)
	r.waitFor(button.EffectLost)
	r.waitFor(button.EffectIgnoredRelease)
	r.noRecovery()
	if got := r.led.Calls(); got[len(got)-1] != "normal" {
		t.Errorf("LED = %v, want normal after the loss", got)
	}
}

func TestWatcherSourceFailsLater(t *testing.T) {
	r := newRig(t, buttontest.NewSource(), nil)
	r.src.Send(button.Event{Err: errors.New("read /dev/input/event0: no such device")})
	var err error
	select {
	case err = <-r.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	r.done <- err // for the cleanup
	if err == nil || !strings.Contains(err.Error(), "fake button stopped: read /dev/input/event0: no such device") {
		t.Fatalf("Run = %v", err)
	}
	if s := r.w.Status(); s.Available || !strings.Contains(s.Error, "no such device") {
		t.Errorf("status = %+v", s)
	}
	if !r.src.Closed() {
		t.Error("source not closed")
	}
}

func TestWatcherUnavailable(t *testing.T) {
	busy := errors.New(`button: request gpio0 line 13 on /dev/gpiochip0: device or resource busy (a kernel driver such as gpio-keys owns the line)`)
	tests := []struct {
		name    string
		src     button.Source
		wantErr string
		kind    string
	}{
		{"no button", nil, "the board has no button", "none"},
		{"line busy", &buttontest.Source{StartErr: busy}, "gpio0 line 13", "fake"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := button.NewWatcher(button.Config{
				Source:  tt.src,
				Recover: func(context.Context) error { return nil },
				Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			err = w.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run = %v, want %q", err, tt.wantErr)
			}
			s := w.Status()
			if s.Available || !strings.Contains(s.Error, tt.wantErr) || s.Source != tt.kind {
				t.Errorf("status = %+v", s)
			}
			b, _ := json.Marshal(s)
			if !strings.Contains(string(b), `"available":false`) {
				t.Errorf("JSON %s", b)
			}
		})
	}
}

func TestNewWatcherValidates(t *testing.T) {
	ok := func(context.Context) error { return nil }
	tests := []struct {
		cfg  button.Config
		want string
	}{
		{button.Config{}, "Config.Recover is nil"},
		{button.Config{Recover: ok, Thresholds: button.Thresholds{Reset: 20 * time.Second}}, "cancel threshold 15s must be longer than the reset threshold 20s"},
	}
	for _, tt := range tests {
		if _, err := button.NewWatcher(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewWatcher = %v, want %q", err, tt.want)
		}
	}
}
