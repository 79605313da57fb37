// Package waittest bounds a test's waits on channels, so a broken rule
// fails the test with a message instead of hanging it until go test's
// timeout.
package waittest

import (
	"testing"
	"time"
)

// Within is the default bound: long enough for a loaded 2-core machine,
// short beside go test's own timeout.
const Within = 10 * time.Second

// Recv returns the next value from ch, or fails the test when none comes
// within Within; what names the awaited event in the failure.
func Recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	return RecvWithin(t, ch, Within, what)
}

// RecvWithin is Recv with its own bound.
func RecvWithin[T any](t testing.TB, ch <-chan T, within time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("waited %v for %s: it never came", within, what)
		var zero T
		return zero
	}
}
