package button

import (
	"errors"
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
