// Package timesynctest provides fakes for timesync's seams (system clock,
// Setter, RTC, resolver), a misbehaving NTP server and a real chronyd for
// tests.
package timesynctest

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/timesync"
)

// Clock is a fake system clock that ticks with real time from a settable
// starting point, as the kernel's CLOCK_REALTIME does. NTP offsets measured
// against it are meaningful, unlike against a frozen clock. Safe for
// concurrent use.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration // added to time.Now()
}

var _ clock.Clock = (*Clock)(nil)

// NewClock returns a ticking clock that now reads t.
func NewClock(t time.Time) *Clock {
	c := &Clock{}
	c.Set(t)
	return c
}

// Now returns real time shifted by the clock's offset; the monotonic reading
// is kept, as the real clock's is.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Set makes the clock read t now.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = t.Sub(time.Now().Round(0))
}

// Advance moves the clock by d (backwards when negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// Adjustable is a fake clock a Setter can move: *Clock and
// *clocktest.Clock are.
type Adjustable interface {
	Set(t time.Time)
	Advance(d time.Duration)
}

// Setter records clock changes and applies them to a fake clock. A Step with
// the zero time fails the test.
type Setter struct {
	tb    testing.TB
	clock Adjustable

	mu    sync.Mutex
	err   error
	steps []time.Time
	slews []time.Duration
}

var _ timesync.Setter = (*Setter)(nil)

// NewSetter returns a Setter that moves c (which may be nil).
func NewSetter(tb testing.TB, c Adjustable) *Setter {
	return &Setter{tb: tb, clock: c}
}

// Fail makes every later call return err (nil: succeed again).
func (s *Setter) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// Step records t and sets the fake clock to it.
func (s *Setter) Step(t time.Time) error {
	if t.IsZero() {
		s.tb.Errorf("timesynctest: Setter.Step called with the zero time")
		return errors.New("timesynctest: zero time")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.steps = append(s.steps, t)
	if s.clock != nil {
		s.clock.Set(t)
	}
	return nil
}

// Slew records d and applies it to the fake clock at once.
func (s *Setter) Slew(d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.slews = append(s.slews, d)
	if s.clock != nil {
		s.clock.Advance(d)
	}
	return nil
}

// Steps returns the times stepped to, in order.
func (s *Setter) Steps() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.steps...)
}

// Slews returns the offsets slewed, in order.
func (s *Setter) Slews() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.slews...)
}

// Changes returns how many times the clock was stepped or slewed.
func (s *Setter) Changes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.steps) + len(s.slews)
}

// RTC is a fake hardware clock holding whole seconds. It does not tick.
type RTC struct {
	mu       sync.Mutex
	t        time.Time
	readErr  error
	writeErr error
	writes   int
}

var _ timesync.RTC = (*RTC)(nil)

// NewRTC returns an RTC reading t.
func NewRTC(t time.Time) *RTC { return &RTC{t: t.UTC().Truncate(time.Second)} }

// Fail sets the errors Read and Write return.
func (r *RTC) Fail(readErr, writeErr error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.readErr, r.writeErr = readErr, writeErr
}

// Read returns the stored time.
func (r *RTC) Read() (time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.t, r.readErr
}

// Write stores t rounded to the second, as the real one does.
func (r *RTC) Write(t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.writeErr != nil {
		return r.writeErr
	}
	r.t = t.UTC().Round(time.Second)
	r.writes++
	return nil
}

// Writes returns how many writes succeeded.
func (r *RTC) Writes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writes
}

// Resolver maps host names to addresses; other names fail as DNS does for
// an unknown name.
type Resolver map[string][]string

var _ timesync.Resolver = Resolver(nil)

// LookupHost returns the addresses listed for host.
func (r Resolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	addrs, ok := r[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return append([]string(nil), addrs...), nil
}
