// Package buttontest provides fakes of the button package's seams: a source
// driven by method calls, a manually advanced monotonic clock, and an LED that
// records what it was told.
package buttontest

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/rknas/firmware/authd/button"
)

// Source is a fake button. Press and Release send edges with the given
// kernel timestamps; they block until the watcher has received the edge.
type Source struct {
	// Initial is the level reported by Start.
	Initial bool
	// Debounced is reported by Start: set it to skip the watcher's debounce.
	Debounced bool
	// StartErr, if set, makes Start fail with it.
	StartErr error

	mu      sync.Mutex
	started bool
	closed  bool
	ch      chan button.Event
}

var _ button.Source = (*Source)(nil)

// NewSource returns a fake source whose button is released at start.
func NewSource() *Source { return &Source{ch: make(chan button.Event)} }

// Kind returns "fake".
func (s *Source) Kind() string { return "fake" }

// Start reports Initial and returns the edge channel.
func (s *Source) Start() (button.StartInfo, <-chan button.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.StartErr != nil {
		return button.StartInfo{}, nil, s.StartErr
	}
	if s.started {
		return button.StartInfo{}, nil, errors.New("buttontest: started twice")
	}
	s.started = true
	return button.StartInfo{Pressed: s.Initial, Debounced: s.Debounced, Device: "fake button"}, s.ch, nil
}

// Close marks the source closed.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// Closed reports whether Close was called.
func (s *Source) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Press sends a press edge stamped at.
func (s *Source) Press(at time.Duration) { s.Send(button.Event{Pressed: true, At: at}) }

// Release sends a release edge stamped at.
func (s *Source) Release(at time.Duration) { s.Send(button.Event{Pressed: false, At: at}) }

// Send sends any event, e.g. one with Lost or Err set.
func (s *Source) Send(ev button.Event) { s.ch <- ev }

// Clock is a fake monotonic clock. Timers fire when Advance or Set reaches
// them. It is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []*timer
}

type timer struct {
	at time.Duration
	ch chan struct{}
}

var _ button.Clock = (*Clock)(nil)

// NewClock returns a clock standing at now.
func NewClock(now time.Duration) *Clock { return &Clock{now: now} }

// Now returns the clock's time.
func (c *Clock) Now() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// At returns a channel that receives when the clock reaches t.
func (c *Clock) At(t time.Duration) (<-chan struct{}, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tm := &timer{at: t, ch: make(chan struct{}, 1)}
	if t <= c.now {
		tm.ch <- struct{}{}
		return tm.ch, func() {}
	}
	c.timers = append(c.timers, tm)
	return tm.ch, func() { c.stop(tm) }
}

func (c *Clock) stop(tm *timer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.timers {
		if x == tm {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			return
		}
	}
}

// Advance moves the clock forward by d and fires the timers it reaches.
func (c *Clock) Advance(d time.Duration) { c.Set(c.Now() + d) }

// Set moves the clock to t and fires the timers it reaches.
func (c *Clock) Set(t time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	sort.Slice(c.timers, func(i, j int) bool { return c.timers[i].at < c.timers[j].at })
	keep := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at <= t {
			tm.ch <- struct{}{}
			continue
		}
		keep = append(keep, tm)
	}
	c.timers = keep
}

// LED is a fake LED. It records each call as "blink 100ms/100ms", "normal" or
// "close", and sends the same string on Changes if that channel is set.
type LED struct {
	// Err, if set, is returned by every call (after recording it).
	Err error
	// Changes, if non-nil, receives every call; it must be read.
	Changes chan string

	mu    sync.Mutex
	calls []string
}

var _ button.LED = (*LED)(nil)

// NewLED returns a fake LED with a buffered Changes channel.
func NewLED() *LED { return &LED{Changes: make(chan string, 64)} }

func (l *LED) record(s string) error {
	l.mu.Lock()
	l.calls = append(l.calls, s)
	l.mu.Unlock()
	if l.Changes != nil {
		l.Changes <- s
	}
	return l.Err
}

// Blink records "blink <on>/<off>".
func (l *LED) Blink(on, off time.Duration) error {
	return l.record(fmt.Sprintf("blink %s/%s", on, off))
}

// Normal records "normal".
func (l *LED) Normal() error { return l.record("normal") }

// Close records "close".
func (l *LED) Close() error { return l.record("close") }

// Calls returns the calls so far.
func (l *LED) Calls() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}
