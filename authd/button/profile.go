package button

import (
	"errors"
	"fmt"

	"github.com/rknas/firmware/board"
)

// SourceFor returns the source that reads the profile's button, or
// ErrNoButton for boards without one. Nothing is opened until Start.
func SourceFor(p board.Profile) (Source, error) {
	switch p.Button.Kind {
	case board.ButtonGPIO:
		if p.Button.GPIO == nil {
			return nil, fmt.Errorf("button: board %s: gpio button without a line", p.Name)
		}
		return NewGPIOSource(*p.Button.GPIO, DefaultThresholds.Debounce, nil), nil
	case board.ButtonInput:
		return NewInputSource(p.Button.KeyCode, p.Button.InputName), nil
	case board.ButtonNone, "":
		return nil, ErrNoButton
	default:
		return nil, fmt.Errorf("button: board %s: unknown button kind %q", p.Name, p.Button.Kind)
	}
}

// ThresholdsFor returns the profile's hold times with the default debounce.
func ThresholdsFor(p board.Profile) Thresholds {
	t := DefaultThresholds
	if p.ResetHold > 0 {
		t.Reset = p.ResetHold
	}
	if p.CancelHold > 0 {
		t.Cancel = p.CancelHold
	}
	return t
}

// LEDFor opens the profile's LED with the given role ("status"). It returns
// nil and no error when the board has no such LED.
func LEDFor(p board.Profile, role string) (LED, error) {
	l, ok := p.LED(role)
	if !ok {
		return nil, nil
	}
	// Explicit nils: a nil *GPIOLED in an LED interface would not be nil.
	if l.GPIO != nil {
		g, err := OpenGPIOLED(*l.GPIO, nil)
		if err != nil {
			return nil, err
		}
		return g, nil
	}
	return openLEDClass(LEDClassRoot, l.Classes())
}

// openLEDClass opens the first of names under root that exists: kernels
// name some LEDs differently (a label added to the tree later).
func openLEDClass(root string, names []string) (LED, error) {
	var errs []error
	for _, name := range names {
		s, err := OpenSysfsLED(root, name)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}
