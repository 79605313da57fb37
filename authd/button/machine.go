package button

import (
	"fmt"
	"time"
)

// Thresholds are the hold times and the glitch filter of the machine.
type Thresholds struct {
	// Reset: a release after holding at least this long resets (default 4 s).
	Reset time.Duration
	// Cancel: holding at least this long cancels instead (default 15 s).
	Cancel time.Duration
	// Debounce: pulses shorter than this are glitches (default 30 ms). The
	// watcher sets it to zero when the kernel debounces already.
	Debounce time.Duration
}

// DefaultThresholds are the documented defaults.
var DefaultThresholds = Thresholds{Reset: 4 * time.Second, Cancel: 15 * time.Second, Debounce: 30 * time.Millisecond}

// Validate checks the thresholds, naming the bad one.
func (t Thresholds) Validate() error {
	switch {
	case t.Reset <= 0:
		return fmt.Errorf("button: reset threshold %s must be positive", t.Reset)
	case t.Cancel <= t.Reset:
		return fmt.Errorf("button: cancel threshold %s must be longer than the reset threshold %s", t.Cancel, t.Reset)
	case t.Debounce < 0 || t.Debounce >= t.Reset:
		return fmt.Errorf("button: debounce %s must be between 0 and the reset threshold %s", t.Debounce, t.Reset)
	}
	return nil
}

// State is where the machine stands.
type State string

// The states.
const (
	StateIdle      State = "idle"
	StatePressed   State = "pressed"   // held, not yet for the reset threshold
	StateArmed     State = "armed"     // held past the reset threshold: release now to reset
	StateCancelled State = "cancelled" // held past the cancel threshold
	// StateWaitRelease: held when watching began, or events were lost; nothing
	// happens until the button has been released once.
	StateWaitRelease State = "wait-release"
)

// EffectKind says what the machine decided.
type EffectKind string

// The effects. The watcher turns them into LED changes, log lines and the
// recovery action.
const (
	EffectPressed        EffectKind = "pressed"         // a press was confirmed
	EffectGlitch         EffectKind = "glitch"          // a pulse shorter than the debounce was ignored
	EffectArmed          EffectKind = "armed"           // held past the reset threshold: LED fast blink
	EffectCancelled      EffectKind = "cancelled"       // held past the cancel threshold: LED back to normal
	EffectShortPress     EffectKind = "short-press"     // released before the reset threshold: nothing happens
	EffectRecover        EffectKind = "recover"         // released between the thresholds: run the action
	EffectCancelRelease  EffectKind = "cancel-release"  // released after a cancel: nothing happens
	EffectHeldAtStart    EffectKind = "held-at-start"   // pressed when watching began: ignored until released
	EffectIgnoredRelease EffectKind = "ignored-release" // the release that ends a wait-release
	EffectLost           EffectKind = "lost"            // events were lost: the press is abandoned
)

// Effect is one decision of the machine.
type Effect struct {
	Kind EffectKind
	// At is when it happened on the event clock: the edge's timestamp, or the
	// moment a threshold was crossed.
	At time.Duration
	// Held is how long the button had been held at At (press effects), or
	// the length of the ignored pulse (glitch).
	Held time.Duration
}

// Machine is the button's pure state machine: it holds no clock and does no
// I/O. Feed it edges (Edge) and the passing of time (Tick), and schedule a
// Tick at Deadline. Decisions use the edges' timestamps, so a late Tick never
// changes the outcome of a release. Exactly one of short-press, recover,
// cancel-release, ignored-release or lost ends each press.
type Machine struct {
	t     Thresholds
	state State
	level bool // debounced level
	start time.Duration

	pending      bool // an edge waiting to be stable for Debounce
	pendingLevel bool
	pendingAt    time.Duration
}

// NewMachine returns a machine in the idle state. Call Start before the rest.
func NewMachine(t Thresholds) (*Machine, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &Machine{t: t, state: StateIdle}, nil
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Thresholds returns the machine's thresholds.
func (m *Machine) Thresholds() Thresholds { return m.t }

// Start sets the initial level. A button already held waits for a release.
func (m *Machine) Start(pressed bool, now time.Duration) []Effect {
	m.level, m.pending = pressed, false
	if pressed {
		m.state = StateWaitRelease
		return []Effect{{Kind: EffectHeldAtStart, At: now}}
	}
	m.state = StateIdle
	return nil
}

// Edge feeds one edge. Edges must come in the order the source sent them.
func (m *Machine) Edge(ev Event) []Effect {
	var out []Effect
	if ev.Lost {
		out = append(out, m.abandon(ev.At)...)
	}
	out = append(out, m.settle(ev.At)...)
	cur := m.level
	if m.pending {
		cur = m.pendingLevel
	}
	if ev.Pressed == cur {
		return out // a repeat of the level we have: nothing changed
	}
	if m.pending {
		// The edge undoes the pending one within the debounce: a glitch.
		m.pending = false
		return append(out, Effect{Kind: EffectGlitch, At: ev.At, Held: ev.At - m.pendingAt})
	}
	if m.t.Debounce <= 0 {
		out = append(out, m.advance(ev.At)...)
		return append(out, m.confirm(ev.Pressed, ev.At)...)
	}
	m.pending, m.pendingLevel, m.pendingAt = true, ev.Pressed, ev.At
	return out
}

// Tick tells the machine the time is now.
func (m *Machine) Tick(now time.Duration) []Effect {
	out := m.settle(now)
	// A release still within its debounce may end the press before a
	// threshold that falls in between: the thresholds wait for it. If it
	// turns out a glitch, the next Tick crosses them, at their own time.
	if m.pending && !m.pendingLevel && m.pendingAt < now {
		now = m.pendingAt
	}
	return append(out, m.advance(now)...)
}

// Deadline returns when the machine next wants a Tick, or false if it waits
// for an edge only.
func (m *Machine) Deadline() (time.Duration, bool) {
	var d time.Duration
	ok := false
	set := func(t time.Duration) {
		if !ok || t < d {
			d, ok = t, true
		}
	}
	if m.pending {
		set(m.pendingAt + m.t.Debounce)
		if !m.pendingLevel {
			// The thresholds wait for a pending release (see Tick).
			return d, ok
		}
	}
	switch m.state {
	case StatePressed:
		set(m.start + m.t.Reset)
	case StateArmed:
		set(m.start + m.t.Cancel)
	}
	return d, ok
}

// settle confirms a pending edge that has been stable for the debounce by now.
func (m *Machine) settle(now time.Duration) []Effect {
	if !m.pending || now-m.pendingAt < m.t.Debounce {
		return nil
	}
	m.pending = false
	out := m.advance(m.pendingAt)
	return append(out, m.confirm(m.pendingLevel, m.pendingAt)...)
}

// advance crosses the hold thresholds reached by time t.
func (m *Machine) advance(t time.Duration) []Effect {
	var out []Effect
	if m.state == StatePressed && t-m.start >= m.t.Reset {
		m.state = StateArmed
		out = append(out, Effect{Kind: EffectArmed, At: m.start + m.t.Reset, Held: m.t.Reset})
	}
	if m.state == StateArmed && t-m.start >= m.t.Cancel {
		m.state = StateCancelled
		out = append(out, Effect{Kind: EffectCancelled, At: m.start + m.t.Cancel, Held: m.t.Cancel})
	}
	return out
}

// confirm applies a debounced level change at time at.
func (m *Machine) confirm(pressed bool, at time.Duration) []Effect {
	m.level = pressed
	if pressed {
		if m.state == StateIdle {
			m.state, m.start = StatePressed, at
			return []Effect{{Kind: EffectPressed, At: at}}
		}
		return nil
	}
	held := at - m.start
	prev := m.state
	m.state = StateIdle
	switch prev {
	case StatePressed:
		return []Effect{{Kind: EffectShortPress, At: at, Held: held}}
	case StateArmed:
		return []Effect{{Kind: EffectRecover, At: at, Held: held}}
	case StateCancelled:
		return []Effect{{Kind: EffectCancelRelease, At: at, Held: held}}
	case StateWaitRelease:
		return []Effect{{Kind: EffectIgnoredRelease, At: at}}
	}
	return nil
}

// abandon gives up the current press after lost events: whatever the lost
// edges were, the press cannot be judged, so nothing is done until a release.
func (m *Machine) abandon(at time.Duration) []Effect {
	e := Effect{Kind: EffectLost, At: at}
	switch m.state {
	case StatePressed, StateArmed, StateCancelled:
		e.Held = at - m.start
	}
	m.state, m.level, m.pending = StateWaitRelease, true, false
	return []Effect{e}
}
