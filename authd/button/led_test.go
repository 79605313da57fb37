package button

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeLEDDir makes a directory shaped like /sys/class/leds/<name>.
func fakeLEDDir(t *testing.T, name, trigger, brightness string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{"trigger": trigger, "brightness": brightness, "delay_on": "", "delay_off": ""} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func readAttr(t *testing.T, root, name, attr string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name, attr))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSysfsLED(t *testing.T) {
	tests := []struct {
		name, trigger, brightness string
		wantTrigger, wantBright   string
	}{
		{"heartbeat", "none timer [heartbeat] default-on mmc0\n", "0\n", "heartbeat", "0\n"},
		{"manual", "[none] timer heartbeat\n", "1\n", "none", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeLEDDir(t, "green:status", tt.trigger, tt.brightness)
			l, err := OpenSysfsLED(root, "green:status")
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Blink(100*time.Millisecond, 250*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if got := readAttr(t, root, "green:status", "trigger"); got != "timer" {
				t.Errorf("trigger = %q, want timer", got)
			}
			if on, off := readAttr(t, root, "green:status", "delay_on"), readAttr(t, root, "green:status", "delay_off"); on != "100" || off != "250" {
				t.Errorf("delays = %q/%q, want 100/250", on, off)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if got := readAttr(t, root, "green:status", "trigger"); got != tt.wantTrigger {
				t.Errorf("restored trigger = %q, want %q", got, tt.wantTrigger)
			}
			if got := readAttr(t, root, "green:status", "brightness"); got != tt.wantBright {
				t.Errorf("brightness = %q, want %q", got, tt.wantBright)
			}
		})
	}
}

func TestOpenSysfsLEDErrors(t *testing.T) {
	root := fakeLEDDir(t, "x", "none timer", "0")
	tests := []struct{ name, want string }{
		{"../etc", "is not a class device name"},
		{"", "is not a class device name"},
		{"missing", "no such file or directory"},
		{"x", "no active trigger"},
	}
	for _, tt := range tests {
		if _, err := OpenSysfsLED(root, tt.name); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("OpenSysfsLED(%q) = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestParseTrigger(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"none timer [heartbeat] mmc0\n", "heartbeat", ""},
		{"[none] timer", "none", ""},
		{"none [disk-activity]", "disk-activity", ""},
		{"none timer", "", "no active trigger"},
		{"[]", "", "no active trigger"},
		{"[a[b]]", "", "no active trigger"},
	}
	for _, tt := range tests {
		got, err := ParseTrigger(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseTrigger(%q) = %q, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if got != tt.want || err != nil {
			t.Errorf("ParseTrigger(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseTrigger(f *testing.F) {
	f.Add("none timer [heartbeat] mmc0\n")
	f.Add("[none]")
	f.Add("[[x]]")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTrigger(s)
		if err != nil {
			return
		}
		if got == "" || strings.ContainsAny(got, "[] \t\n") {
			t.Fatalf("ParseTrigger(%q) = %q", s, got)
		}
		if !strings.Contains(s, "["+got+"]") {
			t.Fatalf("ParseTrigger(%q) = %q, not bracketed in the input", s, got)
		}
	})
}
