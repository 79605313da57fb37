// Package netconftest holds fakes for testing code that uses netconf: an
// Applier that records what it is asked to apply and timers driven by a fake
// clock.
package netconftest

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/netconf"
)

// Applier is a fake netconf.Applier. It keeps the last configuration applied
// successfully as the state of a pretend system. It is safe for concurrent
// use.
type Applier struct {
	// Fail, if set, is asked before each Apply; an error it returns is
	// returned by Apply and the pretend system is left unchanged.
	Fail func(netconf.Config) error

	mu      sync.Mutex
	current *netconf.Config
	calls   []netconf.Config
	closed  bool
}

var _ netconf.Applier = (*Applier)(nil)

// Apply records c and, unless Fail refuses it, makes it current.
func (a *Applier) Apply(ctx context.Context, c netconf.Config) error {
	a.mu.Lock()
	fail := a.Fail
	a.calls = append(a.calls, c.Clone())
	a.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if fail != nil {
		if err := fail(c); err != nil {
			return err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cc := c.Clone()
	a.current = &cc
	return nil
}

// Current returns the configuration on the pretend system, and false when
// nothing has been applied yet.
func (a *Applier) Current() (netconf.Config, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.current == nil {
		return netconf.Config{}, false
	}
	return a.current.Clone(), true
}

// Calls returns every configuration Apply was called with, in order.
func (a *Applier) Calls() []netconf.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

// Closed reports whether Close was called.
func (a *Applier) Closed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// Status reports the current configuration as if every link existed, was up
// and carried its static addresses; DHCP interfaces are still acquiring.
func (a *Applier) Status(ctx context.Context) ([]netconf.InterfaceStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []netconf.InterfaceStatus{}
	if a.current == nil {
		return out, nil
	}
	for _, ifc := range a.current.Interfaces {
		st := netconf.InterfaceStatus{Name: ifc.Name, Mode: ifc.Mode, Present: true, Up: true,
			Addresses: append([]string{}, ifc.Addresses...)}
		if ifc.Mode == netconf.ModeDHCP {
			st.Lease = &netconf.LeaseInfo{State: netconf.LeaseAcquiring}
		}
		out = append(out, st)
	}
	return out, nil
}

// Close marks the fake closed.
func (a *Applier) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	return nil
}

// Timers is a fake netconf.Timers: timers fire when Advance moves the clock
// past their time, in the goroutine that calls Advance, so a test knows the
// rollback has run when Advance returns.
type Timers struct {
	clk *clocktest.Clock

	mu     sync.Mutex
	timers []*timer
}

var _ netconf.Timers = (*Timers)(nil)

// NewTimers returns timers driven by clk.
func NewTimers(clk *clocktest.Clock) *Timers { return &Timers{clk: clk} }

type timer struct {
	owner *Timers
	due   time.Time
	f     func()
	done  bool
}

// AfterFunc arranges for f to be called by the Advance that reaches d from
// now.
func (t *Timers) AfterFunc(d time.Duration, f func()) netconf.Timer {
	t.mu.Lock()
	defer t.mu.Unlock()
	tm := &timer{owner: t, due: t.clk.Now().Add(d), f: f}
	t.timers = append(t.timers, tm)
	return tm
}

// Stop prevents the timer from firing.
func (tm *timer) Stop() bool {
	tm.owner.mu.Lock()
	defer tm.owner.mu.Unlock()
	was := !tm.done
	tm.done = true
	return was
}

// Advance moves the clock forward by d and runs, in order, the functions of
// the timers that became due.
func (t *Timers) Advance(d time.Duration) {
	t.clk.Advance(d)
	now := t.clk.Now()
	t.mu.Lock()
	var due []*timer
	kept := t.timers[:0]
	for _, tm := range t.timers {
		switch {
		case tm.done:
		case !tm.due.After(now):
			tm.done = true
			due = append(due, tm)
		default:
			kept = append(kept, tm)
		}
	}
	t.timers = kept
	t.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].due.Before(due[j].due) })
	for _, tm := range due {
		tm.f()
	}
}

// Waiting returns how many timers have neither fired nor been stopped.
func (t *Timers) Waiting() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, tm := range t.timers {
		if !tm.done {
			n++
		}
	}
	return n
}
