package console_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/rescue/console"
	"github.com/rknas/firmware/rescue/console/consoletest"
	"github.com/rknas/firmware/rescue/internal/ptytest"
	"github.com/rknas/firmware/rescue/serialport"

	"github.com/rknas/firmware/internal/waittest"
)

// guard bounds every wait for console output; waits end as soon as the text
// arrives.
const guard = 10 * time.Second

const baud = 1_500_000

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

const testFingerprint = "3A:91:0C:77:5E:D2:48:19:AF:60:B3:2E:99:14:C8:07:6D:21:F0:5B:8A:E3:42:9C:1D:77:B0:3E:64:58:CA:0F"

func fakeActions() *consoletest.Actions {
	return &consoletest.Actions{
		StatusValue: console.Status{
			Board: "Test Board", Version: "v1.2.3",
			Addresses: []string{"eth0 192.168.1.23/24", "eth0 fd00::23/64"},
			Clock:     console.ClockState{Now: t0, Source: "saved time"},
			AuthdOK:   true, Authd: "ok",
			Certificate: testFingerprint,
			WebPort:     443,
		},
		ResetAdminMsg:   "admin password reset to the device default (see the label); 2FA removed",
		ResetNetworkMsg: "network reset to DHCP on eth0",
		ClockValue:      console.ClockState{Now: t0, Synchronized: true, Source: "ntp"},
		AuditEntries:    []string{"2026-11-23T09:00:00Z login admin ok", "2026-11-23T09:01:00Z login admin bad-code"},
	}
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// start runs a console on a fresh pty at 1,500,000 baud and returns the far
// end of the line.
func start(t *testing.T, cfg console.Config) *ptytest.Port {
	t.Helper()
	port := ptytest.NewPort(t, t.TempDir(), "ttyS2")
	startOn(t, port, cfg)
	return port
}

func startOn(t *testing.T, port *ptytest.Port, cfg console.Config) {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin, cfg.BackoffMax = 10*time.Millisecond, 80*time.Millisecond
	}
	c, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, func() (io.ReadWriteCloser, error) {
			return serialport.Open(serialport.Config{Path: port.Path(), Baud: baud, ReadTimeout: 20 * time.Millisecond})
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := waittest.Recv(t, done, "the console to stop after cancel"); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// openMenu waits for the banner and opens the menu.
func openMenu(t *testing.T, p *ptytest.Port) {
	t.Helper()
	p.Expect(console.BannerHint, guard)
	p.Send("r\r")
	p.Expect(console.Prompt, guard)
}

// run types line at the prompt and returns the output up to the next prompt.
func run(t *testing.T, p *ptytest.Port, line string) string {
	t.Helper()
	p.Send(line)
	return p.Expect(console.Prompt, guard)
}

func TestBannerAndMenu(t *testing.T) {
	a := fakeActions()
	p := start(t, console.Config{Actions: a})
	banner := p.Expect(console.BannerHint, guard)
	for _, want := range []string{console.Title, "board: Test Board\r\n", "version: v1.2.3\r\n",
		"address: eth0 192.168.1.23/24\r\n", "address: eth0 fd00::23/64\r\n",
		"clock: 2026-11-23T10:00:00Z NOT synchronized (saved time)\r\n", "login service: ok\r\n",
		"https certificate SHA-256: " + testFingerprint[:48] + "\r\n" + strings.Repeat(" ", 27) + testFingerprint[48:] + "\r\n",
		"web pages: https://192.168.1.23/\r\n", "forgot the admin password? press r and Enter, then 2\r\n"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if strings.Contains(banner, "FAILSAFE") {
		t.Errorf("banner says failsafe without --failsafe:\n%s", banner)
	}
	in, out, err := serialport.Speed(p.Path())
	if err != nil || in != baud || out != baud {
		t.Errorf("port speed in %d out %d (%v), want %d", in, out, err, baud)
	}

	// A comment line is ignored without a word.
	p.Send("#sync-1\rx\r")
	if got := p.Expect(console.BannerHint, guard); got != "\r\n#sync-1\r\nx\r\n"+console.BannerHint {
		t.Errorf("comment at the banner: %q", got)
	}
	// Anything but r at the banner only repeats the hint.
	p.Send("x\r")
	if got := p.Expect(console.BannerHint, guard); strings.Contains(got, "no shell") {
		t.Errorf("menu opened on x: %q", got)
	}
	p.Send("r\r")
	menu := p.Expect(console.Prompt, guard)
	for _, name := range console.ActionNames() {
		if !strings.Contains(menu, name) {
			t.Errorf("menu lacks %s:\n%s", name, menu)
		}
	}
	if !strings.Contains(menu, "no shell") {
		t.Errorf("menu does not say there is no shell:\n%s", menu)
	}

	if out := run(t, p, "# a comment\r"); out != "# a comment\r\n"+console.Prompt {
		t.Errorf("comment in the menu: %q", out)
	}
	out1 := run(t, p, "1\r")
	if !strings.Contains(out1, console.Begin("status")+"\r\nboard: Test Board\r\n") || !strings.Contains(out1, console.OK) {
		t.Errorf("status by number:\n%s", out1)
	}
	if out2 := run(t, p, "STATUS\r"); !strings.Contains(out2, console.OK) {
		t.Errorf("status by name in capitals:\n%s", out2)
	}
	if out := run(t, p, "clock\r"); !strings.Contains(out, "clock: 2026-11-23T10:00:00Z synchronized (ntp)\r\n"+console.OK) {
		t.Errorf("clock:\n%s", out)
	}
	if out := run(t, p, "audit\r"); !strings.Contains(out, "09:00:00Z login admin ok\r\n2026-11-23T09:01:00Z login admin bad-code\r\n"+console.OK) {
		t.Errorf("audit:\n%s", out)
	}
	if got := a.AuditRequests(); len(got) != 1 || got[0] != console.DefaultAuditEntries {
		t.Errorf("audit asked for %v entries, want [%d]", got, console.DefaultAuditEntries)
	}
	p.Send("q\r")
	p.Expect(console.BannerHint, guard)
}

func TestLineEndingsAndEditing(t *testing.T) {
	a := fakeActions()
	p := start(t, console.Config{Actions: a})
	openMenu(t, p)
	tests := []struct{ name, in string }{
		{"CR", "clock\r"},
		{"LF", "clock\n"},
		{"CRLF", "clock\r\n"},
		{"DEL", "clocx\x7fk\r"},
		{"backspace", "clox\x08ck\r"},
		{"arrow keys", "\x1b[Aclo\x1b[D\x1b[Cck\x1bOA\r"},
		{"Ctrl-U", "garbage\x15clock\r"},
		{"NUL and noise", "\x00c\xfflo\x00ck\x01\r"},
	}
	for _, tt := range tests {
		out := run(t, p, tt.in)
		if !strings.Contains(out, console.Begin("clock")) || !strings.Contains(out, console.OK) {
			t.Errorf("%s: %q did not run clock:\n%q", tt.name, tt.in, out)
		}
		// A CRLF is one line end: the LF must not show the menu again.
		if strings.Contains(out, "rescue menu") {
			t.Errorf("%s: %q showed the menu too:\n%q", tt.name, tt.in, out)
		}
	}
	if got := a.Called(console.ActionClock); got != len(tests) {
		t.Errorf("clock ran %d times, want %d", got, len(tests))
	}
	// The console echoes what it accepts, and erases on DEL.
	p.Send("abc\x7f")
	p.Expect("abc\b \b", guard)
	p.Send("\x15")
	p.Expect("\b \b\b \b", guard)
	// Ctrl-C drops the line and prompts again.
	if out := run(t, p, "reboo\x03"); !strings.Contains(out, "^C") || a.Called(console.ActionReboot) != 0 {
		t.Errorf("Ctrl-C: %q", out)
	}
}

func TestGarbageAndLongLines(t *testing.T) {
	a := fakeActions()
	p := start(t, console.Config{Actions: a})
	// Noise at the banner: a line of garbage is not r.
	p.Expect(console.BannerHint, guard)
	p.Send("\xff\xfe\x80\x00\x1b\r")
	p.Expect(console.BannerHint, guard) // the empty line shows the banner again
	p.Send(strings.Repeat("r", 5000) + "\r")
	p.Expect("input too long (more than 256 characters): ignored", guard)
	p.Expect(console.BannerHint, guard)
	p.Send("r\r")
	p.Expect(console.Prompt, guard)

	out := run(t, p, strings.Repeat("x", 1000)+"\r")
	if !strings.Contains(out, "input too long (more than 256 characters): ignored") {
		t.Errorf("long line: %q", out[max(0, len(out)-200):])
	}
	// A flood of random bytes without a line end, then a real command.
	noise := make([]byte, 20000)
	for i := range noise {
		noise[i] = byte(i*7919 + i/13)
		if noise[i] == '\r' || noise[i] == '\n' || noise[i] == 0x03 {
			noise[i] = 0
		}
	}
	p.Send(string(noise))
	p.Send("\x15status\r")
	p.Expect(console.Begin("status"), guard)
	p.Expect(console.OK, guard)
	for _, name := range console.ActionNames()[1:] {
		if n := a.Called(name); n != 0 {
			t.Errorf("noise ran %s %d times", name, n)
		}
	}
}

func TestNoShell(t *testing.T) {
	a := fakeActions()
	p := start(t, console.Config{Actions: a})
	openMenu(t, p)
	inputs := []string{"sh", "/bin/sh", "!sh", "bash -i", "exec /bin/sh", "shell", "; sh", "$(reboot)", "`id`",
		"status; sh", "1 && sh", "reset-admin sh", "0", "99", "12", "-1", "..", "\x04", "~.", "busybox", "su", "root"}
	for _, in := range inputs {
		out := run(t, p, in+"\r")
		// Ctrl-D is dropped like any control byte: an empty line, which
		// shows the menu; anything else gets one line.
		if in == "\x04" {
			if !strings.Contains(out, "rescue menu") {
				t.Errorf("an empty line did not show the menu:\n%s", out)
			}
		} else if !strings.Contains(out, "unknown choice") || !strings.Contains(out, "(? shows the menu)") || strings.Contains(out, "rescue menu") {
			t.Errorf("%q did not give one line:\n%s", in, out)
		}
	}
	for _, name := range console.ActionNames()[1:] {
		if n := a.Called(name); n != 0 {
			t.Errorf("unknown input ran %s %d times", name, n)
		}
	}
}

func TestResetAdminWithButton(t *testing.T) {
	a := fakeActions()
	b := consoletest.NewButton()
	p := start(t, console.Config{Actions: a, Button: b})
	openMenu(t, p)
	b.Press() // a press before the question does not count
	p.Send("2\r")
	p.Expect(console.ConfirmButtonPrefix+" within 30s to reset-admin (Enter cancels)", guard)
	if got := waittest.Recv(t, b.Waiting, "the console to wait for a button press"); got != console.DefaultConfirmTimeout {
		t.Errorf("button wait %v, want %v", got, console.DefaultConfirmTimeout)
	}
	if n := a.Called(console.ActionResetAdmin); n != 0 {
		t.Fatalf("reset-admin ran before the press")
	}
	b.Press()
	out := p.Expect(console.Prompt, guard)
	if !strings.Contains(out, "button pressed\r\nadmin password reset to the device default (see the label); 2FA removed\r\n"+console.OK) {
		t.Errorf("reset-admin:\n%s", out)
	}
	if n := a.Called(console.ActionResetAdmin); n != 1 {
		t.Errorf("reset-admin ran %d times, want 1", n)
	}
}

func TestRefusedWithoutButtonPress(t *testing.T) {
	a := fakeActions()
	b := consoletest.NewButton()
	p := start(t, console.Config{Actions: a, Button: b, ConfirmTimeout: 100 * time.Millisecond})
	openMenu(t, p)
	for _, action := range []string{"reset-admin", "reset-network", "reboot", "poweroff", "set-aside-database"} {
		out := run(t, p, action+"\r")
		if !strings.Contains(out, "no button press within 100ms\r\n"+console.FailedPrefix+console.ErrNotConfirmed.Error()+" ==") {
			t.Errorf("%s without a press:\n%s", action, out)
		}
		waittest.Recv(t, b.Waiting, "the console to wait for a button press")
	}
	// Enter cancels the wait.
	p.Send("reset-admin\r")
	p.Expect(console.ConfirmButtonPrefix, guard)
	waittest.Recv(t, b.Waiting, "the console to wait for a button press")
	p.Send("\r")
	if out := p.Expect(console.Prompt, guard); !strings.Contains(out, "cancelled") {
		t.Errorf("Enter did not cancel:\n%s", out)
	}
	// A button that cannot be read refuses too.
	b.Break(errors.New("gpio: line busy"))
	if out := run(t, p, "reboot\r"); !strings.Contains(out, "the button could not be read") ||
		!strings.Contains(out, console.FailedPrefix+"not confirmed") {
		t.Errorf("broken button:\n%s", out)
	}
	for _, name := range []string{"reset-admin", "reset-network", "reboot", "poweroff", "set-aside-database"} {
		if n := a.Called(name); n != 0 {
			t.Errorf("%s ran %d times without confirmation", name, n)
		}
	}
}

// word extracts the confirmation word from the console's prompt.
func word(t *testing.T, p *ptytest.Port) string {
	t.Helper()
	p.Expect(console.ConfirmTypePrefix, guard)
	w := p.Expect(" ", guard)
	return strings.TrimSpace(w)
}

func TestTypedConfirmation(t *testing.T) {
	a := fakeActions()
	clk := clocktest.New(t0)
	p := start(t, console.Config{Actions: a, Clock: clk})
	openMenu(t, p)

	p.Send("reset-admin\r")
	// Everything the action does is said before the word is asked for,
	// in lines an 80-column terminal shows whole.
	before := p.Expect(console.ConfirmTypePrefix, guard)
	for _, want := range []string{console.TellsPrefix, "default password", "label", "rknas/default-password", "DHCP", "new address", "Other accounts and all data are kept"} {
		if !strings.Contains(strings.ReplaceAll(before, "\r\n", " "), want) {
			t.Errorf("before the word, no %q:\n%s", want, before)
		}
	}
	for _, l := range strings.Split(before, "\r\n") {
		if len(l) > 80 {
			t.Errorf("a line of %d columns: %q", len(l), l)
		}
	}
	w1 := strings.TrimSpace(p.Expect(" ", guard))
	if !strings.HasPrefix(w1, "RESET-") || len(w1) != len("RESET-0000") {
		t.Fatalf("confirmation word %q, want RESET-dddd", w1)
	}
	p.Send("RESET\r")
	if out := p.Expect(console.Prompt, guard); !strings.Contains(out, "that is not "+w1) ||
		!strings.Contains(out, console.FailedPrefix+"not confirmed") {
		t.Errorf("wrong word:\n%s", out)
	}
	// An empty Enter cancels.
	p.Send("reset-admin\r")
	word(t, p)
	p.Send("\r")
	if out := p.Expect(console.Prompt, guard); !strings.Contains(out, "cancelled") || strings.Contains(out, "that is not") {
		t.Errorf("empty answer:\n%s", out)
	}
	// The word in lower case is the word.
	p.Send("reset-admin\r")
	w2 := word(t, p)
	p.Send(strings.ToLower(w2) + "\r")
	if out := p.Expect(console.Prompt, guard); !strings.Contains(out, "2FA removed\r\n"+console.OK) {
		t.Errorf("right word:\n%s", out)
	}
	if n := a.Called(console.ActionResetAdmin); n != 1 {
		t.Errorf("reset-admin ran %d times, want 1", n)
	}

	// No answer within the timeout, measured on the fake clock.
	p.Send("reset-network\r")
	word(t, p)
	p.Expect("to reset-network: ", guard)
	clk.Advance(console.DefaultConfirmTimeout)
	if out := p.Expect(console.Prompt, guard); !strings.Contains(out, "no confirmation within 30s") ||
		!strings.Contains(out, console.FailedPrefix+"not confirmed") {
		t.Errorf("timeout:\n%s", out)
	}
	if n := a.Called(console.ActionResetNetwork); n != 0 {
		t.Errorf("reset-network ran without confirmation")
	}
}

func TestSetClock(t *testing.T) {
	a := fakeActions()
	b := consoletest.NewButton()
	p := start(t, console.Config{Actions: a, Button: b})
	openMenu(t, p)
	p.Send("set-clock\r")
	if out := p.Expect(console.TimePrompt, guard); !regexp.MustCompile(`the clock says \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC`).MatchString(out) {
		t.Errorf("the prompt does not show the time now:\n%s", out)
	}
	// A typing error asks again; an empty line cancels.
	p.Send("yesterday\r")
	if out := p.Expect(console.TimePrompt, guard); !strings.Contains(out, `not a time: "yesterday"`) {
		t.Errorf("bad time:\n%s", out)
	}
	p.Send("\r")
	if out := p.Expect(console.Prompt, guard); !strings.Contains(out, "cancelled") {
		t.Errorf("empty line:\n%s", out)
	}
	// Minutes without seconds are a time.
	p.Send("6\r")
	p.Expect(console.TimePrompt, guard)
	p.Send("2026-11-23 12:34\r")
	waittest.Recv(t, b.Waiting, "the console to wait for a button press")
	b.Press()
	if out := p.Expect(console.Prompt, guard); !strings.Contains(out, "clock set to 2026-11-23T12:34:00Z\r\n"+console.OK) {
		t.Errorf("set-clock without seconds:\n%s", out)
	}
	p.Send("6\r")
	p.Expect(console.TimePrompt, guard)
	p.Send("2026-11-23 12:34:56\r")
	waittest.Recv(t, b.Waiting, "the console to wait for a button press")
	b.Press()
	if out := p.Expect(console.Prompt, guard); !strings.Contains(out, "clock set to 2026-11-23T12:34:56Z\r\n"+console.OK) {
		t.Errorf("set-clock:\n%s", out)
	}
	got := a.SetClockTimes()
	if want := time.Date(2026, 11, 23, 12, 34, 56, 0, time.UTC); len(got) != 2 || !got[1].Equal(want) {
		t.Errorf("SetClock got %v, want [%v]", got, want)
	}
}

func TestActionErrorsAndHostileText(t *testing.T) {
	a := fakeActions()
	a.ResetNetworkErr = errors.New("netconf: write /state/net.json: read-only file system")
	a.ResetNetworkMsg = ""
	a.AuditEntries = []string{"login \x1b[2J\x1b]0;pwned\x07user\r\nforged line", "ok"}
	a.StatusValue.AuthdOK, a.StatusValue.Authd = false, "not responding"
	b := consoletest.NewButton()
	p := start(t, console.Config{Actions: a, Button: b})
	if banner := p.Expect(console.BannerHint, guard); !strings.Contains(banner, "login service: FAILING: not responding\r\n") {
		t.Errorf("banner with authd down:\n%s", banner)
	}
	p.Send("r\r")
	p.Expect(console.Prompt, guard)
	p.Send("reset-network\r")
	waittest.Recv(t, b.Waiting, "the console to wait for a button press")
	b.Press()
	if out := p.Expect(console.Prompt, guard); !strings.Contains(unwrap(out),
		console.FailedPrefix+"reset-network: netconf: write /state/net.json: read-only file system ==") {
		t.Errorf("failed action:\n%s", out)
	}
	out := run(t, p, "audit\r")
	if strings.ContainsAny(out[strings.Index(out, console.Begin("audit")):], "\x1b\x07") {
		t.Errorf("escape bytes reached the terminal: %q", out)
	}
	if !strings.Contains(out, "login ?[2J?]0;pwned?user??forged line\r\nok\r\n") {
		t.Errorf("audit not cleaned: %q", out)
	}
}

func TestStatusUnavailable(t *testing.T) {
	a := fakeActions()
	a.StatusErr = errors.New("authd: dial unix /run/authd.sock: no such file")
	p := start(t, console.Config{Actions: a})
	if banner := p.Expect(console.BannerHint, guard); !strings.Contains(banner, "status: unavailable: authd: dial unix") {
		t.Errorf("banner:\n%s", banner)
	}
}

func TestIdleBackToBanner(t *testing.T) {
	clk := clocktest.New(t0)
	p := start(t, console.Config{Actions: fakeActions(), Clock: clk, IdleTimeout: time.Minute})
	openMenu(t, p)
	clk.Advance(59 * time.Second)
	p.Send("x") // a key press restarts the idle time
	p.Expect("x", guard)
	clk.Advance(59 * time.Second)
	p.Send("\x7f")
	p.Expect("\b \b", guard)
	if got := p.Pending(); got != "" {
		t.Fatalf("unexpected output %q", got)
	}
	clk.Advance(time.Minute)
	out := p.Expect(console.BannerHint, guard)
	if !strings.Contains(out, "idle for 1m0s: back to the banner") || !strings.Contains(out, console.Title) {
		t.Errorf("idle:\n%s", out)
	}
}

func TestFailsafe(t *testing.T) {
	p := start(t, console.Config{Actions: fakeActions(), Failsafe: true})
	out := p.Expect(console.Prompt, guard)
	if !strings.Contains(out, console.FailsafeNote+console.FailsafeOpen) || !strings.Contains(out, "rescue menu") {
		t.Errorf("failsafe start:\n%s", out)
	}
	// Back at the banner the menu no longer opens by itself: the title
	// must not say so.
	p.Send("q\r")
	if out := p.Expect(console.BannerHint, guard); !strings.Contains(out, console.FailsafeNote) || strings.Contains(out, console.FailsafeOpen) {
		t.Errorf("failsafe banner after the menu:\n%s", out)
	}
}

func TestPortVanishesAndComesBack(t *testing.T) {
	a := fakeActions()
	dir := t.TempDir()
	p := ptytest.NewPort(t, dir, "ttyUSB0")
	p.Unplug() // missing at start: the console retries
	startOn(t, p, console.Config{Actions: a})
	p.Plug()
	openMenu(t, p)
	for i := range 3 {
		p.Unplug()
		p.Plug()
		p.Expect(console.BannerHint, guard)
		if out := run(t, p, "r\r"); !strings.Contains(out, "rescue menu") {
			t.Fatalf("after replug %d: %q", i, out)
		}
		if out := run(t, p, "status\r"); !strings.Contains(out, console.OK) {
			t.Fatalf("status after replug %d: %q", i, out)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	a := fakeActions()
	tests := []struct {
		name string
		cfg  console.Config
		want string
	}{
		{"no actions", console.Config{}, "Actions is required"},
		{"negative idle", console.Config{Actions: a, IdleTimeout: -time.Second}, "IdleTimeout is negative"},
		{"word with space", console.Config{Actions: a, ConfirmWord: "RE SET"}, "ConfirmWord"},
		{"backoff", console.Config{Actions: a, BackoffMin: time.Second, BackoffMax: time.Millisecond}, "BackoffMax"},
		{"audit", console.Config{Actions: a, AuditEntries: -1}, "AuditEntries"},
	}
	for _, tt := range tests {
		_, err := console.New(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error naming %s", tt.name, err, tt.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		err  string
	}{
		{"2026-11-23 12:34:56", time.Date(2026, 11, 23, 12, 34, 56, 0, time.UTC), ""},
		{" 2026-11-23T13:34:56+01:00 ", time.Date(2026, 11, 23, 12, 34, 56, 0, time.UTC), ""},
		{"1970-01-01 00:00:00", time.Time{}, "out of range"},
		{"2026-13-01 00:00:00", time.Time{}, "not a time"},
		{"", time.Time{}, "not a time"},
	}
	for _, tt := range tests {
		got, err := console.ParseTime(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseTime(%q) = %v, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-11-23 12:34:56", "2026-11-23T12:34:56Z", "9999-99-99 99:99:99", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := console.ParseTime(s)
		if err == nil && (got.Year() < 2020 || got.Year() > 2200 || got.Location() != time.UTC) {
			t.Fatalf("ParseTime(%q) = %v", s, got)
		}
	})
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"plain":             "plain",
		"a\x1b[31mred":      "a?[31mred",
		"t\u00e9st":         "t??st",
		"line\n":            "line",
		"nul\x00del\x7fend": "nul?del?end",
	} {
		if got := console.Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAuthdStartingIsNoFailure: at the first boot authd runs but does not
// answer for a while; the banner says starting, not FAILING.
func TestAuthdStartingIsNoFailure(t *testing.T) {
	a := fakeActions()
	a.StatusValue.AuthdOK, a.StatusValue.AuthdStarting, a.StatusValue.Authd = false, true, "running, not answering yet"
	p := start(t, console.Config{Actions: a})
	banner := p.Expect(console.BannerHint, guard)
	if !strings.Contains(banner, "login service: starting: running, not answering yet\r\n") || strings.Contains(banner, "FAILING") {
		t.Errorf("banner while authd starts:\n%s", banner)
	}
}

// TestTypoGetsOneLineAndASuggestion: a mistyped name gets one line that
// names the nearest action; nothing runs.
func TestTypoGetsOneLineAndASuggestion(t *testing.T) {
	a := fakeActions()
	p := start(t, console.Config{Actions: a})
	openMenu(t, p)
	for typed, want := range map[string]string{"stauts": "did you mean status?", "reset-amdin": "did you mean reset-admin?", "inst": "did you mean install-emmc?", "xyzzy": `unknown choice "xyzzy" (? shows the menu)`} {
		out := run(t, p, typed+"\r")
		// The echo of what was typed, then one line.
		if !strings.Contains(out, want) || strings.Count(out, "\r\n") > 2 {
			t.Errorf("%q:\n%s\nwant one line with %q", typed, out, want)
		}
	}
	for _, name := range console.ActionNames()[1:] {
		if n := a.Called(name); n != 0 {
			t.Errorf("a typo ran %s", name)
		}
	}
}

// TestEveryLineFitsEightyColumns: the banner, the menu, long status and
// audit lines and action messages keep to 80 columns.
func TestEveryLineFitsEightyColumns(t *testing.T) {
	a := fakeActions()
	a.StatusValue.Authd = "running (board friendlyelec-cm3588-nas, clock synchronized (ntp pool.ntp.org), button gpio-keys (available))"
	a.AuditEntries = []string{strings.Repeat("2026-11-23T09:00:00Z login admin from 192.168.100.200 failed: wrong password ", 2)}
	a.ResetNetworkMsg = strings.Repeat("the network is back to DHCP on every Ethernet port ", 3)
	p := start(t, console.Config{Actions: a})
	var all strings.Builder
	all.WriteString(p.Expect(console.BannerHint, guard))
	p.Send("r\r")
	all.WriteString(p.Expect(console.Prompt, guard))
	all.WriteString(run(t, p, "status\r"))
	all.WriteString(run(t, p, "audit\r"))
	p.Send("reset-network\r")
	w := word(t, p)
	all.WriteString(run(t, p, w+"\r"))
	// A failure whose reason is longer than a line.
	a.PowerOffErr = errors.New(strings.TrimSpace(strings.Repeat("the power controller on i2c-0 did not answer the request ", 2)))
	p.Send("poweroff\r")
	w = word(t, p)
	all.WriteString(run(t, p, w+"\r"))
	if !strings.Contains(unwrap(all.String()), console.FailedPrefix+"poweroff: "+a.PowerOffErr.Error()+" ==") {
		t.Errorf("the long failure is not whole:\n%s", all.String())
	}
	for _, l := range strings.Split(all.String(), "\r\n") {
		if len(l) > 80 {
			t.Errorf("%d columns: %q", len(l), l)
		}
	}
	if !strings.Contains(all.String(), "button gpio-keys") {
		t.Errorf("the long authd line was lost:\n%s", all.String())
	}
}

// TestUnavailableRefusedBeforeTheWord: an action that cannot run now is
// marked in the menu and refused with its reason before any confirmation.
func TestUnavailableRefusedBeforeTheWord(t *testing.T) {
	a := fakeActions()
	a.Off = map[string]string{console.ActionResetNetwork: "the login service does not manage the network on this NAS"}
	p := start(t, console.Config{Actions: a})
	p.Expect(console.BannerHint, guard)
	p.Send("r\r")
	menu := p.Expect(console.Prompt, guard)
	if !regexp.MustCompile(`reset-network .*\[not now\]`).MatchString(menu) {
		t.Errorf("the menu does not mark reset-network:\n%s", menu)
	}
	out := run(t, p, "reset-network\r")
	if strings.Contains(out, console.ConfirmTypePrefix) || !strings.Contains(unwrap(out), console.FailedPrefix+"not available: the login service does not manage the network on this NAS ==") {
		t.Errorf("reset-network while unavailable:\n%s", out)
	}
	if n := a.Called(console.ActionResetNetwork); n != 0 {
		t.Errorf("reset-network ran %d times", n)
	}
}

// TestResetAdminSaysOnlyWhatItDoes: where the network is not managed, the
// reset-admin warning does not promise a network reset.
func TestResetAdminSaysOnlyWhatItDoes(t *testing.T) {
	a := fakeActions()
	a.Off = map[string]string{console.ActionResetNetwork: console.NetworkUnmanaged}
	p := start(t, console.Config{Actions: a})
	openMenu(t, p)
	p.Send("reset-admin\r")
	before := strings.ReplaceAll(p.Expect(console.ConfirmTypePrefix, guard), "\r\n", " ")
	if strings.Contains(before, "DHCP") || !strings.Contains(before, "The network is not managed here and stays as it is") {
		t.Errorf("reset-admin's warning without a managed network:\n%s", before)
	}
	p.Expect(" ", guard)
	p.Send("\r")
	p.Expect(console.Prompt, guard)
}

// unwrap joins the lines the console broke at 80 columns.
func unwrap(s string) string { return strings.ReplaceAll(s, "\r\n  ", " ") }
