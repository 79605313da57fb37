// Package attach talks to a board's rescue console from a PC over a
// USB-serial cable: one scripted menu action (Run) or an interactive terminal
// (Terminal).
package attach

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/rknas/firmware/rescue/console"
)

// Errors of Run. Failures of the action itself come as *ActionError.
var (
	// ErrNoConsole means the console did not show its banner or its menu in
	// time: wrong port, wrong baud rate, board off, or a shell instead of the
	// rescue console on the line.
	ErrNoConsole = errors.New("attach: no rescue console answered")
	// ErrNotConfirmed means the console asked for a confirmation that was not
	// given; nothing was changed on the board.
	ErrNotConfirmed = errors.New("attach: the action was not confirmed; nothing was changed")
	// ErrUnknownAction means the action name is not one of the menu's.
	ErrUnknownAction = errors.New("attach: unknown action")
)

// ActionError is a failure the console reported for the action.
type ActionError struct {
	Action string
	// Reason is the console's text after console.FailedPrefix.
	Reason string
}

// Error says which action failed and why, in the console's words.
func (e *ActionError) Error() string {
	return fmt.Sprintf("attach: %s failed on the board: %s", e.Action, e.Reason)
}

// Defaults of Options.
const (
	DefaultWakeTimeout   = 30 * time.Second
	DefaultActionTimeout = 3 * time.Minute
	// wakeEvery is how often Run pokes a console that has not answered: the
	// first bytes may be lost while the board opens its port.
	wakeEvery = 2 * time.Second
)

// Options configures Run.
type Options struct {
	// Action is the menu action to run (console.ActionStatus and so on).
	Action string
	// Time is the new time for console.ActionSetClock.
	Time time.Time
	// Yes types the confirmation word when the console asks for one. It does
	// not press a button: on boards with one, someone has to.
	Yes bool
	// Confirm, if set and Yes is not, is asked for the word when the console
	// asks to type one; prompt is the console's question. It returns what to
	// send.
	Confirm func(prompt string) (string, error)
	// WakeTimeout bounds the wait for the banner or the menu.
	WakeTimeout time.Duration
	// ActionTimeout bounds the wait for the action's result, confirmation
	// included.
	ActionTimeout time.Duration
	// Progress receives what the operator must do (press the button), if
	// not nil.
	Progress io.Writer
	// Transcript receives every byte the console sent, if not nil.
	Transcript io.Writer
}

// Run wakes the console on rw, opens its menu, runs opt.Action and returns
// the lines of its output (without the framing lines). rw must return from
// Read now and then without input, as a serial port with a read timeout does.
func Run(ctx context.Context, rw io.ReadWriter, opt Options) ([]string, error) {
	if !slices.Contains(console.ActionNames(), opt.Action) {
		return nil, fmt.Errorf("%w %q (want one of %s)", ErrUnknownAction, opt.Action,
			strings.Join(console.ActionNames(), ", "))
	}
	if opt.Action == console.ActionSetClock && opt.Time.IsZero() {
		return nil, fmt.Errorf("attach: %s needs a time", opt.Action)
	}
	if opt.WakeTimeout <= 0 {
		opt.WakeTimeout = DefaultWakeTimeout
	}
	if opt.ActionTimeout <= 0 {
		opt.ActionTimeout = DefaultActionTimeout
		if opt.Action == console.ActionInstallEMMC {
			// The console allows the install this long; wait a little more.
			opt.ActionTimeout = console.InstallTimeout + time.Minute
		}
	}
	c := &conn{rw: rw, transcript: opt.Transcript}
	if err := c.openMenu(ctx, opt.WakeTimeout); err != nil {
		return nil, err
	}
	if err := c.send(opt.Action + "\r"); err != nil {
		return nil, err
	}
	lines, err := c.result(ctx, opt)
	// Leave the console at its banner rather than in an open menu.
	_ = c.send("q\r")
	return lines, err
}

// conn reads the console's output as lines, and notices prompts that end
// without a line end.
type conn struct {
	rw         io.ReadWriter
	transcript io.Writer
	buf        []byte
	raw        [1024]byte
	skip       string // the echo of what we sent last, to leave out of results
}

func (c *conn) send(s string) error {
	if _, err := c.rw.Write([]byte(s)); err != nil {
		return fmt.Errorf("attach: write: %w", err)
	}
	c.skip = strings.TrimRight(s, "\r")
	return nil
}

// next returns the next complete line (without CR and LF), or the
// unterminated tail of the output if isPrompt accepts it (prompt true), or
// ("", false, nil) when the port returned without input, so that callers can
// check their deadlines.
func (c *conn) next(isPrompt func(string) bool) (line string, prompt bool, err error) {
	for {
		if i := bytes.IndexByte(c.buf, '\n'); i >= 0 {
			l := strings.TrimRight(string(c.buf[:i]), "\r")
			c.buf = c.buf[i+1:]
			return strings.TrimLeft(l, "\r"), false, nil
		}
		if tail := strings.TrimLeft(string(c.buf), "\r"); tail != "" && isPrompt(tail) {
			c.buf = c.buf[:0]
			return tail, true, nil
		}
		n, err := c.rw.Read(c.raw[:])
		if n > 0 {
			if c.transcript != nil {
				_, _ = c.transcript.Write(c.raw[:n])
			}
			c.buf = append(c.buf, c.raw[:n]...)
			if len(c.buf) > 64<<10 { // a flood without line ends: keep the tail
				c.buf = c.buf[len(c.buf)-4<<10:]
			}
		}
		if err != nil {
			return "", false, fmt.Errorf("attach: read: %w", err)
		}
		if n == 0 {
			return "", false, nil
		}
	}
}

func isMenuPrompt(tail string) bool { return strings.HasSuffix(tail, console.Prompt) }

// openMenu wakes the console and waits for its menu prompt. It first sends
// Ctrl-U (drop a half-typed line) and a comment line with a random tag, and
// waits for the tag's echo: only what the console writes after that answers
// us, not the rest of an earlier session (a prompt left over from a previous
// run must not make us type the action at the banner). Then Enter shows the
// banner or the menu, and r opens the menu.
//
// It never sends Ctrl-C, Ctrl-\ or Ctrl-Z: until the console has the port in
// raw mode (early in boot, or if the console is not running) the kernel's
// line discipline turns them into signals for the processes on the console,
// and an init may take SIGINT as "reboot".
func (c *conn) openMenu(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tag := fmt.Sprintf("%srescue-attach-%d", console.CommentPrefix, rand.Uint32())
	fresh := false
	poke := func() error {
		if fresh {
			return c.send("\r")
		}
		return c.send("\x15" + tag + "\r")
	}
	if err := poke(); err != nil {
		return err
	}
	lastPoke := time.Now()
	for {
		line, prompt, err := c.next(func(tail string) bool { return fresh && isMenuPrompt(tail) })
		if err != nil {
			return err
		}
		switch {
		case prompt:
			return nil
		case !fresh && strings.HasSuffix(line, tag):
			fresh = true
			if err := poke(); err != nil {
				return err
			}
			lastPoke = time.Now()
		case fresh && strings.Contains(line, console.BannerHint):
			if err := c.send("r\r"); err != nil {
				return err
			}
			lastPoke = time.Now()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		if now.After(deadline) {
			return fmt.Errorf("%w within %v", ErrNoConsole, timeout)
		}
		// The first bytes may be lost while the board opens its port.
		if now.Sub(lastPoke) > wakeEvery {
			if err := poke(); err != nil {
				return err
			}
			lastPoke = now
		}
	}
}

func isActionPrompt(tail string) bool {
	return strings.HasSuffix(tail, console.TimePrompt) ||
		(strings.HasPrefix(tail, console.ConfirmTypePrefix) && strings.HasSuffix(tail, ": "))
}

// result collects the output of opt.Action and answers its prompts.
func (c *conn) result(ctx context.Context, opt Options) ([]string, error) {
	deadline := time.Now().Add(opt.ActionTimeout)
	begin := console.Begin(opt.Action)
	started := false
	// telling is set while the console says what the action will do,
	// before it asks for the confirmation: that goes to Progress, not
	// into the action's result.
	telling := false
	var lines []string
	for {
		line, prompt, err := c.next(func(tail string) bool { return started && isActionPrompt(tail) })
		if err != nil {
			return lines, err
		}
		switch {
		case prompt:
			telling = false
			if err := c.answer(line, opt); err != nil {
				return lines, err
			}
		case !started && strings.HasPrefix(line, console.UnknownChoice):
			return nil, fmt.Errorf("%w %q: the console on the board does not know it (older firmware?)",
				ErrUnknownAction, opt.Action)
		case !started:
			started = line == begin
		case line == console.OK:
			return lines, nil
		case strings.HasPrefix(line, console.FailedPrefix):
			// A long reason continues on indented lines up to the " ==".
			for !strings.HasSuffix(line, " ==") {
				more, _, err := c.next(func(string) bool { return false })
				if err != nil {
					return lines, err
				}
				line += " " + strings.TrimSpace(more)
			}
			reason := strings.TrimSuffix(strings.TrimPrefix(line, console.FailedPrefix), " ==")
			if strings.HasPrefix(reason, console.ErrNotConfirmed.Error()) {
				return lines, ErrNotConfirmed
			}
			return lines, &ActionError{Action: opt.Action, Reason: reason}
		case line == c.skip && c.skip != "":
			c.skip = ""
		case strings.HasPrefix(line, console.TellsPrefix) || telling:
			telling = !strings.HasPrefix(line, console.ConfirmButtonPrefix)
			if opt.Progress != nil {
				fmt.Fprintln(opt.Progress, line)
			}
		default:
			if strings.HasPrefix(line, console.ConfirmButtonPrefix) && opt.Progress != nil {
				fmt.Fprintln(opt.Progress, line)
			}
			if line != "" {
				lines = append(lines, line)
			}
		}
		if err := ctx.Err(); err != nil {
			return lines, err
		}
		if time.Now().After(deadline) {
			return lines, fmt.Errorf("attach: no result for %s within %v", opt.Action, opt.ActionTimeout)
		}
	}
}

// answer replies to a prompt inside an action.
func (c *conn) answer(prompt string, opt Options) error {
	if strings.HasSuffix(prompt, console.TimePrompt) {
		return c.send(opt.Time.UTC().Format(console.TimeLayout) + "\r")
	}
	word, _, _ := strings.Cut(strings.TrimPrefix(prompt, console.ConfirmTypePrefix), " ")
	switch {
	case opt.Yes:
		return c.send(word + "\r")
	case opt.Confirm != nil:
		typed, err := opt.Confirm(prompt)
		if err != nil {
			_ = c.send("\r") // an empty answer: the console refuses
			return fmt.Errorf("attach: read confirmation: %w", err)
		}
		return c.send(strings.TrimSpace(typed) + "\r")
	}
	// Nobody to ask: an empty answer, the console then reports "not
	// confirmed".
	return c.send("\r")
}
