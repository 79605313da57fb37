package simctl

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeLines records pulls; Value follows the pull for the reset line, as
// gpio-sim does for an input.
type fakeLines struct {
	up  map[int]bool
	val map[int]int
	log []string
}

func newFake() *fakeLines {
	return &fakeLines{up: map[int]bool{LineReset: true}, val: map[int]int{LineLEDStatus: 1}}
}

func (f *fakeLines) SetPull(off int, up bool) error {
	f.up[off] = up
	f.log = append(f.log, map[bool]string{true: "up", false: "down"}[up])
	return nil
}
func (f *fakeLines) Pull(off int) (bool, error) { return f.up[off], nil }
func (f *fakeLines) Value(off int) (int, error) {
	if off == LineReset {
		if f.up[off] {
			return 1, nil
		}
		return 0, nil
	}
	return f.val[off], nil
}

// Freeze stands in for uinit's: authd is pid 42.
func (f *fakeLines) Freeze(name string) ([]int, error) {
	if name == "authd" {
		return []int{42}, nil
	}
	return nil, errors.New("no process " + name)
}

// SyncProbe stands in for uinit's.
func (f *fakeLines) SyncProbe() (time.Duration, error) { return 1234 * time.Microsecond, nil }

func TestHandle(t *testing.T) {
	tests := []struct {
		lines []string
		want  string // reply to the last line
		pulls string
	}{
		{[]string{"ping"}, "pong", ""},
		{[]string{"level?"}, "level 1 released", ""},
		{[]string{"press", "level?"}, "level 0 pressed", "down"},
		{[]string{"press", "release", "level?"}, "level 1 released", "down,up"},
		{[]string{"hold 0.01"}, "ok held 10ms", "down,up"},
		{[]string{"led?"}, "led-status 1 led-alert 0", ""},
		{[]string{"hold -1"}, "err bad command: hold: seconds must be a number in (0, 600]", ""},
		{[]string{"hold NaN"}, "err bad command: hold: seconds must be a number in (0, 600]", ""},
		{[]string{"press now"}, "err bad command: press takes no argument", ""},
		{[]string{"reboot"}, `err bad command: unknown command "reboot"`, ""},
		{[]string{""}, "err bad command: empty line", ""},
		{[]string{"freeze authd"}, "ok froze authd [42]", ""},
		{[]string{"freeze nothing"}, "err no process nothing", ""},
		{[]string{"freeze ../x"}, "err bad command: usage: freeze PROCESS (a lower-case name)", ""},
		{[]string{"freeze"}, "err bad command: usage: freeze PROCESS (a lower-case name)", ""},
		{[]string{"fsync"}, "fsync 1234 µs", ""},
		{[]string{"fsync now"}, "err bad command: fsync takes no argument", ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.lines, ";"), func(t *testing.T) {
			f := newFake()
			var got string
			for _, l := range tt.lines {
				got = Handle(context.Background(), f, l)
			}
			if got != tt.want {
				t.Errorf("reply %q, want %q", got, tt.want)
			}
			if p := strings.Join(f.log, ","); p != tt.pulls {
				t.Errorf("pulls %q, want %q", p, tt.pulls)
			}
		})
	}
}

func TestHoldReleasesOnCancel(t *testing.T) {
	f := newFake()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := Handle(ctx, f, "hold 600")
	if !strings.HasPrefix(got, "err") || !f.up[LineReset] {
		t.Fatalf("reply %q, reset pulled up %v: a cancelled hold must still release", got, f.up[LineReset])
	}
}

type pipeRW struct {
	r *strings.Reader
	w strings.Builder
}

func (p *pipeRW) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeRW) Write(b []byte) (int, error) { return p.w.Write(b) }

func TestServe(t *testing.T) {
	rw := &pipeRW{r: strings.NewReader("ping\npress\nlevel?\n" + strings.Repeat("x", 300) + "\n")}
	err := Serve(context.Background(), rw, newFake())
	if err == nil || errors.Is(err, os.ErrClosed) {
		t.Fatalf("Serve = %v, want a too-long-line error", err)
	}
	if want := "pong\nok pressed\nlevel 0 pressed\n"; rw.w.String() != want {
		t.Fatalf("replies %q, want %q", rw.w.String(), want)
	}
}

// TestCreate runs against a fake configfs/sysfs tree; the real one is covered
// by the VM test.
func TestCreate(t *testing.T) {
	root := t.TempDir()
	cfg, sys := filepath.Join(root, "config"), filepath.Join(root, "sys")
	dev := filepath.Join(cfg, "gpio-sim", DevName)
	// The kernel would fill these in on live=1; pre-create them.
	must(t, os.MkdirAll(filepath.Join(dev, "bank0"), 0o755))
	must(t, os.WriteFile(filepath.Join(dev, "dev_name"), []byte("gpio-sim.0\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dev, "bank0", "chip_name"), []byte("gpiochip1\n"), 0o644))
	line := filepath.Join(sys, "devices", "platform", "gpio-sim.0", "gpiochip1", "sim_gpio0")
	must(t, os.MkdirAll(line, 0o755))
	must(t, os.WriteFile(filepath.Join(line, "value"), []byte("1\n"), 0o644))

	s, err := Create(cfg, sys)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"bank0/label": BankLabel, "bank0/num_lines": "4", "bank0/line0/name": "reset",
		"bank0/line1/name": "led-status", "bank0/line2/name": "led-alert", "live": "1",
	} {
		got, err := os.ReadFile(filepath.Join(dev, path))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q (%v), want %q", path, got, err, want)
		}
	}
	if up, err := s.Pull(LineReset); err != nil || !up {
		t.Errorf("reset pull-up after Create = %v, %v; want released", up, err)
	}
	if s.Chip != "gpiochip1" {
		t.Errorf("Chip = %q", s.Chip)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"ping", "hold 2.5", "hold 1e308", "hold -0", "level?", "led? x", "\x00", "freeze authd", "freeze a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseCommand(line)
		if err != nil {
			return
		}
		if c.Verb == "hold" && (c.Hold <= 0 || c.Hold > MaxHold) {
			t.Fatalf("hold %v out of range accepted from %q", c.Hold, line)
		}
		if c.Verb == "freeze" && (c.Name == "" || strings.ContainsAny(c.Name, "/. \x00")) {
			t.Fatalf("freeze of %q accepted from %q", c.Name, line)
		}
	})
}
