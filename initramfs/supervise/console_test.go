package supervise

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/internal/lockedbuf"
)

// device is a console that takes nothing until it is let go.
type device struct {
	lockedbuf.Buffer
	gate chan struct{}
}

func (d *device) Write(p []byte) (int, error) {
	<-d.gate
	return d.Buffer.Write(p)
}

// TestConsoleQueueNeverWaitsForTheDevice: while the console takes nothing,
// writes still return; what fits is shown in order once it takes again,
// and what did not is counted on it.
func TestConsoleQueueNeverWaitsForTheDevice(t *testing.T) {
	d := &device{gate: make(chan struct{})}
	q := NewConsoleQueue(d, 1000)
	wrote := make(chan struct{})
	go func() {
		for i := range 50 {
			fmt.Fprintf(q, "line %02d %s\n", i, strings.Repeat("x", 91)) // 100 bytes
		}
		close(wrote)
	}()
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("writes waited for a console that takes nothing")
	}
	close(d.gate)
	if !q.Flush(10 * time.Second) {
		t.Fatal("Flush did not return once the console took again")
	}
	out := d.String()
	// The queue holds 1000 bytes, and one more write may be in the
	// device's hands: 10 or 11 whole lines, in the order written (which
	// ones depends on when the writer goroutine took its first), then the
	// count of the rest.
	body, notice, ok := strings.Cut(out, "\n[")
	if !ok {
		t.Fatalf("no count of the lines not shown:\n%s", out)
	}
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if len(lines) < 10 || len(lines) > 11 {
		t.Fatalf("%d lines shown, want the 10 or 11 that fit:\n%s", len(lines), out)
	}
	last := -1
	for _, l := range lines {
		var i int
		if _, err := fmt.Sscanf(l, "line %d ", &i); err != nil || i <= last || l != fmt.Sprintf("line %02d %s", i, strings.Repeat("x", 91)) {
			t.Fatalf("line %q is not whole or not in order:\n%s", l, out)
		}
		last = i
	}
	if want := fmt.Sprintf("%d bytes of log not shown here: they came faster than the console carries them]\n", (50-len(lines))*100); notice != want {
		t.Fatalf("the console ends with %q, want %q", notice, want)
	}
}

// TestConsoleQueueShowsEverythingWhenTheDeviceKeepsUp: nothing is lost or
// reordered when the console keeps up.
func TestConsoleQueueShowsEverythingWhenTheDeviceKeepsUp(t *testing.T) {
	d := &device{gate: make(chan struct{})}
	close(d.gate)
	q := NewConsoleQueue(d, 1000)
	var want strings.Builder
	for i := range 500 {
		fmt.Fprintf(q, "line %d\n", i)
		fmt.Fprintf(&want, "line %d\n", i)
		if i%50 == 0 && !q.Flush(10*time.Second) {
			t.Fatal("Flush timed out")
		}
	}
	if !q.Flush(10 * time.Second) {
		t.Fatal("Flush timed out")
	}
	if d.String() != want.String() {
		t.Fatalf("the console shows %d bytes, want %d", len(d.String()), want.Len())
	}
}
