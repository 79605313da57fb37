package watchdog

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rknas/firmware/internal/waittest"
)

// TestDecide checks when the feeder feeds: while the service answers, for
// Grace after its last answer, and always while it is not meant to run.
func TestDecide(t *testing.T) {
	f := &Feeder{Grace: 60 * time.Second}
	t0 := time.Unix(1000, 0)
	silent := errors.New("no answer")
	for _, tt := range []struct {
		name     string
		last     time.Time
		at       time.Duration // after t0
		answered error
		enforced bool
		feed     bool
	}{
		{"answers", t0, 10 * time.Second, nil, true, true},
		{"silent within the grace", t0, 60 * time.Second, silent, true, true},
		{"silent past the grace", t0, 61 * time.Second, silent, true, false},
		{"answers again after the grace", t0, 120 * time.Second, nil, true, true},
		{"silent but not meant to run", t0, time.Hour, silent, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			feed, s := f.decide(state{lastAnswer: tt.last}, t0.Add(tt.at), tt.answered, tt.enforced)
			if feed != tt.feed || s.starving == tt.feed {
				t.Errorf("feed = %v (starving %v), want %v", feed, s.starving, tt.feed)
			}
		})
	}
}

type fakeDevice struct {
	mu     sync.Mutex
	feeds  int
	closed bool
}

func (d *fakeDevice) KeepAlive() error { d.mu.Lock(); defer d.mu.Unlock(); d.feeds++; return nil }
func (d *fakeDevice) MagicClose() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}
func (d *fakeDevice) count() int { d.mu.Lock(); defer d.mu.Unlock(); return d.feeds }

// TestRunStarvesAndRecovers runs the feeder against a service that stops
// answering: feeding stops past the grace and stays stopped, resumes when
// the service answers again, and the watchdog is disarmed at the end.
func TestRunStarvesAndRecovers(t *testing.T) {
	dev := &fakeDevice{}
	var answering atomic.Bool
	answering.Store(true)
	starving, recovered := make(chan struct{}, 1), make(chan struct{}, 1)
	asked := make(chan struct{}, 100)
	f := &Feeder{Dev: dev, Interval: 2 * time.Millisecond, Grace: 20 * time.Millisecond,
		Answers: func(context.Context) error {
			select {
			case asked <- struct{}{}:
			default:
			}
			if answering.Load() {
				return nil
			}
			return errors.New("not answering")
		},
		Starving:  func() { starving <- struct{}{} },
		Recovered: func() { recovered <- struct{}{} },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	for range 5 {
		waittest.Recv(t, asked, "the feeder asking the service")
	}
	if dev.count() == 0 {
		t.Fatal("not fed while the service answers")
	}
	answering.Store(false)
	waittest.Recv(t, starving, "feeding to stop")
	fed := dev.count()
	for range 20 { // twenty more ticks without an answer
		waittest.Recv(t, asked, "the feeder asking the service")
	}
	if n := dev.count(); n != fed {
		t.Fatalf("fed %d more times after it stopped feeding", n-fed)
	}

	answering.Store(true)
	waittest.Recv(t, recovered, "feeding to resume")
	for range 3 {
		waittest.Recv(t, asked, "the feeder asking the service")
	}
	if dev.count() == fed {
		t.Fatal("not fed again after the service answered")
	}
	cancel()
	if err := waittest.Recv(t, done, "Run to return"); err != nil {
		t.Fatal(err)
	}
	if !dev.closed {
		t.Error("the watchdog was not disarmed at the end")
	}
	select {
	case <-starving:
		t.Error("feeding stopped twice")
	default:
	}
}

// TestRunNotEnforced checks a service that is not meant to run never
// stops the feeding.
func TestRunNotEnforced(t *testing.T) {
	dev := &fakeDevice{}
	asked := make(chan struct{}, 100)
	f := &Feeder{Dev: dev, Interval: time.Millisecond, Grace: 5 * time.Millisecond,
		Answers: func(context.Context) error {
			select {
			case asked <- struct{}{}:
			default:
			}
			return errors.New("not running")
		},
		Enforced: func() bool { return false },
		Starving: func() { t.Error("feeding stopped for a service not meant to run") },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	for range 30 {
		waittest.Recv(t, asked, "the feeder asking the service")
	}
	cancel()
	waittest.Recv(t, done, "Run to return")
	if dev.count() < 30 {
		t.Errorf("fed %d times in 30 ticks", dev.count())
	}
}
