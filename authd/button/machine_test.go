package button

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

// step is one input to the machine: "P 100" press at 100 ms, "R 100" release,
// "L 100" release with lost events, "T 100" tick, "S1"/"S0" start pressed or not.
func runSteps(t *testing.T, th Thresholds, steps string) (string, State) {
	t.Helper()
	m, err := NewMachine(th)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	record := func(es []Effect) {
		for _, e := range es {
			s := fmt.Sprintf("%s@%d", e.Kind, e.At/ms)
			if e.Held != 0 {
				s += fmt.Sprintf("/%d", e.Held/ms)
			}
			got = append(got, s)
		}
	}
	for _, st := range strings.Split(steps, ",") {
		f := strings.Fields(st)
		var at time.Duration
		if len(f) > 1 {
			var n int
			fmt.Sscan(f[1], &n)
			at = time.Duration(n) * ms
		}
		switch f[0] {
		case "S0":
			record(m.Start(false, 0))
		case "S1":
			record(m.Start(true, 0))
		case "P":
			record(m.Edge(Event{Pressed: true, At: at}))
		case "R":
			record(m.Edge(Event{Pressed: false, At: at}))
		case "L":
			record(m.Edge(Event{Pressed: false, At: at, Lost: true}))
		case "T":
			record(m.Tick(at))
		default:
			t.Fatalf("bad step %q", st)
		}
	}
	return strings.Join(got, " "), m.State()
}

func TestMachine(t *testing.T) {
	d := DefaultThresholds
	noDebounce := d
	noDebounce.Debounce = 0
	tests := []struct {
		name  string
		th    Thresholds
		steps string
		want  string
		state State
	}{
		{"glitch shorter than debounce", d, "S0, P 0, R 10, T 100, T 20000", "glitch@10/10", StateIdle},
		{"glitch of 29 ms", d, "S0, P 1000, R 1029, T 5000", "glitch@1029/29", StateIdle},
		{"3.9 s does nothing", d, "S0, P 0, T 30, T 3899, R 3900, T 3930",
			"pressed@0 short-press@3900/3900", StateIdle},
		{"3.999 s does nothing", d, "S0, P 0, T 30, R 3999, T 4100",
			"pressed@0 short-press@3999/3999", StateIdle},
		{"a release pending at 4 s does not arm", d, "S0, P 0, T 30, R 3990, T 4000, T 4020",
			"pressed@0 short-press@3990/3990", StateIdle},
		{"a glitch across 4 s arms at 4 s", d, "S0, P 0, T 30, R 3990, T 4000, P 4005, T 4100, R 4200, T 4230",
			"pressed@0 glitch@4005/15 armed@4000/4000 recover@4200/4200", StateIdle},
		{"exactly 4 s resets", d, "S0, P 0, T 30, T 4000, R 4000, T 4030",
			"pressed@0 armed@4000/4000 recover@4000/4000", StateIdle},
		{"4.1 s resets", d, "S0, P 0, T 30, T 4000, R 4100, T 4130",
			"pressed@0 armed@4000/4000 recover@4100/4100", StateIdle},
		{"14 s resets", d, "S0, P 0, T 30, T 4000, T 13000, R 14000, T 14030",
			"pressed@0 armed@4000/4000 recover@14000/14000", StateIdle},
		{"14.999 s resets", d, "S0, P 0, T 30, T 4000, R 14999, T 15100",
			"pressed@0 armed@4000/4000 recover@14999/14999", StateIdle},
		{"a release pending at 15 s does not cancel", d, "S0, P 0, T 30, T 4000, R 14990, T 15000, T 15020",
			"pressed@0 armed@4000/4000 recover@14990/14990", StateIdle},
		{"16 s cancels", d, "S0, P 0, T 30, T 4000, T 15000, R 16000, T 16030",
			"pressed@0 armed@4000/4000 cancelled@15000/15000 cancel-release@16000/16000", StateIdle},
		{"bouncing edges", d, "S0, P 0, R 2, P 4, R 6, P 8, T 38, T 4008, R 5008, P 5010, R 5012, T 5042",
			"glitch@2/2 glitch@6/2 pressed@8 armed@4008/4000 glitch@5010/2 recover@5012/5004", StateIdle},
		{"release bounce inside a short press", d, "S0, P 0, T 30, R 1000, P 1005, R 2000, T 2030",
			"pressed@0 glitch@1005/5 short-press@2000/2000", StateIdle},
		{"held at start, then a real press", d,
			"S1, T 20000, R 20000, T 20030, P 21000, T 21030, T 25000, R 25100, T 25130",
			"held-at-start@0 ignored-release@20000 pressed@21000 armed@25000/4000 recover@25100/4100", StateIdle},
		{"held at start and long: still nothing", d, "S1, T 30000, R 31000, T 32000",
			"held-at-start@0 ignored-release@31000", StateIdle},
		{"two presses in a row", d, "S0, P 0, T 4000, R 4100, T 4200, P 5000, T 9000, R 9200, T 9300",
			"pressed@0 armed@4000/4000 recover@4100/4100 pressed@5000 armed@9000/4000 recover@9200/4200", StateIdle},
		{"late ticks: timestamps decide", d, "S0, P 0, R 4100, T 60000",
			"pressed@0 armed@4000/4000 recover@4100/4100", StateIdle},
		{"late ticks past cancel", d, "S0, P 0, R 15500, T 60000",
			"pressed@0 armed@4000/4000 cancelled@15000/15000 cancel-release@15500/15500", StateIdle},
		{"lost events abandon the press", d, "S0, P 0, T 30, T 4000, L 5000, T 5030",
			"pressed@0 armed@4000/4000 lost@5000/5000 ignored-release@5000", StateIdle},
		{"kernel debounced: no extra delay", noDebounce, "S0, P 0, T 4000, R 4100",
			"pressed@0 armed@4000/4000 recover@4100/4100", StateIdle},
		{"still held", d, "S0, P 0, T 30, T 4500", "pressed@0 armed@4000/4000", StateArmed},
		{"duplicate edges are no-ops", d, "S0, P 0, T 30, P 100, T 200", "pressed@0", StatePressed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, state := runSteps(t, tt.th, tt.steps)
			if got != tt.want {
				t.Errorf("effects:\n got %s\nwant %s", got, tt.want)
			}
			if state != tt.state {
				t.Errorf("state = %s, want %s", state, tt.state)
			}
			// Exactly one press-ending effect per confirmed press.
			presses := strings.Count(got, "pressed@") + strings.Count(got, "held-at-start@")
			ends := 0
			for _, k := range []string{"short-press@", "recover@", "cancel-release@", "ignored-release@"} {
				ends += strings.Count(got, k)
			}
			if tt.state == StateIdle && ends != presses {
				t.Errorf("%d presses but %d endings", presses, ends)
			}
		})
	}
}

func TestMachineDeadline(t *testing.T) {
	m, _ := NewMachine(DefaultThresholds)
	m.Start(false, 0)
	if _, ok := m.Deadline(); ok {
		t.Fatal("idle machine wants a tick")
	}
	m.Edge(Event{Pressed: true, At: 100 * ms})
	if d, ok := m.Deadline(); !ok || d != 130*ms {
		t.Fatalf("debounce deadline = %v %v, want 130ms", d, ok)
	}
	m.Tick(130 * ms)
	if d, _ := m.Deadline(); d != 4100*ms {
		t.Fatalf("reset deadline = %v, want 4.1s", d)
	}
	// A release just before the threshold: the next tick is when it has
	// settled, not the threshold, which waits for it (a tick there would
	// find the same deadline again, and again).
	m.Edge(Event{Pressed: false, At: 4090 * ms})
	if d, _ := m.Deadline(); d != 4120*ms {
		t.Fatalf("deadline with a release pending = %v, want 4.12s", d)
	}
	m.Edge(Event{Pressed: true, At: 4095 * ms}) // a glitch: the press goes on
	if d, _ := m.Deadline(); d != 4100*ms {
		t.Fatalf("reset deadline after the glitch = %v, want 4.1s", d)
	}
	m.Tick(4100 * ms)
	if d, _ := m.Deadline(); d != 15100*ms {
		t.Fatalf("cancel deadline = %v, want 15.1s", d)
	}
	m.Tick(15100 * ms)
	if _, ok := m.Deadline(); ok {
		t.Fatal("cancelled machine wants a tick")
	}
}

func TestThresholdsValidate(t *testing.T) {
	tests := []struct {
		th   Thresholds
		want string
	}{
		{Thresholds{Reset: 0, Cancel: time.Second}, "reset threshold 0s must be positive"},
		{Thresholds{Reset: 4 * time.Second, Cancel: 4 * time.Second}, "cancel threshold 4s must be longer"},
		{Thresholds{Reset: time.Second, Cancel: 2 * time.Second, Debounce: time.Second}, "debounce 1s must be between"},
		{Thresholds{Reset: time.Second, Cancel: 2 * time.Second, Debounce: -1}, "debounce -1ns"},
	}
	for _, tt := range tests {
		if err := tt.th.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.th, err, tt.want)
		}
	}
	if err := DefaultThresholds.Validate(); err != nil {
		t.Error(err)
	}
}
