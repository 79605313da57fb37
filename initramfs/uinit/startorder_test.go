package main

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLineWatch: the marker is seen whole, split across writes at every
// point, and not in lines that only come close.
func TestLineWatch(t *testing.T) {
	const marker = `msg="authd ready"`
	line := `time=2026-11-30T11:52:19.262Z level=INFO msg="authd ready" url=https://[::]:443` + "\n"
	seen := func(w *lineWatch) bool {
		select {
		case <-w.seen:
			return true
		default:
			return false
		}
	}
	for cut := 0; cut <= len(line); cut++ {
		w := &lineWatch{marker: []byte(marker), seen: make(chan struct{})}
		w.Write([]byte(`level=INFO msg="authd starting"` + "\n"))
		w.Write([]byte(line[:cut]))
		w.Write([]byte(line[cut:]))
		if !seen(w) {
			t.Fatalf("split at %d: marker not seen", cut)
		}
		w.Write([]byte(line)) // closing twice would panic
	}
	w := &lineWatch{marker: []byte(marker), seen: make(chan struct{})}
	for _, s := range []string{`msg="authd read`, "\n", `y"`, `msg="authd`, "\n", ` ready"`, `level=ERROR msg="authd ready`} {
		w.Write([]byte(s))
	}
	if seen(w) {
		t.Fatal("marker seen in lines that do not hold it")
	}
}

// TestAfterAuthd: the rescue console goes on when authd answers, exits or
// takes too long, and not when the boot is ending.
func TestAfterAuthd(t *testing.T) {
	open := make(chan struct{})
	ctx := context.Background()
	ended, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name        string
		ctx         context.Context
		ready, done <-chan struct{}
		wait        time.Duration
		want        bool
	}{
		{"authd ready", ctx, closed, open, time.Hour, true},
		{"authd exited", ctx, open, closed, time.Hour, true},
		{"authd too slow", ctx, open, open, time.Millisecond, true},
		{"shutting down", ended, open, open, time.Hour, false},
	} {
		if got := afterAuthd(tc.ctx, tc.ready, tc.done, tc.wait); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// threadNice reads the calling thread's nice value from /proc (-100 when
// it cannot: the callers compare it with 0 and 19).
func threadNice(t *testing.T) int {
	b, err := os.ReadFile("/proc/thread-self/stat")
	if err != nil {
		t.Error(err) // not Fatal: called from a goroutine
		return -100
	}
	// The fields after the command name, which ends at the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	n, err := strconv.Atoi(f[16]) // field 19, nice
	if err != nil {
		t.Error(err)
		return -100
	}
	return n
}

// TestBackgroundPriority: the late modules' thread runs at the lowest
// priority until restore, which puts it back to normal even from another
// goroutine, and a restore that comes first keeps it normal.
func TestBackgroundPriority(t *testing.T) {
	for _, restoreFirst := range []bool{false, true} {
		p := &backgroundPriority{}
		if restoreFirst {
			p.restore()
		}
		lowered, restored, finish := make(chan int), make(chan struct{}), make(chan int)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			p.lower()
			lowered <- threadNice(t)
			<-restored
			n := threadNice(t)
			p.finish()
			finish <- n
		}()
		want := 19
		if restoreFirst {
			want = 0
		}
		if n := <-lowered; n != want {
			t.Errorf("restore first %v: nice %d while loading, want %d", restoreFirst, n, want)
		}
		p.restore()
		close(restored)
		if n := <-finish; n != 0 {
			t.Errorf("restore first %v: nice %d after restore, want 0", restoreFirst, n)
		}
		p.restore() // after finish: the thread id is not touched again
	}
}
