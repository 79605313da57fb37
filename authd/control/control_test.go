package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type fakeBackend struct {
	resets, netResets, certs int
	fail                     error
}

func (f *fakeBackend) Status(context.Context) (Status, error) {
	return Status{Version: "v1", Board: "qemu-virt", Clock: "synchronized", Button: "gpio"}, nil
}
func (f *fakeBackend) ResetAdmin(context.Context) (string, error) {
	f.resets++
	return "the admin account is back to the device's default password", f.fail
}
func (f *fakeBackend) ResetNetwork(context.Context) error { f.netResets++; return f.fail }
func (f *fakeBackend) NewCertificate(context.Context) (string, error) {
	f.certs++
	return "AB:CD", f.fail
}
func (f *fakeBackend) Audit(_ context.Context, n int) ([]string, error) {
	return []string{"a", "b", "c"}[:min(n, 3)], nil
}

func TestControlSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "control.sock")
	b := &fakeBackend{}
	presses := &Presses{}
	srv, err := Listen(path, b, presses, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("socket mode %v (%v), want no access for group or others", fi.Mode(), err)
	}
	c := NewClient(path)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil || st.Board != "qemu-virt" {
		t.Fatalf("status %+v %v", st, err)
	}
	if msg, err := c.ResetAdmin(ctx); err != nil || !strings.Contains(msg, "default password") || b.resets != 1 {
		t.Fatalf("reset admin: %q %v", msg, err)
	}
	if _, err := c.ResetNetwork(ctx); err != nil || b.netResets != 1 {
		t.Fatalf("reset network: %v", err)
	}
	if msg, err := c.NewCertificate(ctx); err != nil || !strings.Contains(msg, "SHA-256 AB:CD") || b.certs != 1 {
		t.Fatalf("new certificate: %q %v", msg, err)
	}
	if lines, err := c.Audit(ctx, 2); err != nil || len(lines) != 2 {
		t.Fatalf("audit %v %v", lines, err)
	}
	b.fail = errors.New("disk full")
	if _, err := c.ResetAdmin(ctx); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("failing reset: %v", err)
	}
	// A press while waiting confirms; no press times out.
	done := make(chan bool)
	go func() {
		ok, err := c.WaitPress(ctx, 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		done <- ok
	}()
	for {
		presses.mu.Lock()
		n := len(presses.waiters)
		presses.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	presses.Pressed()
	if !<-done {
		t.Fatal("press not seen")
	}
	if ok, err := c.WaitPress(ctx, 50*time.Millisecond); ok || err != nil {
		t.Fatalf("no press: %v %v", ok, err)
	}
	srv.Close()
	if _, err := NewClient(path).Status(ctx); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("closed socket: %v", err)
	}
}
