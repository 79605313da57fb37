package mailtest

import (
	"context"
	"sync"

	"github.com/rknas/firmware/authd/mail"
)

// Sender is a fake mail.Sender that records messages. Failing with Err, or
// with the queued Errs one per call, lets tests drive the outbox without a
// server. It is safe for concurrent use.
type Sender struct {
	mu    sync.Mutex
	err   error
	errs  []error
	sent  []mail.Message
	calls int
	// notify is signalled after each call.
	notify chan struct{}
}

var _ mail.Sender = (*Sender)(nil)

// NewSender returns a fake sender that succeeds.
func NewSender() *Sender { return &Sender{notify: make(chan struct{}, 1000)} }

// Send records m and returns the next queued error, else the standing one.
func (s *Sender) Send(_ context.Context, m mail.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	err := s.err
	if len(s.errs) > 0 {
		err, s.errs = s.errs[0], s.errs[1:]
	}
	if err == nil {
		s.sent = append(s.sent, m)
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return err
}

// SetError makes every later call fail with err (nil: succeed).
func (s *Sender) SetError(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// QueueErrors makes the next calls fail with errs in turn (nil entries
// succeed), before the standing error applies again.
func (s *Sender) QueueErrors(errs ...error) {
	s.mu.Lock()
	s.errs = append(s.errs, errs...)
	s.mu.Unlock()
}

// Sent returns the messages delivered so far.
func (s *Sender) Sent() []mail.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]mail.Message(nil), s.sent...)
}

// Calls returns how often Send was called.
func (s *Sender) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Called returns a channel signalled after each call to Send.
func (s *Sender) Called() <-chan struct{} { return s.notify }
