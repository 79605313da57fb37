// Package serialport opens the rescue console's serial line with
// go.bug.st/serial: 8N1 at a given baud rate, with a read timeout so readers
// can notice timeouts and cancellation.
package serialport

import (
	"errors"
	"fmt"
	"time"

	"go.bug.st/serial"
)

// DefaultReadTimeout is how long a Read waits for input before it returns
// (0, nil). It bounds how late an idle timeout, a confirmation deadline or a
// cancellation is noticed.
const DefaultReadTimeout = 200 * time.Millisecond

// Config says which port to open and how.
type Config struct {
	// Path is the device, for example /dev/ttyS2 or /dev/ttyUSB0.
	Path string
	// Baud is the line speed, for example 1500000 or 115200.
	Baud int
	// ReadTimeout is DefaultReadTimeout when zero.
	ReadTimeout time.Duration
}

// Validate reports the first bad field, by name.
func (c Config) Validate() error {
	if c.Path == "" {
		return errors.New("serialport: port: no device path given")
	}
	if c.Baud < 50 || c.Baud > 4_000_000 {
		return fmt.Errorf("serialport: baud: %d is outside 50..4000000", c.Baud)
	}
	if c.ReadTimeout < 0 {
		return fmt.Errorf("serialport: read timeout: %v is negative", c.ReadTimeout)
	}
	return nil
}

// Open opens the port 8N1 at cfg.Baud with a read timeout: a Read without
// input returns (0, nil) after cfg.ReadTimeout. go.bug.st/serial waits with
// select(), which panics on a descriptor above 1023: open the port early, while
// the process has few files open.
func Open(cfg Config) (serial.Port, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	p, err := serial.Open(cfg.Path, &serial.Mode{BaudRate: cfg.Baud, DataBits: 8, Parity: serial.NoParity,
		StopBits: serial.OneStopBit})
	if err != nil {
		return nil, fmt.Errorf("serialport: open %s at %d baud: %w", cfg.Path, cfg.Baud, err)
	}
	if err := p.SetReadTimeout(cfg.ReadTimeout); err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("serialport: set read timeout on %s: %w", cfg.Path, err)
	}
	return p, nil
}
