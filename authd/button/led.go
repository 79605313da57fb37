package button

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rknas/firmware/board"
	"github.com/warthog618/go-gpiocdev"
)

// LEDClassRoot is where the kernel's LED class devices live.
const LEDClassRoot = "/sys/class/leds"

// SysfsLED drives an LED of the kernel's LED class: blinking through the
// "timer" trigger, and back to the trigger and brightness found at open.
type SysfsLED struct {
	dir string

	mu         sync.Mutex
	trigger    string // the trigger active when opened
	brightness string
}

var _ LED = (*SysfsLED)(nil)

// OpenSysfsLED opens root/name (root "" means LEDClassRoot) and remembers its
// trigger and brightness.
func OpenSysfsLED(root, name string) (*SysfsLED, error) {
	if root == "" {
		root = LEDClassRoot
	}
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, fmt.Errorf("button: LED name %q is not a class device name", name)
	}
	l := &SysfsLED{dir: filepath.Join(root, name)}
	trig, err := os.ReadFile(filepath.Join(l.dir, "trigger"))
	if err != nil {
		return nil, fmt.Errorf("button: open LED %s: %w", l.dir, err)
	}
	cur, err := ParseTrigger(string(trig))
	if err != nil {
		return nil, fmt.Errorf("button: open LED %s: %w", l.dir, err)
	}
	b, err := os.ReadFile(filepath.Join(l.dir, "brightness"))
	if err != nil {
		return nil, fmt.Errorf("button: open LED %s: %w", l.dir, err)
	}
	l.trigger, l.brightness = cur, strings.TrimSpace(string(b))
	return l, nil
}

// ParseTrigger returns the active trigger from the LED class "trigger" file,
// which lists all triggers with the active one in brackets.
func ParseTrigger(s string) (string, error) {
	for _, f := range strings.Fields(s) {
		if len(f) > 2 && f[0] == '[' && f[len(f)-1] == ']' {
			name := f[1 : len(f)-1]
			if strings.ContainsAny(name, "[]") {
				break
			}
			return name, nil
		}
	}
	return "", fmt.Errorf("no active trigger in %q", truncate(s, 80))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// writeAttr writes a sysfs attribute in one write() call: sysfs takes each
// write as a separate store.
func (l *SysfsLED) writeAttr(name, value string) error {
	p := filepath.Join(l.dir, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("button: LED write %s: %w", p, err)
	}
	_, err = f.Write([]byte(value))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("button: LED write %s: %w", p, err)
	}
	return nil
}

// Blink selects the timer trigger with the given periods.
func (l *SysfsLED) Blink(on, off time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writeAttr("trigger", "timer"); err != nil {
		return err
	}
	if err := l.writeAttr("delay_on", strconv.FormatInt(on.Milliseconds(), 10)); err != nil {
		return err
	}
	return l.writeAttr("delay_off", strconv.FormatInt(off.Milliseconds(), 10))
}

// Normal restores the trigger (and, for "none", the brightness) found at open.
func (l *SysfsLED) Normal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writeAttr("trigger", l.trigger); err != nil {
		return err
	}
	if l.trigger == "none" {
		return l.writeAttr("brightness", l.brightness)
	}
	return nil
}

// Close restores the LED.
func (l *SysfsLED) Close() error { return l.Normal() }

// GPIOLED drives an LED on a free GPIO output line, blinking from a goroutine.
type GPIOLED struct {
	line board.GPIOLine

	mu   sync.Mutex
	req  *gpiocdev.Line
	stop chan struct{}
	done chan struct{}
}

var _ LED = (*GPIOLED)(nil)

// OpenGPIOLED requests line as an output, off. find maps the chip label to a
// path; nil means board.FindChipByLabel.
func OpenGPIOLED(line board.GPIOLine, find func(string) (string, error)) (*GPIOLED, error) {
	if find == nil {
		find = board.FindChipByLabel
	}
	path := line.Chip
	if !strings.HasPrefix(path, "/dev/") {
		p, err := find(line.Chip)
		if err != nil {
			return nil, fmt.Errorf("button: find chip for LED %s: %w", line, err)
		}
		path = p
	}
	opts := []gpiocdev.LineReqOption{gpiocdev.WithConsumer(Consumer + "-led"), gpiocdev.AsOutput(0)}
	if line.ActiveLow {
		opts = append(opts, gpiocdev.AsActiveLow)
	}
	req, err := gpiocdev.RequestLine(path, line.Offset, opts...)
	if err != nil {
		return nil, requestError(line, path, err)
	}
	return &GPIOLED{line: line, req: req}, nil
}

// Blink toggles the line until Normal or Close.
func (l *GPIOLED) Blink(on, off time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.req == nil {
		return errors.New("button: LED closed")
	}
	l.stopBlink()
	if on <= 0 || off <= 0 {
		return fmt.Errorf("button: LED blink periods %s/%s must be positive", on, off)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	l.stop, l.done = stop, done
	req := l.req
	go func() {
		defer close(done)
		lit := true
		for {
			v, d := 0, off
			if lit {
				v, d = 1, on
			}
			// A failed write here has no one to report to; the next Normal
			// reports the line's state.
			_ = req.SetValue(v)
			t := time.NewTimer(d)
			select {
			case <-stop:
				t.Stop()
				return
			case <-t.C:
			}
			lit = !lit
		}
	}()
	return nil
}

func (l *GPIOLED) stopBlink() {
	if l.stop != nil {
		close(l.stop)
		<-l.done
		l.stop, l.done = nil, nil
	}
}

// Normal stops blinking and turns the LED off.
func (l *GPIOLED) Normal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.req == nil {
		return errors.New("button: LED closed")
	}
	l.stopBlink()
	if err := l.req.SetValue(0); err != nil {
		return fmt.Errorf("button: LED %s off: %w", l.line, err)
	}
	return nil
}

// Close turns the LED off and releases the line.
func (l *GPIOLED) Close() error {
	nerr := l.Normal()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.req == nil {
		return nerr
	}
	err := l.req.Close()
	l.req = nil
	return errors.Join(nerr, err)
}
