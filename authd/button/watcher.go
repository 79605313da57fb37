package button

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rknas/firmware/authd/clock"
)

// Config configures a Watcher.
type Config struct {
	// Source delivers the edges; nil means the board has no button (Run then
	// returns ErrNoButton and Status says unavailable).
	Source Source
	// Recover is the recovery action, run once per qualifying press. Its
	// context carries the Press (PressFrom) and ends when Run's context does.
	Recover func(ctx context.Context) error
	// LED gives feedback; nil for none.
	LED LED
	// Thresholds; zero fields take DefaultThresholds.
	Thresholds Thresholds
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Clock is the monotonic event clock; nil means MonotonicClock.
	Clock Clock
	// Wall stamps Status times; nil means clock.System.
	Wall clock.Clock
	// Notify, if set, is called after each effect has been applied (LED set,
	// action run). For extra logging and for tests; it must not block long.
	Notify func(Effect)
}

// Press describes the press that triggered a recovery action.
type Press struct {
	// Start and End are the kernel timestamps (CLOCK_MONOTONIC) of the press
	// and release edges.
	Start, End time.Duration
}

// Held is how long the button was held.
func (p Press) Held() time.Duration { return p.End - p.Start }

type pressKey struct{}

// pressed is what the watcher hands the recovery action in its context.
type pressed struct {
	Press
	w       *Watcher
	durable sync.Once
}

// PressFrom returns the press that triggered the recovery action whose
// context ctx is.
func PressFrom(ctx context.Context) (Press, bool) {
	p, ok := ctx.Value(pressKey{}).(*pressed)
	if !ok {
		return Press{}, false
	}
	return p.Press, true
}

// Durable is called by the recovery action once its effect is on disk, so
// that a power cut from then on still ends in a reset: the watcher logs
// "button: recovery durable" with the time since the release edge's
// kernel timestamp (the figure the firmware's 60 ms goal is about) and
// keeps it in the status. Outside a press's context it does nothing.
func Durable(ctx context.Context) {
	p, ok := ctx.Value(pressKey{}).(*pressed)
	if !ok {
		return
	}
	p.durable.Do(func() {
		latency := p.w.cfg.Clock.Now() - p.End
		p.w.update(func(s *Status) { s.LastDurableLatency = latency })
		p.w.log.Info("button: recovery durable", "latency", latency)
	})
}

// Status is a snapshot of the watcher for the status API and logs.
type Status struct {
	// Source is the source kind: "gpio", "input", "none".
	Source string
	// Device is what the source opened.
	Device string
	// Available says the button is being watched; Error says why not.
	Available bool
	Error     string
	State     State
	// LastPress is the wall time the last press began; LastPressDuration how
	// long it was held (zero while still held).
	LastPress         time.Time
	LastPressDuration time.Duration
	// LastAction is "", "ok" or "failed"; LastActionError the failure.
	LastAction      string
	LastActionError string
	LastActionAt    time.Time
	// LastActionLatency runs from the release edge's kernel timestamp to the
	// action returning.
	LastActionLatency time.Duration
	// LastDurableLatency runs from the release edge's kernel timestamp to
	// the action's effect being on disk (Durable).
	LastDurableLatency time.Duration
	// Actions counts recovery actions run since start.
	Actions int
}

// MarshalJSON writes durations as strings ("4.1s") and omits unset times.
func (s Status) MarshalJSON() ([]byte, error) {
	str := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	return json.Marshal(struct {
		Source            string `json:"source"`
		Device            string `json:"device,omitempty"`
		Available         bool   `json:"available"`
		Error             string `json:"error,omitempty"`
		State             State  `json:"state"`
		LastPress         string `json:"last_press,omitempty"`
		LastPressDuration string `json:"last_press_duration,omitempty"`
		LastAction        string `json:"last_action,omitempty"`
		LastActionError   string `json:"last_action_error,omitempty"`
		LastActionAt      string `json:"last_action_at,omitempty"`
		LastActionLatency string `json:"last_action_latency,omitempty"`
		LastDurable       string `json:"last_durable_latency,omitempty"`
		Actions           int    `json:"actions"`
	}{
		s.Source, s.Device, s.Available, s.Error, s.State, str(s.LastPress), durStr(s.LastPressDuration),
		s.LastAction, s.LastActionError, str(s.LastActionAt), durStr(s.LastActionLatency), durStr(s.LastDurableLatency), s.Actions,
	})
}

func durStr(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// Watcher runs the button state machine against a source, an LED and the
// recovery action. Create it with NewWatcher, run it with Run, read Status
// from any goroutine.
type Watcher struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	status Status

	ready     chan struct{}
	readyOnce sync.Once
}

// NewWatcher checks cfg and returns a watcher that has not started.
func NewWatcher(cfg Config) (*Watcher, error) {
	t := cfg.Thresholds
	if t.Reset == 0 {
		t.Reset = DefaultThresholds.Reset
	}
	if t.Cancel == 0 {
		t.Cancel = DefaultThresholds.Cancel
	}
	if t.Debounce == 0 {
		t.Debounce = DefaultThresholds.Debounce
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	cfg.Thresholds = t
	if cfg.Recover == nil {
		return nil, errors.New("button: Config.Recover is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = MonotonicClock{}
	}
	if cfg.Wall == nil {
		cfg.Wall = clock.System{}
	}
	w := &Watcher{cfg: cfg, log: cfg.Logger.With("component", "button"), ready: make(chan struct{})}
	w.status.State = StateIdle
	w.status.Source = "none"
	if cfg.Source != nil {
		w.status.Source = cfg.Source.Kind()
	}
	return w, nil
}

// Ready is closed once Run has started the source (edges from then on are
// seen) or failed to; Status says which.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

func (w *Watcher) markReady() { w.readyOnce.Do(func() { close(w.ready) }) }

// Status returns a snapshot.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

func (w *Watcher) update(f func(*Status)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(&w.status)
}

// Run watches the button until ctx ends (then it returns nil), and closes the
// source when it returns. If the source cannot start (no button, line busy,
// missing chip or device) it records the error in Status and returns it at
// once: the caller logs it and carries on. Run is called once.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.markReady()
	src := w.cfg.Source
	if src == nil {
		w.fail(ErrNoButton)
		return ErrNoButton
	}
	info, events, err := src.Start()
	if err != nil {
		src.Close()
		w.fail(err)
		return err
	}
	defer src.Close()
	t := w.cfg.Thresholds
	if info.Debounced {
		t.Debounce = 0
	}
	m, err := NewMachine(t)
	if err != nil {
		return err // unreachable: validated in NewWatcher
	}
	w.update(func(s *Status) { s.Available, s.Error, s.Device = true, "", info.Device })
	w.log.Info("button: watching", "device", info.Device, "reset", t.Reset, "cancel", t.Cancel,
		"debounce", t.Debounce, "kernel_debounce", info.Debounced)
	defer w.ledNormal()

	w.apply(ctx, m, m.Start(info.Pressed, w.cfg.Clock.Now()))
	w.markReady()
	var timer <-chan struct{}
	stop := func() {}
	defer func() { stop() }()
	for {
		stop()
		timer, stop = nil, func() {}
		if at, ok := m.Deadline(); ok {
			timer, stop = w.cfg.Clock.At(at)
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok || ev.Err != nil {
				err := ev.Err
				if err == nil {
					err = errors.New("event channel closed")
				}
				err = fmt.Errorf("button: %s stopped: %w", info.Device, err)
				w.fail(err)
				return err
			}
			w.apply(ctx, m, m.Edge(ev))
			w.apply(ctx, m, m.Tick(w.cfg.Clock.Now()))
		case <-timer:
			// Feed edges that are already queued first: their timestamps
			// precede this tick, so a release just before a threshold counts
			// as a release before it.
			if err := w.drain(ctx, m, events); err != nil {
				return err
			}
			w.apply(ctx, m, m.Tick(w.cfg.Clock.Now()))
		}
	}
}

func (w *Watcher) drain(ctx context.Context, m *Machine, events <-chan Event) error {
	for {
		select {
		case ev, ok := <-events:
			if !ok || ev.Err != nil {
				// Leave it for the main loop to report.
				return nil
			}
			w.apply(ctx, m, m.Edge(ev))
		default:
			return nil
		}
	}
}

func (w *Watcher) fail(err error) {
	if errors.Is(err, ErrNoButton) {
		w.log.Info("button: this board has no button to watch")
	} else {
		w.log.Error("button: not watching", "err", err)
	}
	w.update(func(s *Status) { s.Available, s.Error = false, err.Error() })
}

// wallAt converts an event-clock time to wall time.
func (w *Watcher) wallAt(at time.Duration) time.Time {
	return w.cfg.Wall.Now().Add(at - w.cfg.Clock.Now())
}

func (w *Watcher) apply(ctx context.Context, m *Machine, effects []Effect) {
	t := m.Thresholds()
	for _, e := range effects {
		switch e.Kind {
		case EffectPressed:
			w.log.Info("button: pressed")
			w.update(func(s *Status) { s.LastPress, s.LastPressDuration = w.wallAt(e.At), 0 })
		case EffectGlitch:
			w.log.Debug("button: glitch ignored", "length", e.Held)
		case EffectArmed:
			w.log.Info("button: held for the reset threshold: release now to reset", "held", e.Held)
			w.ledBlink()
		case EffectCancelled:
			w.log.Info("button: held for the cancel threshold: cancelled", "held", e.Held)
			w.ledNormal()
		case EffectShortPress:
			w.log.Info("button: released before the reset threshold: nothing done", "held", e.Held, "reset", t.Reset)
		case EffectCancelRelease:
			w.log.Info("button: released after cancelling: nothing done", "held", e.Held)
		case EffectHeldAtStart:
			w.log.Warn("button: held when watching began: ignored until released")
		case EffectIgnoredRelease:
			w.log.Info("button: released: watching again")
		case EffectLost:
			w.log.Warn("button: events were lost: press abandoned, waiting for a release", "held", e.Held)
			w.ledNormal()
		case EffectRecover:
			w.recover(ctx, e)
		}
		if e.Held > 0 && e.Kind != EffectGlitch && e.Kind != EffectArmed && e.Kind != EffectCancelled {
			w.update(func(s *Status) { s.LastPressDuration = e.Held })
		}
		w.update(func(s *Status) { s.State = m.State() })
		if w.cfg.Notify != nil {
			w.cfg.Notify(e)
		}
	}
}

func (w *Watcher) recover(ctx context.Context, e Effect) {
	w.log.Warn("button: released between the thresholds: running the recovery action", "held", e.Held)
	p := &pressed{Press: Press{Start: e.At - e.Held, End: e.At}, w: w}
	err := w.cfg.Recover(context.WithValue(ctx, pressKey{}, p))
	latency := w.cfg.Clock.Now() - e.At
	w.ledNormal()
	w.update(func(s *Status) {
		s.Actions++
		s.LastActionAt = w.cfg.Wall.Now()
		s.LastActionLatency = latency
		s.LastAction, s.LastActionError = "ok", ""
		if err != nil {
			s.LastAction, s.LastActionError = "failed", err.Error()
		}
	})
	if err != nil {
		w.log.Error("button: recovery action failed", "err", err, "latency", latency)
		return
	}
	w.log.Info("button: recovery action done", "latency", latency)
}

func (w *Watcher) ledBlink() {
	if w.cfg.LED == nil {
		return
	}
	if err := w.cfg.LED.Blink(ArmedBlink, ArmedBlink); err != nil {
		w.log.Warn("button: LED blink", "err", err)
	}
}

func (w *Watcher) ledNormal() {
	if w.cfg.LED == nil {
		return
	}
	if err := w.cfg.LED.Normal(); err != nil {
		w.log.Warn("button: LED normal", "err", err)
	}
}
