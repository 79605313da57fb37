package simctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Lines is the simulated chip as the control channel drives it.
type Lines interface {
	SetPull(off int, up bool) error
	Pull(off int) (bool, error)
	Value(off int) (int, error)
}

var _ Lines = (*Sim)(nil)

// MaxHold bounds the "hold" command so a typo cannot wedge the channel.
const MaxHold = 10 * time.Minute

// Freezer stops a process of the VM by name (SIGSTOP), so the test rig can
// wedge a service on purpose: the hardware watchdog's test. Lines that are
// not a Freezer answer freeze with an error.
type Freezer interface {
	Freeze(name string) (pids []int, err error)
}

// Syncer writes and fsyncs one small block on the VM's state partition and
// says how long the fsync took: the floor the RESET's time to durable is
// measured against. Lines that are not a Syncer answer fsync with an error.
type Syncer interface {
	SyncProbe() (time.Duration, error)
}

// Command is one parsed control line.
type Command struct {
	Verb string        // ping, press, release, hold, level?, led?, freeze, fsync
	Hold time.Duration // for hold
	Name string        // for freeze
}

// ErrBadCommand is wrapped by ParseCommand's errors.
var ErrBadCommand = errors.New("bad command")

// ParseCommand parses one line of the control protocol:
//
//	ping | press | release | hold SECONDS | level? | led? | freeze PROCESS | fsync
func ParseCommand(line string) (Command, error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return Command{}, fmt.Errorf("%w: empty line", ErrBadCommand)
	}
	switch f[0] {
	case "ping", "press", "release", "level?", "led?", "fsync":
		if len(f) != 1 {
			return Command{}, fmt.Errorf("%w: %s takes no argument", ErrBadCommand, f[0])
		}
		return Command{Verb: f[0]}, nil
	case "hold":
		if len(f) != 2 {
			return Command{}, fmt.Errorf("%w: usage: hold SECONDS", ErrBadCommand)
		}
		s, err := strconv.ParseFloat(f[1], 64)
		if err != nil || math.IsNaN(s) || s <= 0 || s > MaxHold.Seconds() {
			return Command{}, fmt.Errorf("%w: hold: seconds must be a number in (0, %v]", ErrBadCommand, MaxHold.Seconds())
		}
		return Command{Verb: "hold", Hold: time.Duration(s * float64(time.Second))}, nil
	case "freeze":
		if len(f) != 2 || len(f[1]) > 15 || strings.IndexFunc(f[1], func(r rune) bool { return (r < 'a' || r > 'z') && r != '-' }) >= 0 {
			return Command{}, fmt.Errorf("%w: usage: freeze PROCESS (a lower-case name)", ErrBadCommand)
		}
		return Command{Verb: "freeze", Name: f[1]}, nil
	}
	return Command{}, fmt.Errorf("%w: unknown command %.32q", ErrBadCommand, f[0])
}

// Handle executes one line and returns the reply line (without newline).
// Replies start with "ok", "pong", "level", "led-status", "fsync" or "err".
func Handle(ctx context.Context, l Lines, line string) string {
	c, err := ParseCommand(line)
	if err != nil {
		return "err " + err.Error()
	}
	reply, err := c.run(ctx, l)
	if err != nil {
		return "err " + err.Error()
	}
	return reply
}

func (c Command) run(ctx context.Context, l Lines) (string, error) {
	switch c.Verb {
	case "ping":
		return "pong", nil
	case "press":
		return "ok pressed", l.SetPull(LineReset, false) // active low
	case "release":
		return "ok released", l.SetPull(LineReset, true)
	case "hold":
		if err := l.SetPull(LineReset, false); err != nil {
			return "", err
		}
		t := time.NewTimer(c.Hold)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		if err := l.SetPull(LineReset, true); err != nil {
			return "", err
		}
		return fmt.Sprintf("ok held %v", c.Hold), ctx.Err()
	case "level?":
		v, err := l.Value(LineReset)
		if err != nil {
			return "", err
		}
		up, err := l.Pull(LineReset)
		if err != nil {
			return "", err
		}
		state := "released"
		if !up {
			state = "pressed"
		}
		return fmt.Sprintf("level %d %s", v, state), nil
	case "led?":
		st, err := l.Value(LineLEDStatus)
		if err != nil {
			return "", err
		}
		al, err := l.Value(LineLEDAlert)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("led-status %d led-alert %d", st, al), nil
	case "freeze":
		fr, ok := l.(Freezer)
		if !ok {
			return "", errors.New("this control channel cannot freeze processes")
		}
		pids, err := fr.Freeze(c.Name)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("ok froze %s %v", c.Name, pids), nil
	case "fsync":
		sy, ok := l.(Syncer)
		if !ok {
			return "", errors.New("this control channel cannot probe the disk")
		}
		d, err := sy.SyncProbe()
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("fsync %d µs", d.Microseconds()), nil
	}
	return "", fmt.Errorf("%w: %s", ErrBadCommand, c.Verb)
}

// Serve answers command lines read from rw until rw reports EOF or an error,
// or ctx ends. Lines longer than 256 bytes are rejected, not buffered.
func Serve(ctx context.Context, rw io.ReadWriter, l Lines) error {
	sc := bufio.NewScanner(rw)
	sc.Buffer(make([]byte, 256), 256)
	for sc.Scan() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := io.WriteString(rw, Handle(ctx, l, sc.Text())+"\n"); err != nil {
			return fmt.Errorf("simctl: write reply: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("simctl: read command: %w", err)
	}
	return io.EOF
}
