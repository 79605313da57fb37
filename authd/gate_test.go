package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStartGate runs the real authd as uinit starts it during the boot's
// failsafe window: it opens its database and waits, listening nowhere,
// until the gate says "go"; a gate closed without it (failsafe mode) ends
// it with the no-restart status, having started nothing.
func TestStartGate(t *testing.T) {
	bin := buildAuthd(t)
	start := func(t *testing.T) (*exec.Cmd, *os.File, string, chan string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		state := filepath.Join(t.TempDir(), "state")
		cmd := exec.Command(bin, "-state", state, "-listen", addr, "-board", "none", "-control-socket", "", "-start-gate-fd", "3")
		cmd.ExtraFiles = []*os.File{r}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r.Close()
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); w.Close() })
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		return cmd, w, addr, lines
	}
	waitLine := func(t *testing.T, lines chan string, want string) {
		t.Helper()
		deadline := time.After(time.Minute) // authd under -race beside other packages
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("authd ended before %q", want)
				}
				if strings.Contains(l, want) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q from authd", want)
			}
		}
	}
	listening := func(addr string) bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}

	t.Run("go", func(t *testing.T) {
		_, w, addr, lines := start(t)
		waitLine(t, lines, "waiting for the boot's failsafe window")
		if listening(addr) {
			t.Fatal("authd listens before the gate said go")
		}
		w.WriteString("go\n")
		w.Close()
		waitLine(t, lines, "authd ready")
		if !listening(addr) {
			t.Fatal("authd does not listen after go")
		}
	})
	t.Run("closed", func(t *testing.T) {
		cmd, w, addr, lines := start(t)
		waitLine(t, lines, "waiting for the boot's failsafe window")
		w.Close()
		waitLine(t, lines, "failsafe mode")
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("authd ended with %v, want exit status 3 (no restart)", err)
		}
		if listening(addr) {
			t.Fatal("authd listened")
		}
	})
}

// waitStartGate itself: only "go" lets the start on; a closed gate, any
// other word and a stop request end it.
func TestWaitStartGate(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name, write string
		cancel      bool
		want        error
	}{
		{"go", "go\n", false, nil},
		{"closed", "", false, errConfig},
		{"another word", "gone\n", false, errConfig},
		{"stopped while waiting", "", true, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			} else {
				w.WriteString(tc.write)
				w.Close()
			}
			err = waitStartGate(ctx, r, log)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("waitStartGate = %v, want %v", err, tc.want)
			}
		})
	}
}
