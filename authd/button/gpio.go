package button

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rknas/firmware/board"
	"github.com/warthog618/go-gpiocdev"
	"golang.org/x/sys/unix"
)

// Consumer is the label the firmware's GPIO requests carry (visible in
// gpioinfo and in EBUSY diagnostics of other programs).
const Consumer = "rknas-button"

// eventQueue is both the kernel's event buffer for the request and the
// channel between the handler and the watcher: a hold produces two edges, so
// only a storm of bounces could fill it.
const eventQueue = 64

// GPIOSource reads a button wired to a free GPIO line through the GPIO
// character device (go-gpiocdev).
type GPIOSource struct {
	line     board.GPIOLine
	debounce time.Duration
	find     func(label string) (string, error)

	mu  sync.Mutex
	req *gpiocdev.Line
	ch  chan Event
}

var _ Source = (*GPIOSource)(nil)

// NewGPIOSource returns a source for line, asking the kernel for the given
// debounce (uAPI v2); where the kernel lacks it the watcher debounces.
// find maps the chip label to a device path; nil means board.FindChipByLabel.
// A Chip that starts with "/dev/" is used as the path directly.
func NewGPIOSource(line board.GPIOLine, debounce time.Duration, find func(label string) (string, error)) *GPIOSource {
	if find == nil {
		find = board.FindChipByLabel
	}
	return &GPIOSource{line: line, debounce: debounce, find: find}
}

// Kind returns "gpio".
func (s *GPIOSource) Kind() string { return "gpio" }

// Start requests the line as an input with both edges, the profile's bias and
// active level, kernel debounce and a deeper event buffer.
func (s *GPIOSource) Start() (StartInfo, <-chan Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.req != nil {
		return StartInfo{}, nil, errors.New("button: gpio source started twice")
	}
	path := s.line.Chip
	if !strings.HasPrefix(path, "/dev/") {
		p, err := s.find(s.line.Chip)
		if err != nil {
			return StartInfo{}, nil, fmt.Errorf("button: find chip for %s: %w", s.line, err)
		}
		path = p
	}
	device := fmt.Sprintf("gpio %s (%s) line %d", s.line.Chip, path, s.line.Offset)
	ch := make(chan Event, eventQueue)
	h := &gpioHandler{ch: ch}
	opts := []gpiocdev.LineReqOption{
		gpiocdev.AsInput,
		gpiocdev.WithConsumer(Consumer),
		gpiocdev.WithBothEdges,
		gpiocdev.WithEventBufferSize(eventQueue),
		gpiocdev.WithEventHandler(h.handle),
	}
	if s.line.ActiveLow {
		opts = append(opts, gpiocdev.AsActiveLow)
	}
	switch s.line.Bias {
	case board.BiasPullUp:
		opts = append(opts, gpiocdev.WithPullUp)
	case board.BiasPullDown:
		opts = append(opts, gpiocdev.WithPullDown)
	}
	debounced := false
	req, err := gpiocdev.RequestLine(path, s.line.Offset, append(opts, gpiocdev.WithDebounce(s.debounce))...)
	var incompatible gpiocdev.ErrUapiIncompatibility
	if errors.As(err, &incompatible) {
		// uAPI v1 (kernel < 5.10): no debounce, no buffer size; the watcher
		// filters glitches in user space.
		req, err = gpiocdev.RequestLine(path, s.line.Offset, opts...)
	} else if err == nil && s.debounce > 0 {
		debounced = true
	}
	if err != nil {
		return StartInfo{}, nil, requestError(s.line, path, err)
	}
	v, err := req.Value()
	if err != nil {
		req.Close()
		return StartInfo{}, nil, fmt.Errorf("button: read %s: %w", device, err)
	}
	s.req, s.ch = req, ch
	return StartInfo{Pressed: v == 1, Debounced: debounced, Device: device}, ch, nil
}

// requestError explains the usual failures of a line request.
func requestError(l board.GPIOLine, path string, err error) error {
	hint := ""
	switch {
	case errors.Is(err, unix.EBUSY):
		hint = " (another consumer owns the line: a kernel driver such as gpio-keys, or another program; read the key as an input device or free the line with a device-tree overlay)"
	case errors.Is(err, unix.EINVAL), errors.Is(err, gpiocdev.ErrInvalidOffset):
		hint = " (offset out of range for the chip?)"
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		hint = " (permission denied: authd needs access to " + path + ")"
	}
	return fmt.Errorf("button: request %s line %d on %s: %w%s", l.Chip, l.Offset, path, err, hint)
}

// Close releases the line and then closes the event channel.
func (s *GPIOSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.req == nil {
		return nil
	}
	// Close waits for a running handler, so the channel has no sender after.
	err := s.req.Close()
	close(s.ch)
	s.req = nil
	if err != nil {
		return fmt.Errorf("button: release %s line %d: %w", s.line.Chip, s.line.Offset, err)
	}
	return nil
}

// gpioHandler turns go-gpiocdev events into Events. go-gpiocdev calls it from
// one goroutine, so its fields need no lock; it never blocks and never closes
// the request (that would deadlock).
type gpioHandler struct {
	ch      chan<- Event
	lastSeq uint32
	lost    bool
}

func (h *gpioHandler) handle(le gpiocdev.LineEvent) {
	ev := Event{Pressed: le.Type == gpiocdev.LineEventRisingEdge, At: le.Timestamp}
	// Seqno counts every event of the request (uAPI v2; zero on v1): a gap
	// means the kernel's queue overflowed.
	if le.Seqno != 0 && h.lastSeq != 0 && le.Seqno != h.lastSeq+1 {
		h.lost = true
	}
	if le.Seqno != 0 {
		h.lastSeq = le.Seqno
	}
	ev.Lost = h.lost
	select {
	case h.ch <- ev:
		h.lost = false
	default:
		h.lost = true // the watcher is behind: it learns of the gap with the next edge
	}
}
