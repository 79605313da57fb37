package attach_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rknas/firmware/rescue/attach"
	"github.com/rknas/firmware/rescue/console"
	"github.com/rknas/firmware/rescue/console/consoletest"
	"github.com/rknas/firmware/rescue/internal/ptytest"
	"github.com/rknas/firmware/rescue/serialport"
	"golang.org/x/sys/unix"

	"github.com/rknas/firmware/internal/waittest"
)

const baud = 1_500_000

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func fakeActions() *consoletest.Actions {
	return &consoletest.Actions{
		StatusValue: console.Status{
			Board: "Test Board", Version: "v1.2.3", Addresses: []string{"eth0 192.168.1.23/24"},
			Clock: console.ClockState{Now: t0, Synchronized: true, Source: "ntp"}, AuthdOK: true, Authd: "ok",
		},
		ResetAdminMsg:   "admin password reset to the device default (see the label); 2FA removed",
		ResetNetworkMsg: "network reset to DHCP on eth0",
	}
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// line is a board running the console and a PC's adapter, joined by a
// null-modem relay: two real ptys at 1,500,000 baud.
type line struct {
	board, pc *ptytest.Port
}

func setup(t *testing.T, cfg console.Config) *line {
	t.Helper()
	dir := t.TempDir()
	l := &line{board: ptytest.NewPort(t, dir, "ttyS2"), pc: ptytest.NewPort(t, dir, "ttyUSB0")}
	ptytest.Join(l.board, l.pc)
	cfg.Log = slog.New(slog.NewTextHandler(logWriter{t}, nil))
	cfg.BackoffMin, cfg.BackoffMax = 10*time.Millisecond, 80*time.Millisecond
	c, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, func() (io.ReadWriteCloser, error) {
			return serialport.Open(serialport.Config{Path: l.board.Path(), Baud: baud, ReadTimeout: 20 * time.Millisecond})
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := waittest.Recv(t, done, "the console to stop after cancel"); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return l
}

// run runs one action from the PC side through a real serial port.
func (l *line) run(t *testing.T, opt attach.Options) ([]string, error) {
	t.Helper()
	p, err := serialport.Open(serialport.Config{Path: l.pc.Path(), Baud: baud, ReadTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if opt.WakeTimeout == 0 {
		opt.WakeTimeout = 10 * time.Second
	}
	if opt.ActionTimeout == 0 {
		opt.ActionTimeout = 10 * time.Second
	}
	var transcript bytes.Buffer
	opt.Transcript = &transcript
	lines, err := attach.Run(context.Background(), p, opt)
	t.Logf("transcript of %s:\n%s", opt.Action, transcript.String())
	return lines, err
}

func TestRunStatus(t *testing.T) {
	l := setup(t, console.Config{Actions: fakeActions()})
	lines, err := l.run(t, attach.Options{Action: console.ActionStatus})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"board: Test Board", "version: v1.2.3", "address: eth0 192.168.1.23/24",
		"clock: 2026-11-23T10:00:00Z synchronized (ntp)", "login service: ok"}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("status lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	// Again: the first run left the console at its banner.
	if _, err := l.run(t, attach.Options{Action: console.ActionClock}); err != nil {
		t.Fatal(err)
	}
}

func TestRunWakesAnyState(t *testing.T) {
	a := fakeActions()
	l := setup(t, console.Config{Actions: a})
	p, err := serialport.Open(serialport.Config{Path: l.pc.Path(), Baud: baud, ReadTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Leave the console in its menu with half a line typed, and in a
	// confirmation prompt: Run must get through both.
	for _, state := range []string{"r\rrebo", "r\rreset-admin\r"} {
		if _, err := p.Write([]byte(state)); err != nil {
			t.Fatal(err)
		}
		lines, err := attach.Run(context.Background(), p, attach.Options{Action: console.ActionStatus, WakeTimeout: 10 * time.Second})
		if err != nil || len(lines) == 0 {
			t.Fatalf("from %q: %v, %q", state, err, lines)
		}
	}
	p.Close()
	if n := a.Called(console.ActionResetAdmin) + a.Called(console.ActionReboot); n != 0 {
		t.Errorf("waking ran a destructive action %d times", n)
	}
}

func TestRunResetAdminWithButton(t *testing.T) {
	a := fakeActions()
	b := consoletest.NewButton()
	l := setup(t, console.Config{Actions: a, Button: b})
	go func() {
		select {
		case <-b.Waiting:
			b.Press()
		case <-time.After(waittest.Within):
		}
	}()
	var progress syncBuffer
	lines, err := l.run(t, attach.Options{Action: console.ActionResetAdmin, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines, "\n"); !strings.Contains(got, "button pressed\nadmin password reset") {
		t.Errorf("reset-admin lines:\n%s", got)
	}
	if !strings.Contains(progress.String(), console.ConfirmButtonPrefix) {
		t.Errorf("the operator was not told to press the button: %q", progress.String())
	}
	if n := a.Called(console.ActionResetAdmin); n != 1 {
		t.Errorf("reset-admin ran %d times", n)
	}
}

func TestRunTypedConfirmation(t *testing.T) {
	a := fakeActions()
	l := setup(t, console.Config{Actions: a})
	// Without --yes and nobody to ask: cancelled, nothing changed.
	if _, err := l.run(t, attach.Options{Action: console.ActionResetNetwork}); !errors.Is(err, attach.ErrNotConfirmed) {
		t.Fatalf("without confirmation: %v, want ErrNotConfirmed", err)
	}
	// A wrong answer from the operator.
	var asked string
	_, err := l.run(t, attach.Options{Action: console.ActionResetNetwork, Confirm: func(p string) (string, error) {
		asked = p
		return "RESET\n", nil
	}})
	if !errors.Is(err, attach.ErrNotConfirmed) || !strings.HasPrefix(asked, console.ConfirmTypePrefix+"NETWORK-") {
		t.Fatalf("wrong word: %v (asked %q)", err, asked)
	}
	if n := a.Called(console.ActionResetNetwork); n != 0 {
		t.Fatalf("reset-network ran %d times without confirmation", n)
	}
	lines, err := l.run(t, attach.Options{Action: console.ActionResetNetwork, Yes: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines, "\n"); got != "network reset to DHCP on eth0" {
		t.Errorf("reset-network lines: %q", got)
	}
	if n := a.Called(console.ActionResetNetwork); n != 1 {
		t.Errorf("reset-network ran %d times, want 1", n)
	}
}

func TestRunButtonNotPressed(t *testing.T) {
	a := fakeActions()
	l := setup(t, console.Config{Actions: a, Button: consoletest.NewButton(), ConfirmTimeout: 200 * time.Millisecond})
	_, err := l.run(t, attach.Options{Action: console.ActionReboot, Yes: true})
	if !errors.Is(err, attach.ErrNotConfirmed) {
		t.Fatalf("got %v, want ErrNotConfirmed", err)
	}
	if n := a.Called(console.ActionReboot); n != 0 {
		t.Errorf("reboot ran without a press")
	}
}

func TestRunSetClockAndFailure(t *testing.T) {
	a := fakeActions()
	a.SetClockErr = errors.New("clock_settime: operation not permitted")
	l := setup(t, console.Config{Actions: a})
	want := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	_, err := l.run(t, attach.Options{Action: console.ActionSetClock, Time: want, Yes: true})
	var ae *attach.ActionError
	if !errors.As(err, &ae) || ae.Reason != "set-clock: clock_settime: operation not permitted" {
		t.Fatalf("got %v, want the console's failure", err)
	}
	if got := a.SetClockTimes(); len(got) != 1 || !got[0].Equal(want) {
		t.Errorf("SetClock got %v, want [%v]", got, want)
	}
}

// TestRunLongFailure: a failure too long for one 80-column line comes on
// several; attach reads the whole reason.
func TestRunLongFailure(t *testing.T) {
	a := fakeActions()
	a.SetClockErr = errors.New("clock_settime: operation not permitted; the RTC on i2c-0 answered nothing either, and the saved time could not be written")
	l := setup(t, console.Config{Actions: a})
	_, err := l.run(t, attach.Options{Action: console.ActionSetClock, Time: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), Yes: true})
	var ae *attach.ActionError
	if !errors.As(err, &ae) || ae.Reason != "set-clock: "+a.SetClockErr.Error() {
		t.Fatalf("got %v, want the whole reason", err)
	}
}

func TestRunNoConsole(t *testing.T) {
	pc := ptytest.NewPort(t, t.TempDir(), "ttyUSB0") // nothing answers on the far end
	p, err := serialport.Open(serialport.Config{Path: pc.Path(), Baud: baud, ReadTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = attach.Run(context.Background(), p, attach.Options{Action: console.ActionStatus, WakeTimeout: 300 * time.Millisecond})
	if !errors.Is(err, attach.ErrNoConsole) {
		t.Fatalf("got %v, want ErrNoConsole", err)
	}
	// The wake bytes: Ctrl-U and a comment line; never a byte that a cooked
	// tty turns into a signal (VINTR, VQUIT, VSUSP).
	got := pc.Pending()
	if !strings.HasPrefix(got, "\x15#rescue-attach-") || !strings.HasSuffix(got, "\r") || strings.ContainsAny(got, "\x03\x1c\x1a") {
		t.Errorf("wake bytes %q", got)
	}
	if _, err := attach.Run(context.Background(), p, attach.Options{Action: "shell"}); !errors.Is(err, attach.ErrUnknownAction) {
		t.Errorf("unknown action: %v", err)
	}
}

func TestRunAfterBoardPortReplug(t *testing.T) {
	l := setup(t, console.Config{Actions: fakeActions()})
	if _, err := l.run(t, attach.Options{Action: console.ActionStatus}); err != nil {
		t.Fatal(err)
	}
	l.board.Unplug()
	l.board.Plug()
	if _, err := l.run(t, attach.Options{Action: console.ActionStatus}); err != nil {
		t.Fatalf("after the board's port came back: %v", err)
	}
}

// syncBuffer is a buffer that can be waited on.
type syncBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	wake chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// wait waits until the buffer holds want and drops everything up to it.
func (b *syncBuffer) wait(t *testing.T, want string) {
	t.Helper()
	limit := time.After(10 * time.Second)
	for {
		b.mu.Lock()
		if i := strings.Index(b.buf.String(), want); i >= 0 {
			b.buf.Next(i + len(want))
			b.mu.Unlock()
			return
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-limit:
			t.Fatalf("%q did not come; got %q", want, b.String())
		}
	}
}

func TestTerminal(t *testing.T) {
	l := setup(t, console.Config{Actions: fakeActions()})
	inR, inW := io.Pipe()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- attach.Terminal(context.Background(), inR, &out, attach.TerminalConfig{
			Open: func() (io.ReadWriteCloser, error) {
				return serialport.Open(serialport.Config{Path: l.pc.Path(), Baud: baud, ReadTimeout: 20 * time.Millisecond})
			},
			BackoffMin: 10 * time.Millisecond, BackoffMax: 80 * time.Millisecond, Name: l.pc.Path(),
			Log: slog.New(slog.NewTextHandler(logWriter{t}, nil)),
		})
	}()
	out.wait(t, "Ctrl-] quits")
	send := func(s string) {
		if _, err := inW.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	out.wait(t, attach.Connected)
	send("\r")
	out.wait(t, console.BannerHint)
	send("r\r")
	out.wait(t, console.Prompt)
	send("status\r")
	out.wait(t, "address: eth0 192.168.1.23/24")
	out.wait(t, console.Prompt)

	// The USB adapter vanishes and comes back; meanwhile one line says
	// what it waits for, rewritten in place.
	l.pc.Unplug()
	out.wait(t, "port lost")
	out.wait(t, attach.Waiting+l.pc.Path()+" (plug in the USB-serial adapter; Ctrl-] quits)]")
	// The next failed open rewrites the same line: a carriage return, no
	// line feed.
	for end := time.Now().Add(waittest.Within); !strings.Contains(out.String(), "\r"+attach.Waiting); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no second waiting line within %v: %q", waittest.Within, out.String())
		}
	}
	if s := out.String(); strings.Contains(s, "\n") {
		t.Errorf("waiting for the adapter printed more than one line: %q", s)
	}
	l.pc.Plug()
	out.wait(t, attach.Connected)
	send("clock\r")
	out.wait(t, console.OK)

	send("q\x1d")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Terminal: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Ctrl-] did not end Terminal")
	}
}

func TestRawRestores(t *testing.T) {
	tty := ptytest.NewPort(t, t.TempDir(), "tty")
	f, err := os.OpenFile(tty.Path(), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Start from a cooked terminal, as a shell leaves it.
	cooked, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	cooked.Lflag |= unix.ICANON | unix.ECHO | unix.ISIG
	cooked.Iflag |= unix.ICRNL
	cooked.Oflag |= unix.OPOST
	if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, cooked); err != nil {
		t.Fatal(err)
	}
	restore, err := attach.Raw(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if raw.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != 0 || raw.Iflag&unix.ICRNL != 0 || raw.Oflag&unix.OPOST != 0 {
		t.Errorf("not raw: lflag %#x iflag %#x oflag %#x", raw.Lflag, raw.Iflag, raw.Oflag)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	after, _ := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if *after != *cooked {
		t.Errorf("not restored:\n got %+v\nwant %+v", *after, *cooked)
	}
	if ok, err := attach.IsTerminal(f); !ok || err != nil {
		t.Errorf("IsTerminal(pty) = %v, %v", ok, err)
	}
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if ok, err := attach.IsTerminal(r); ok || err != nil {
		t.Errorf("IsTerminal(pipe) = %v, %v", ok, err)
	}
	if restore, err := attach.Raw(r); err != nil || restore() != nil {
		t.Errorf("Raw(pipe) = %v", err)
	}
}

// BenchmarkRunStatus measures a scripted status round trip (wake, open the
// menu, run, quit) through two ptys at 1,500,000 baud.
func BenchmarkRunStatus(b *testing.B) {
	dir := b.TempDir()
	board, pc := ptytest.NewPort(b, dir, "ttyS2"), ptytest.NewPort(b, dir, "ttyUSB0")
	ptytest.Join(board, pc)
	c, err := console.New(console.Config{Actions: fakeActions(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, func() (io.ReadWriteCloser, error) {
			return serialport.Open(serialport.Config{Path: board.Path(), Baud: baud})
		})
	}()
	defer func() { cancel(); <-done }()
	p, err := serialport.Open(serialport.Config{Path: pc.Path(), Baud: baud})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for b.Loop() {
		if _, err := attach.Run(ctx, p, attach.Options{Action: console.ActionStatus}); err != nil {
			b.Fatal(err)
		}
	}
}
