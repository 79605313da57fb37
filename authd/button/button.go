// Package button watches the board's RESET button and runs the recovery action
// when it is held past the reset threshold and released before the cancel one.
package button

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// Event is one edge of the button.
type Event struct {
	// Pressed is the level after the edge: true when the button went down.
	Pressed bool
	// At is the kernel timestamp of the edge on CLOCK_MONOTONIC, the base
	// Clock.Now reads.
	At time.Duration
	// Lost says events were dropped before this one (kernel queue overflow,
	// a sequence-number gap, SYN_DROPPED); the watcher abandons the press.
	Lost bool
	// Err, when set, says the source failed; no events follow it.
	Err error
}

// StartInfo is what a source reports when it starts.
type StartInfo struct {
	// Pressed is the button's level when the request was made.
	Pressed bool
	// Debounced says the kernel already filters glitches (GPIO uAPI v2
	// debounce, gpio-keys debounce-interval, adc-keys polling), so the watcher
	// skips its own debounce and a release is acted on at once.
	Debounced bool
	// Device describes what was opened, for status and logs, e.g.
	// "gpio rknas-sim (/dev/gpiochip1) line 0".
	Device string
}

// Source delivers the button's edges with kernel timestamps.
type Source interface {
	// Kind names the source: "gpio", "input" or a fake's name.
	Kind() string
	// Start requests the hardware and returns the level at that moment and
	// the channel on which edges arrive. It is called once.
	Start() (StartInfo, <-chan Event, error)
	// Close releases the hardware. It may be called before or after Start.
	Close() error
}

// ErrNoButton says the board exposes no button to Linux.
var ErrNoButton = errors.New("button: the board has no button")

// Clock is the watcher's time seam. Now reads CLOCK_MONOTONIC, the clock the
// kernel stamps GPIO and (after EVIOCSCLOCKID) input events with.
type Clock interface {
	Now() time.Duration
	// At returns a channel that receives once Now reaches t, and a function
	// that cancels it. A t in the past fires at once.
	At(t time.Duration) (<-chan struct{}, func())
}

// MonotonicClock is the real Clock.
type MonotonicClock struct{}

var _ Clock = MonotonicClock{}

// Now returns CLOCK_MONOTONIC as a duration since boot.
func (MonotonicClock) Now() time.Duration { return MonotonicNow() }

// At fires when CLOCK_MONOTONIC reaches t. Go's timers run on the same clock.
func (MonotonicClock) At(t time.Duration) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	tm := time.AfterFunc(t-MonotonicNow(), func() { ch <- struct{}{} })
	return ch, func() { tm.Stop() }
}

// MonotonicNow reads CLOCK_MONOTONIC.
func MonotonicNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		// CLOCK_MONOTONIC cannot fail on Linux; keep time moving regardless.
		return time.Duration(time.Now().UnixNano())
	}
	return time.Duration(ts.Nano())
}

// LED is the feedback LED. Implementations: SysfsLED (LED class) and GPIOLED.
type LED interface {
	// Blink flashes the LED, on for on and off for off, until told otherwise.
	Blink(on, off time.Duration) error
	// Normal gives the LED back to its everyday use (trigger and brightness
	// as found when it was opened).
	Normal() error
	// Close restores the LED and releases it.
	Close() error
}

// Blink rates used as feedback.
const (
	// ArmedBlink is the fast blink meaning "release now to reset".
	ArmedBlink = 100 * time.Millisecond
)
