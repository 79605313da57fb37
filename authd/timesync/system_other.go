//go:build !linux

package timesync

import (
	"errors"
	"time"
)

// SystemSetter sets the system clock; only Linux is supported.
type SystemSetter struct{}

var _ Setter = SystemSetter{}

// Step is not supported on this system.
func (SystemSetter) Step(time.Time) error { return errors.ErrUnsupported }

// Slew is not supported on this system.
func (SystemSetter) Slew(time.Duration) error { return errors.ErrUnsupported }

// DetectRTC finds no RTC on this system.
func DetectRTC(string) RTC { return nil }
