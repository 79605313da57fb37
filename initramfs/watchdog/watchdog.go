// Package watchdog feeds the board's hardware watchdog while the login
// service answers, so a wedged NAS, which has no one at its console, resets
// itself.
package watchdog

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Device is the open hardware watchdog (/dev/watchdog): u-root's
// pkg/watchdog on the board, a fake in tests.
type Device interface {
	// KeepAlive restarts the hardware's countdown.
	KeepAlive() error
	// MagicClose disarms the watchdog before a clean power-off or reboot.
	MagicClose() error
}

// Defaults of a Feeder's durations.
const (
	// DefaultInterval is how often the service is asked and the watchdog fed.
	DefaultInterval = 5 * time.Second
	// DefaultGrace is how long the service may go without answering before
	// feeding stops. It covers authd's start (hashes precomputed, database
	// opened, first NTP attempt) and a restart after a crash with the
	// supervisor's longest backoff (30 s).
	DefaultGrace = 90 * time.Second
	// DefaultTimeout is the hardware countdown: the board resets this long
	// after the last feed.
	DefaultTimeout = 30 * time.Second
)

// Feeder decides, every Interval, whether to feed the watchdog. It feeds
// while the service answers, or has not answered for less than Grace, or is
// not meant to run (failsafe mode, a service that refused its
// configuration, or a board already reset too often for it: a reboot would
// not help there and would only take the rescue console away). Past Grace it
// stops, and the hardware resets the board Timeout later unless the service
// answers again first.
type Feeder struct {
	Dev Device
	// Answers asks the service whether it is alive; nil means it answered.
	// It must return within Interval.
	Answers func(ctx context.Context) error
	// Enforced reports whether the service is meant to be running now; nil
	// means always.
	Enforced func() bool
	// Starving is called when feeding stops, before the hardware fires, and
	// Recovered when the service answers again: the boot records the first
	// durably, so a service that never comes up cannot reset the board in
	// an endless loop.
	Starving, Recovered func()
	Interval, Grace     time.Duration
	Log                 *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// state is what the feeder knows between ticks.
type state struct {
	lastAnswer time.Time // last time the service answered, or the start
	starving   bool      // feeding has stopped
}

// decide returns whether to feed now, and the new state. answered is nil
// when the service answered this tick.
func (f *Feeder) decide(s state, now time.Time, answered error, enforced bool) (bool, state) {
	if answered == nil || !enforced {
		s.lastAnswer = now
	}
	s.starving = now.Sub(s.lastAnswer) > f.Grace
	return !s.starving, s
}

// Run feeds the watchdog until ctx ends, then disarms it: the caller powers
// off or reboots cleanly. It returns the error of disarming.
func (f *Feeder) Run(ctx context.Context) error {
	if f.Interval <= 0 {
		f.Interval = DefaultInterval
	}
	if f.Grace <= 0 {
		f.Grace = DefaultGrace
	}
	if f.Log == nil {
		f.Log = slog.Default()
	}
	now := f.Now
	if now == nil {
		now = time.Now
	}
	s := state{lastAnswer: now()}
	tick := time.NewTicker(f.Interval)
	defer tick.Stop()
	for {
		// Fed first, asked after: a slow answer never costs a feed.
		if !s.starving {
			if err := f.Dev.KeepAlive(); err != nil {
				f.Log.Warn("watchdog: feed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			if err := f.Dev.MagicClose(); err != nil {
				return fmt.Errorf("watchdog: disarm: %w", err)
			}
			f.Log.Info("watchdog disarmed")
			return nil
		case <-tick.C:
		}
		actx, cancel := context.WithTimeout(ctx, f.Interval)
		err := f.Answers(actx)
		cancel()
		enforced := f.Enforced == nil || f.Enforced()
		was := s
		_, s = f.decide(s, now(), err, enforced)
		switch {
		case s.starving && !was.starving:
			f.Log.Error("FAILED: watchdog: authd has not answered; no longer feeding the watchdog, so the board resets itself",
				"silent_for", now().Sub(s.lastAnswer).Round(time.Second).String(), "err", err)
			if f.Starving != nil {
				f.Starving()
			}
		case !s.starving && was.starving:
			f.Log.Info("watchdog: authd answers again; feeding the watchdog again")
			if f.Recovered != nil {
				f.Recovered()
			}
		}
	}
}
