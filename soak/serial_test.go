//go:build soak

package soak

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/rknas/firmware/authd/control"
)

// TestSerialNoise runs the real rescue console on a pty at 1,500,000 baud,
// next to a real authd, and sends it random bytes and line noise (bursts of
// printable junk, menu keys, line ends, breaks, bytes above 0x7f) for the
// campaign's time. The console must keep answering, and no action may run:
// every one that changes something needs a typed word with random digits
// (this board has no button), which noise does not type.
func TestSerialNoise(t *testing.T) {
	_, sc := campaign()
	state := filepath.Join(t.TempDir(), "state")
	d, err := start(t, state, freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.stop()
	const password = "owner passphrase 1"
	ownerSetup(t, d, password)

	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "rescue")
	build := exec.Command("go", "build", "-o", bin, "./rescue")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build rescue: %v\n%s", err, out)
	}
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	// The console opens the port by name; this end stays open too, or a
	// read of the master fails (EIO) while the console has it closed.
	defer slave.Close()
	port := slave.Name()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "console", "--port", port, "--baud", "1500000", "--board", "none",
		"--control", filepath.Join(state, "control.sock"), "--state", state)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	// Everything the console writes, kept for the expectations below.
	var outMu sync.Mutex
	var out bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			outMu.Lock()
			out.Write(buf[:n])
			if out.Len() > 4<<20 {
				out.Next(out.Len() - 1<<20)
			}
			outMu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	expect := func(want string, within time.Duration) bool {
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			outMu.Lock()
			ok := strings.Contains(out.String(), want)
			outMu.Unlock()
			if ok {
				return true
			}
			time.Sleep(50 * time.Millisecond)
		}
		return false
	}
	reset := func() { outMu.Lock(); out.Reset(); outMu.Unlock() }
	if !expect("press r and Enter for the rescue menu", 30*time.Second) {
		t.Fatalf("no banner on the console:\n%s\n%s", out.String(), logs.String())
	}

	// The noise: 1,500,000 baud is 150,000 bytes a second at most; the
	// console gets bursts of up to 4 KiB with pauses, as a bad cable gives.
	pieces := []string{"r\r", "2\r", "3\r", "7\r", "8\r", "q\r", "\r\n", "\x00", "\x1b[A", "\x15", "\x03", "RESET-", "yes\r", "?\r"}
	var sent, bursts int
	ctx, cancel := context.WithTimeout(context.Background(), sc.serialFor)
	defer cancel()
	for ctx.Err() == nil {
		var b []byte
		for size := 1 + rand.IntN(4096); len(b) < size; {
			switch rand.IntN(3) {
			case 0:
				b = append(b, byte(rand.IntN(256)))
			case 1:
				b = append(b, byte(' '+rand.IntN(95)))
			default:
				b = append(b, pieces[rand.IntN(len(pieces))]...)
			}
		}
		n, err := master.Write(b)
		if err != nil {
			t.Fatalf("write noise: %v", err)
		}
		sent += n
		bursts++
		time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
		if bursts%200 == 0 {
			reset() // keep only recent output
		}
	}

	// The console still answers: out of whatever the noise left open,
	// back to the banner, then the menu's status.
	reset()
	answered := false
	for try := 0; try < 5 && !answered; try++ {
		master.Write([]byte("\x15\r\x15q\r\x15\r"))
		time.Sleep(time.Second)
		master.Write([]byte("\x15\r"))
		if !expect("press r and Enter for the rescue menu", 35*time.Second) {
			continue
		}
		reset()
		master.Write([]byte("r\r"))
		if !expect("status", 10*time.Second) {
			continue
		}
		master.Write([]byte("1\r"))
		answered = expect("== status ==", 10*time.Second) && expect("== ok ==", 10*time.Second)
	}
	if !answered {
		t.Errorf("the console does not answer after the noise:\n%s\n%s", out.String(), logs.String())
	}

	// Nothing ran: the admin's password works, no reset in the audit.
	lost := 0
	c := newClient(d.url(), "")
	if code, o, _ := c.call(context.Background(), "POST", "/api/v1/login", login("admin", password)); code != 200 || o["status"] != "ok" {
		t.Errorf("the admin's password no longer works after the noise: %d %v", code, o)
		lost++
	}
	audit, err := control.NewClient(filepath.Join(state, "control.sock")).Audit(context.Background(), 200)
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, e := range audit {
		if strings.Contains(e, "reset") || strings.Contains(e, "clock_set") || strings.Contains(e, "certificate") {
			ran++
			t.Errorf("an action ran from noise: %s", e)
		}
	}
	lost += ran
	record(row{
		what: "noise on the serial console",
		did: fmt.Sprintf("%.1f MB of random bytes, junk, menu keys, breaks and escape sequences in %d bursts over %.0f s to the rescue console at 1,500,000 baud",
			float64(sent)/1e6, bursts, sc.serialFor.Seconds()),
		found: fmt.Sprintf("console answering afterwards: %v; %d actions run without their confirmation; the admin's password still works", answered, ran),
		lost:  lost,
	})
}
