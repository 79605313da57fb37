package button

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/board"
)

func TestSourceFor(t *testing.T) {
	tests := []struct {
		board string
		kind  string
		err   error
	}{
		{"qemu-virt", "gpio", nil},
		{"qnap-ts433", "input", nil},
		{"radxa-rock-5-itx", "input", nil},
		{"kobol-helios64", "", ErrNoButton},
		{"none", "", ErrNoButton},
	}
	for _, tt := range tests {
		p, err := board.ByName(tt.board)
		if err != nil {
			t.Fatal(err)
		}
		s, err := SourceFor(p)
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: err = %v, want %v", tt.board, err, tt.err)
			continue
		}
		if tt.err == nil && s.Kind() != tt.kind {
			t.Errorf("%s: kind = %s, want %s", tt.board, s.Kind(), tt.kind)
		}
		if tt.err != nil && s != nil {
			t.Errorf("%s: non-nil source with an error", tt.board)
		}
	}
	p, _ := board.ByName("qemu-virt")
	p.ResetHold, p.CancelHold = 2*time.Second, 10*time.Second
	if th := ThresholdsFor(p); th.Reset != 2*time.Second || th.Cancel != 10*time.Second || th.Debounce != 30*time.Millisecond {
		t.Errorf("ThresholdsFor = %+v", th)
	}
	if l, err := LEDFor(p, "nonexistent-role"); l != nil || err != nil {
		t.Errorf("LEDFor(missing role) = %v, %v", l, err)
	}
}

// TestLEDClassOfAnotherKernel: the TS-433's disk LED is green:disk on the
// firmware's kernel and hdd1:green:disk on later ones; either opens.
func TestLEDClassOfAnotherKernel(t *testing.T) {
	p, err := board.ByName("qnap-ts433")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := p.LED("status")
	for _, present := range l.Classes() {
		root := t.TempDir()
		dir := filepath.Join(root, present)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string]string{"trigger": "[none] timer heartbeat\n", "brightness": "0\n"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		led, err := openLEDClass(root, l.Classes())
		if err != nil || led.(*SysfsLED).dir != dir {
			t.Errorf("with only %s present: %v, %v", present, led, err)
		}
	}
	if _, err := openLEDClass(t.TempDir(), l.Classes()); err == nil || !strings.Contains(err.Error(), "hdd1:green:disk") {
		t.Errorf("with neither present: %v, want an error naming both", err)
	}
}
