package supervise

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// ConsoleQueue writes to a slow device, the serial console, without ever
// making its writer wait: writes queue up to a limit and a goroutine of
// its own hands them to the device; what does not fit is dropped and
// counted, and the count is said on the device once it has caught up. A
// daemon writing its log through it never waits on the console's speed
// (115200 baud carries about 11 KB/s), which anyone could otherwise
// exploit by making it log; the log file keeps every line.
type ConsoleQueue struct {
	w   io.Writer
	max int

	mu      sync.Mutex
	queue   [][]byte
	queued  int  // bytes in queue
	writing bool // the goroutine holds a write the device has not taken yet
	dropped int  // bytes not queued since the last notice
	wake    chan struct{}
	idle    *sync.Cond // signalled when the queue is empty and nothing is being written
}

// NewConsoleQueue returns a queue of at most max bytes in front of w.
func NewConsoleQueue(w io.Writer, max int) *ConsoleQueue {
	q := &ConsoleQueue{w: w, max: max, wake: make(chan struct{}, 1)}
	q.idle = sync.NewCond(&q.mu)
	go q.drain()
	return q
}

// Write queues p, or drops it if the queue is full; it never fails.
func (q *ConsoleQueue) Write(p []byte) (int, error) {
	q.mu.Lock()
	if q.queued+len(p) > q.max {
		q.dropped += len(p)
	} else {
		q.queue = append(q.queue, append([]byte(nil), p...))
		q.queued += len(p)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (q *ConsoleQueue) drain() {
	for range q.wake {
		for {
			q.mu.Lock()
			var b []byte
			switch {
			case len(q.queue) > 0:
				b = q.queue[0]
				q.queue[0] = nil
				q.queue = q.queue[1:]
				q.queued -= len(b)
			case q.dropped > 0:
				b = fmt.Appendf(nil, "\n[%d bytes of log not shown here: they came faster than the console carries them]\n", q.dropped)
				q.dropped = 0
			}
			if b == nil {
				q.writing = false
				q.idle.Broadcast()
				q.mu.Unlock()
				break
			}
			q.writing = true
			q.mu.Unlock()
			_, _ = q.w.Write(b) // best effort, as Tee
		}
	}
}

// Flush waits until everything queued has been handed to the device, or
// timeout; it reports whether it all was. Before a power-off: the last
// lines are the ones that say why.
func (q *ConsoleQueue) Flush(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() {
		q.mu.Lock()
		for len(q.queue) > 0 || q.dropped > 0 || q.writing {
			q.idle.Wait()
		}
		q.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}
