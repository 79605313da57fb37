package serialport_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/rescue/internal/ptytest"
	"github.com/rknas/firmware/rescue/serialport"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		cfg  serialport.Config
		want string
	}{
		{serialport.Config{Path: "/dev/ttyS2", Baud: 1500000}, ""},
		{serialport.Config{Baud: 115200}, "no device path"},
		{serialport.Config{Path: "/dev/ttyS2"}, "baud: 0 is outside"},
		{serialport.Config{Path: "/dev/ttyS2", Baud: 9_000_000}, "baud: 9000000"},
		{serialport.Config{Path: "/dev/ttyS2", Baud: 115200, ReadTimeout: -time.Second}, "read timeout"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: got %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

func TestOpenSpeedsAndTimeout(t *testing.T) {
	p := ptytest.NewPort(t, t.TempDir(), "ttyS2")
	for _, baud := range []int{115200, 1500000, 3000000, 1234567} {
		sp, err := serialport.Open(serialport.Config{Path: p.Path(), Baud: baud, ReadTimeout: 30 * time.Millisecond})
		if err != nil {
			t.Fatalf("%d: %v", baud, err)
		}
		in, out, err := serialport.Speed(p.Path())
		if err != nil || in != baud || out != baud {
			t.Errorf("asked %d, got in %d out %d (%v)", baud, in, out, err)
		}
		// No input: Read returns (0, nil) after the timeout.
		start := time.Now()
		n, err := sp.Read(make([]byte, 8))
		if n != 0 || err != nil {
			t.Errorf("idle read: %d, %v", n, err)
		}
		t.Logf("%d baud: idle read returned after %v", baud, time.Since(start))
		sp.Close()
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "ttyUSB9")
	if _, err := serialport.Open(serialport.Config{Path: missing, Baud: 115200}); err == nil ||
		!strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing port: %v", err)
	}
	plain := filepath.Join(dir, "file")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := serialport.Open(serialport.Config{Path: plain, Baud: 115200}); err == nil {
		t.Error("a plain file opened as a serial port")
	}
	if _, _, err := serialport.Speed(plain); err == nil || !strings.Contains(err.Error(), "TCGETS2") {
		t.Errorf("Speed of a plain file: %v", err)
	}
	if _, err := serialport.Open(serialport.Config{Path: plain}); err == nil || !strings.Contains(err.Error(), "baud") {
		t.Errorf("baud 0: %v", err)
	}
}
