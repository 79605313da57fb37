package main

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// rescueWait is how long the rescue console waits for authd to answer
// before it starts anyway.
const rescueWait = 15 * time.Second

// closed is a channel that is always ready.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// afterAuthd waits until ready is closed, authd has exited (done), or wait
// has passed, and reports whether to go on (false: ctx ended first).
func afterAuthd(ctx context.Context, ready, done <-chan struct{}, wait time.Duration) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ready:
	case <-done:
	case <-t.C:
	case <-ctx.Done():
		return false
	}
	return ctx.Err() == nil
}

// lineWatch is an io.Writer that closes seen the first time marker is
// written to it, even split across writes.
type lineWatch struct {
	marker []byte
	seen   chan struct{}

	mu   sync.Mutex
	tail []byte // the last len(marker)-1 bytes written
}

// Write implements io.Writer; it never fails.
func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.seen:
		return len(p), nil
	default:
	}
	buf := append(w.tail, p...)
	if bytes.Contains(buf, w.marker) {
		close(w.seen) // once: later writes return above
		w.tail = nil
		return len(p), nil
	}
	if keep := len(w.marker) - 1; len(buf) > keep {
		buf = buf[len(buf)-keep:]
	}
	w.tail = append(w.tail[:0], buf...)
	return len(p), nil
}
