//go:build !linux

package serialport

import (
	"errors"
	"fmt"
)

// Speed is implemented on Linux only, where TCGETS2 reports any speed.
func Speed(path string) (in, out int, err error) {
	return 0, 0, fmt.Errorf("serialport: speed of %s: %w", path, errors.ErrUnsupported)
}
