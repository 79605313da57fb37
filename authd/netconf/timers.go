package netconf

import "time"

// Timers starts timers. It is the seam that lets tests fire the rollback of an
// unconfirmed change without waiting for it.
type Timers interface {
	// AfterFunc calls f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a timer started by Timers.
type Timer interface {
	// Stop prevents the timer from firing. It reports false when the timer
	// has already fired or been stopped.
	Stop() bool
}

// SystemTimers are the real timers of package time.
type SystemTimers struct{}

var _ Timers = SystemTimers{}

// AfterFunc calls time.AfterFunc.
func (SystemTimers) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
