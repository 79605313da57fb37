// Package clock is the time seam of authd: the auth core asks a Clock for the
// time instead of calling time.Now, so tests can move time to the second.
package clock

import "time"

// Clock tells the current time. Times it returns carry a monotonic reading
// where the implementation has one, so durations measured between two of them
// are not affected by steps of the wall clock.
type Clock interface {
	Now() time.Time
}

// System is the real clock.
type System struct{}

var _ Clock = System{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }
