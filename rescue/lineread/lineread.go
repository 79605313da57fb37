// Package lineread reads operator lines from a serial line: it echoes what it
// accepts, edits with DEL, backspace and Ctrl-U, and drops line noise, NUL
// bytes and terminal escape sequences.
package lineread

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rknas/firmware/authd/clock"
)

// Errors returned by ReadLine besides those of the underlying reader.
var (
	// ErrTooLong means the line was longer than the configured maximum. The
	// whole line was discarded; the next call reads a fresh line.
	ErrTooLong = errors.New("lineread: line too long")
	// ErrIdle means no key was pressed for the configured idle time.
	ErrIdle = errors.New("lineread: idle timeout")
	// ErrDeadline means the deadline given to ReadLine passed.
	ErrDeadline = errors.New("lineread: deadline passed")
	// ErrInterrupt means the operator pressed Ctrl-C; the line was dropped.
	ErrInterrupt = errors.New("lineread: interrupted")
)

// DefaultMax is the line length limit when Config.Max is zero. Every input the
// rescue console takes (a menu choice, a confirmation word, a date) is far
// shorter.
const DefaultMax = 256

// Control bytes the reader gives a meaning to.
const (
	ctrlC     = 0x03
	backspace = 0x08
	lf        = '\n'
	cr        = '\r'
	ctrlU     = 0x15
	esc       = 0x1b
	del       = 0x7f
	csi8      = 0x9b // the 8-bit form of ESC [
	ss38      = 0x8f // the 8-bit form of ESC O
	bel       = 0x07

	// maxEscape bounds an escape sequence: a longer one is line noise and the
	// reader goes back to reading text rather than swallowing a whole line.
	maxEscape = 32
)

// Config tunes a Reader. The zero value is usable.
type Config struct {
	// Max is the longest line accepted, in bytes; DefaultMax when zero.
	Max int
	// Idle makes ReadLine return ErrIdle after this long without a key
	// press; zero disables it.
	Idle time.Duration
	// Clock measures Idle and deadlines; clock.System when nil.
	Clock clock.Clock
}

type state int

const (
	stText state = iota
	stEsc        // after ESC
	stCSI        // inside ESC [ ... final
	stSS3        // after ESC O: one more byte
)

// Reader turns the raw bytes of a terminal into lines. Idle timeouts and
// deadlines are checked whenever the underlying Read returns, so the reader
// must return now and then even without input: go.bug.st/serial with a read
// timeout returns (0, nil), which is exactly that. A Reader is not safe for
// concurrent use.
type Reader struct {
	r    io.Reader
	echo io.Writer
	max  int
	idle time.Duration
	clk  clock.Clock

	raw     [512]byte
	pending []byte // bytes read but not yet processed
	readErr error  // error that came with pending, returned once they are done

	line     []byte
	overflow bool
	afterCR  bool // the last line ended with CR: a following LF belongs to it
	st       state
	escLen   int
	lastKey  time.Time
	out      []byte // echo bytes not yet written
}

// New returns a Reader over r that echoes accepted input to echo (nil: no
// echo).
func New(r io.Reader, echo io.Writer, cfg Config) *Reader {
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	return &Reader{r: r, echo: echo, max: cfg.Max, idle: cfg.Idle, clk: cfg.Clock,
		line: make([]byte, 0, cfg.Max)}
}

// Max reports the longest line the reader accepts.
func (r *Reader) Max() int { return r.max }

// ReadLine returns the next line without its line ending. A line ends at CR,
// LF or CRLF. Only printable ASCII is kept; DEL and backspace delete the last
// character, Ctrl-U the whole line, and Ctrl-C drops it (ErrInterrupt). Escape
// sequences such as arrow keys, NUL bytes, other control bytes and bytes above
// 0x7f are dropped. A zero deadline means none. On any error the partial line
// is discarded.
func (r *Reader) ReadLine(ctx context.Context, deadline time.Time) (string, error) {
	r.lastKey = r.clk.Now()
	for {
		for len(r.pending) > 0 {
			b := r.pending[0]
			r.pending = r.pending[1:]
			line, done, err := r.feed(b)
			if done {
				if ferr := r.flush(); ferr != nil {
					return "", ferr
				}
				return line, err
			}
		}
		if err := r.flush(); err != nil {
			return "", err
		}
		if r.readErr != nil {
			err := r.readErr
			r.readErr = nil
			r.drop()
			return "", err
		}
		if err := ctx.Err(); err != nil {
			r.drop()
			return "", err
		}
		now := r.clk.Now()
		if !deadline.IsZero() && !now.Before(deadline) {
			r.drop()
			return "", ErrDeadline
		}
		if r.idle > 0 && now.Sub(r.lastKey) >= r.idle {
			r.drop()
			return "", ErrIdle
		}
		n, err := r.r.Read(r.raw[:])
		if n < 0 || n > len(r.raw) {
			n = 0
		}
		r.pending = r.raw[:n]
		if err != nil {
			r.readErr = err
		}
	}
}

// drop forgets the partial line.
func (r *Reader) drop() {
	r.line = r.line[:0]
	r.overflow = false
	r.st = stText
}

// flush writes pending echo bytes.
func (r *Reader) flush() error {
	if len(r.out) == 0 || r.echo == nil {
		r.out = r.out[:0]
		return nil
	}
	_, err := r.echo.Write(r.out)
	r.out = r.out[:0]
	if err != nil {
		r.drop()
		return fmt.Errorf("lineread: echo: %w", err)
	}
	return nil
}

// feed processes one byte. done reports that ReadLine should return line and
// err.
func (r *Reader) feed(b byte) (line string, done bool, err error) {
	switch r.st {
	case stEsc:
		switch b {
		case '[':
			r.st, r.escLen = stCSI, 0
			return "", false, nil
		case 'O':
			r.st = stSS3
			return "", false, nil
		case esc:
			return "", false, nil
		}
		r.st = stText
		if b >= 0x20 {
			return "", false, nil // a two-byte sequence such as ESC c
		}
	case stCSI:
		switch {
		case b >= 0x40 && b <= 0x7e:
			r.st = stText
			return "", false, nil
		case b >= 0x20 && b <= 0x3f:
			r.escLen++
			if r.escLen > maxEscape {
				r.st = stText
			}
			return "", false, nil
		}
		r.st = stText // a control byte or noise ends the sequence and counts
	case stSS3:
		r.st = stText
		if b >= 0x20 {
			return "", false, nil
		}
	}

	afterCR := r.afterCR
	r.afterCR = false
	switch {
	case b == lf && afterCR:
		return "", false, nil // second half of CRLF
	case b == cr || b == lf:
		r.afterCR = b == cr
		r.lastKey = r.clk.Now()
		r.out = append(r.out, "\r\n"...)
		if r.overflow {
			r.drop()
			return "", true, ErrTooLong
		}
		s := string(r.line)
		r.drop()
		return s, true, nil
	case b == del || b == backspace:
		r.lastKey = r.clk.Now()
		if len(r.line) > 0 && !r.overflow {
			r.line = r.line[:len(r.line)-1]
			r.out = append(r.out, "\b \b"...)
		}
	case b == ctrlU:
		r.lastKey = r.clk.Now()
		for range r.line {
			r.out = append(r.out, "\b \b"...)
		}
		r.drop()
	case b == ctrlC:
		r.lastKey = r.clk.Now()
		r.out = append(r.out, "^C\r\n"...)
		r.drop()
		return "", true, ErrInterrupt
	case b == esc:
		r.st = stEsc
	case b == csi8:
		r.st, r.escLen = stCSI, 0
	case b == ss38:
		r.st = stSS3
	case b >= 0x20 && b < 0x7f:
		r.lastKey = r.clk.Now()
		if len(r.line) >= r.max {
			if !r.overflow {
				r.out = append(r.out, bel)
			}
			r.overflow = true
			return "", false, nil
		}
		if r.overflow {
			return "", false, nil
		}
		r.line = append(r.line, b)
		r.out = append(r.out, b)
	}
	// Anything else (NUL from a break, other control bytes, bytes above 0x7f
	// from a wrong baud rate) is noise and dropped silently.
	return "", false, nil
}
