package waittest

import (
	"testing"
	"time"
)

type fatalRecorder struct {
	testing.TB
	failed string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.failed = format
	panic(f)
}

func TestRecv(t *testing.T) {
	ch := make(chan int, 1)
	ch <- 7
	if v := Recv(t, ch, "seven"); v != 7 {
		t.Fatalf("Recv = %d", v)
	}
}

// TestRecvFailsInsteadOfHanging: an event that never comes fails the test.
func TestRecvFailsInsteadOfHanging(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	func() {
		defer func() {
			if r := recover(); r != rec {
				panic(r)
			}
		}()
		RecvWithin(rec, make(chan int), 20*time.Millisecond, "nothing")
	}()
	if rec.failed == "" {
		t.Fatal("Recv returned without a value and without failing")
	}
}
