package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// QuitKey ends Terminal: Ctrl-], as in telnet.
const QuitKey = 0x1d

// Connected is what Terminal shows each time the port is open, at the start
// and after the port came back.
const Connected = "[rescue attach: connected; press Enter to see the console]"

// Waiting starts the line shown, rewritten in place, while the port cannot
// be opened (the USB-serial adapter is not plugged in).
const Waiting = "[rescue attach: waiting for "

// Raw puts the terminal f in raw mode (no echo, no line editing, no signals
// from keys, no output processing) and returns the function that restores
// it. If f is not a terminal it does nothing and restore is a no-op.
func Raw(f *os.File) (restore func() error, err error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return func() error { return nil }, nil //nolint:nilerr // not a terminal: nothing to do
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN] = 1
	raw.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, ioctlSetTermios, &raw); err != nil {
		return nil, fmt.Errorf("attach: raw mode: %w", err)
	}
	var once sync.Once
	return func() error {
		var rerr error
		once.Do(func() {
			if err := unix.IoctlSetTermios(fd, ioctlSetTermios, old); err != nil {
				rerr = fmt.Errorf("attach: restore terminal: %w", err)
			}
		})
		return rerr
	}, nil
}

// TerminalConfig configures Terminal.
type TerminalConfig struct {
	// Open opens the serial port; Terminal calls it again after the port
	// fails (a USB adapter unplugged), waiting BackoffMin doubling up to
	// BackoffMax between attempts.
	Open                   func() (io.ReadWriteCloser, error)
	BackoffMin, BackoffMax time.Duration
	// Name is the port's path, for the waiting line.
	Name string
	// Log receives port errors; slog.Default when nil.
	Log *slog.Logger
}

// Terminal connects the local terminal (in, out) to the serial port until
// the operator types QuitKey or ctx is done. The caller puts in into raw mode
// (Raw) and restores it. Bytes typed while the port is gone are dropped.
func Terminal(ctx context.Context, in io.Reader, out io.Writer, cfg TerminalConfig) error {
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 250 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(10*time.Second, cfg.BackoffMin)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var mu sync.Mutex
	var port io.ReadWriteCloser
	setPort := func(p io.ReadWriteCloser) {
		mu.Lock()
		port = p
		mu.Unlock()
	}

	// Keyboard to port. The goroutine may stay blocked in in.Read after
	// Terminal returns; the process exits soon after.
	quit := make(chan struct{})
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := in.Read(buf)
			data := buf[:n]
			stop := false
			for i, b := range data {
				if b == QuitKey {
					data, stop = data[:i], true
					break
				}
			}
			if len(data) > 0 {
				mu.Lock()
				if port != nil {
					_, _ = port.Write(data)
				}
				mu.Unlock()
			}
			if stop || err != nil {
				close(quit)
				return
			}
		}
	}()
	go func() {
		select {
		case <-quit:
			cancel()
		case <-ctx.Done():
		}
	}()

	fmt.Fprint(out, "[rescue attach: Ctrl-] quits]\r\n")
	delay := cfg.BackoffMin
	buf := make([]byte, 4096)
	waiting := false
	for ctx.Err() == nil {
		p, err := cfg.Open()
		if err != nil {
			// One line, rewritten in place: the terminal is in raw mode,
			// where log lines would run diagonally down the screen.
			cfg.Log.Debug("attach: open port", "err", err, "retry_in", delay)
			fmt.Fprintf(out, "\r%s%s (plug in the USB-serial adapter; Ctrl-] quits)]\x1b[K", Waiting, cfg.Name)
			waiting = true
			if !sleep(ctx, delay) {
				break
			}
			delay = min(2*delay, cfg.BackoffMax)
			continue
		}
		if waiting {
			fmt.Fprint(out, "\r\n")
			waiting = false
		}
		delay = cfg.BackoffMin
		setPort(p)
		fmt.Fprint(out, Connected+"\r\n")
		for ctx.Err() == nil {
			n, err := p.Read(buf)
			if n > 0 {
				if _, werr := out.Write(buf[:n]); werr != nil {
					setPort(nil)
					_ = p.Close()
					return fmt.Errorf("attach: write to terminal: %w", werr)
				}
			}
			if err != nil {
				if ctx.Err() == nil {
					fmt.Fprintf(out, "\r\n[rescue attach: port lost (%v); reopening, Ctrl-] quits]\r\n", err)
				}
				break
			}
		}
		setPort(nil)
		_ = p.Close()
		if ctx.Err() == nil && !sleep(ctx, delay) {
			break
		}
	}
	select {
	case <-quit:
		return nil
	default:
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) (bool, error) {
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlGetTermios)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		return false, nil
	}
	return err == nil, err
}
