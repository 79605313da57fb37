package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rknas/firmware/internal/waittest"
)

// syncBuf collects output and closes ready when "authd ready" is written.
type syncBuf struct {
	mu    sync.Mutex
	b     bytes.Buffer
	ready chan struct{}
}

func newSyncBuf() *syncBuf { return &syncBuf{ready: make(chan struct{})} }

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	if bytes.Contains(p, []byte("authd ready")) {
		close(s.ready)
	}
	return n, err
}

func (s *syncBuf) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestMarkers checks the console lines the VM rig waits for: the password on
// the first start only, and "authd ready" on every start.
func TestMarkers(t *testing.T) {
	state := t.TempDir()
	for i, wantPassword := range []bool{true, false} {
		out := newSyncBuf()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- run(ctx, []string{"-state", state, "-listen", "127.0.0.1:0"}, out) }()
		select {
		case <-out.ready:
		case err := <-done:
			t.Fatalf("start %d ended before ready: %v\n%s", i+1, err, out.String())
		case <-time.After(10 * time.Second):
			t.Fatalf("start %d: no ready line in 10 s\n%s", i+1, out.String())
		}
		cancel()
		if err := waittest.Recv(t, done, "the stub to stop after cancel"); err != nil {
			t.Fatalf("start %d: %v", i+1, err)
		}
		if got := strings.Contains(out.String(), "default admin password:"); got != wantPassword {
			t.Errorf("start %d printed the password: %v, want %v\n%s", i+1, got, wantPassword, out.String())
		}
		if !strings.Contains(out.String(), "authd ready") {
			t.Errorf("start %d: no ready line\n%s", i+1, out.String())
		}
	}
}

func TestMissingState(t *testing.T) {
	if err := run(context.Background(), nil, newSyncBuf()); err == nil {
		t.Fatal("run without -state succeeded")
	}
}
