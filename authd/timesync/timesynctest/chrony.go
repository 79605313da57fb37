package timesynctest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/beevik/ntp"
)

// ChronydPath is where Debian installs chronyd.
const ChronydPath = "/usr/sbin/chronyd"

// StartChrony starts a real chronyd serving NTP on 127.0.0.1 at a free port,
// with its own configuration in a temporary directory and -x so it never
// touches the host's clock, and waits until it answers. It returns host:port
// and stops chronyd when the test ends. A missing chronyd fails the test.
func StartChrony(tb testing.TB) string {
	tb.Helper()
	if _, err := os.Stat(ChronydPath); err != nil {
		tb.Fatalf("timesynctest: %s is missing (%v): run scripts/deps.sh to install chrony", ChronydPath, err)
	}
	dir := tb.TempDir()
	var lastErr error
	// A free port can be taken by someone else between probing and
	// chronyd's bind; try a few.
	for range 3 {
		port, err := freeUDPPort()
		if err != nil {
			tb.Fatalf("timesynctest: %v", err)
		}
		addr, err := startChrony(tb, dir, port)
		if err == nil {
			return addr
		}
		lastErr = err
	}
	tb.Fatalf("timesynctest: chronyd did not start: %v", lastErr)
	return ""
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

func startChrony(tb testing.TB, dir string, port int) (string, error) {
	conf := filepath.Join(dir, fmt.Sprintf("chrony-%d.conf", port))
	text := fmt.Sprintf(`port %d
bindaddress 127.0.0.1
allow 127.0.0.1
local stratum 8
cmdport 0
pidfile %s
driftfile %s
`, port, filepath.Join(dir, fmt.Sprintf("chronyd-%d.pid", port)), filepath.Join(dir, fmt.Sprintf("chrony-%d.drift", port)))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return "", err
	}
	var out bytes.Buffer
	cmd := exec.Command(ChronydPath, "-x", "-d", "-u", "root", "-f", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", ChronydPath, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			return "", fmt.Errorf("chronyd exited (%v): %s", err, out.String())
		default:
		}
		r, err := ntp.QueryWithOptions(addr, ntp.QueryOptions{Timeout: 200 * time.Millisecond})
		if err == nil && r.Validate() == nil {
			tb.Cleanup(stop)
			return addr, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("chronyd on %s gave no valid answer within 10 s (last: %v, %v): %s", addr, err, r, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
