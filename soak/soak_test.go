//go:build soak

package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// scale is how much of each fault the campaign makes: SOAK=quick for about
// four minutes, the default for about twenty (measured on 2 cores).
type scale struct {
	crashKills   int           // SIGKILLs of authd while it writes
	guesses      int           // wrong passwords and codes
	addresses    int           // source addresses they come from
	guessFor     time.Duration // over this time
	loadFor      time.Duration // 200 clients at once
	serialFor    time.Duration // noise on the rescue console's line
	storageLoops int           // fill and free the state file system
	powerCuts    int           // QEMU killed around a RESET's recovery
	clockSyncs   int           // synchronisations among lying time servers (one code window each)
}

func campaign() (string, scale) {
	if os.Getenv("SOAK") == "quick" {
		return "quick", scale{crashKills: 120, guesses: 2000, addresses: 1000, guessFor: 15 * time.Second, loadFor: 15 * time.Second, serialFor: 20 * time.Second, storageLoops: 2, powerCuts: 3, clockSyncs: 2}
	}
	return "full", scale{crashKills: 1000, guesses: 10000, addresses: 1000, guessFor: time.Minute, loadFor: 60 * time.Second, serialFor: 2 * time.Minute, storageLoops: 5, powerCuts: 20, clockSyncs: 6}
}

// row is one line of the campaign's table.
type row struct {
	what  string // the fault or load
	did   string // how much of it
	found string // what was checked and how it came out
	lost  int    // acknowledged writes, accounts or databases lost
}

var (
	rowsMu sync.Mutex
	rows   []row
)

func record(r row) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	rows = append(rows, r)
	fmt.Printf("soak: %s: %s; %s; %d lost\n", r.what, r.did, r.found, r.lost)
}

// TestMain runs the campaign and prints its table, also written to
// out/soak/table.md.
func TestMain(m *testing.M) {
	start := time.Now()
	code := m.Run()
	name, _ := campaign()
	var b strings.Builder
	fmt.Fprintf(&b, "`make soak` (%s campaign), %s, %d cores, %.1f min:\n\n", name, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), time.Since(start).Minutes())
	b.WriteString("| fault or load | what it did | what was checked | lost |\n|---|---|---|---|\n")
	rowsMu.Lock()
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %d lost |\n", r.what, r.did, r.found, r.lost)
	}
	rowsMu.Unlock()
	if code != 0 {
		b.WriteString("\nThe campaign FAILED: see the test output above.\n")
	}
	fmt.Print("\n" + b.String())
	if root, err := moduleRoot(); err == nil {
		dir := filepath.Join(root, "out", "soak")
		if os.MkdirAll(dir, 0o755) == nil {
			os.WriteFile(filepath.Join(dir, "table.md"), []byte(b.String()), 0o644)
		}
	}
	os.Exit(code)
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

var (
	buildOnce sync.Once
	authdBin  string
	buildErr  error
)

// authd builds the daemon once (without the race detector: the campaign
// measures the program as shipped).
func authd(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "soak-authd-")
		if err != nil {
			buildErr = err
			return
		}
		authdBin = filepath.Join(dir, "authd")
		cmd := exec.Command("go", "build", "-o", authdBin, "./authd")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build authd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return authdBin
}

// daemon is one authd process on a loopback port with its own state.
type daemon struct {
	state, addr string
	cmd         *exec.Cmd
	exited      chan error
	mu          sync.Mutex
	log         bytes.Buffer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start starts authd on state and waits for "authd ready"; it returns an
// error (with authd's output) when authd exits or is not ready in time.
func start(t *testing.T, state, addr string, extra ...string) (*daemon, error) {
	t.Helper()
	args := append([]string{"-state", state, "-listen", addr, "-board", "none", "-control-socket", filepath.Join(state, "control.sock"),
		"-ntp", "127.0.0.1:9", "-set-clock=false", "-hash-concurrency", "2"}, extra...)
	d := &daemon{state: state, addr: addr, exited: make(chan error, 1)}
	d.cmd = exec.Command(authd(t), args...)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			d.mu.Lock()
			if d.log.Len() < 1<<20 {
				d.log.WriteString(sc.Text() + "\n")
			}
			d.mu.Unlock()
			if strings.Contains(sc.Text(), "authd ready") {
				once.Do(func() { close(ready) })
			}
		}
		d.exited <- d.cmd.Wait()
	}()
	select {
	case <-ready:
		return d, nil
	case err := <-d.exited:
		d.exited <- err
		return d, fmt.Errorf("authd exited before it was ready (%v):\n%s", err, d.output())
	case <-time.After(60 * time.Second):
		d.kill()
		return d, fmt.Errorf("authd not ready within 60 s:\n%s", d.output())
	}
}

func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// kill ends authd with SIGKILL: a power cut, as far as its files go.
func (d *daemon) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
}

// stop ends authd cleanly (SIGTERM).
func (d *daemon) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		d.kill()
	}
}

func (d *daemon) url() string { return "http://" + d.addr }

func (d *daemon) defaultPassword(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.state, "default-password"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// client is one API client, from one source address.
type client struct {
	base string
	hc   *http.Client
}

// newClient makes a client whose connections come from source (an address
// in 127.0.0.0/8; "" for the default).
func newClient(base, source string) *client {
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{Timeout: 10 * time.Second}
	if source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4, IdleConnTimeout: 5 * time.Second}
	return &client{base: base, hc: &http.Client{Jar: jar, Timeout: 60 * time.Second, Transport: tr}}
}

// call sends a JSON request and returns the status and the decoded answer.
func (c *client) call(ctx context.Context, method, path string, body any) (int, map[string]any, error) {
	var r io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, nil
}

// must is call that fails the test on a transport error or another status.
func (c *client) must(t *testing.T, want int, method, path string, body any) map[string]any {
	t.Helper()
	code, out, err := c.call(context.Background(), method, path, body)
	if err != nil || code != want {
		t.Fatalf("%s %s: %d %v (%v), want %d", method, path, code, out, err, want)
	}
	return out
}

func (c *client) close() { c.hc.CloseIdleConnections() }

func login(user, password string) map[string]string {
	return map[string]string{"username": user, "password": password}
}

// procStatus reads a "Name:" number of /proc/PID/status (kB for memory).
func procStatus(pid int, field string) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			v, _ := strconv.Atoi(strings.Fields(rest)[0])
			return v
		}
	}
	return -1
}

// openFiles counts the process's file descriptors.
func openFiles(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// ownerSetup makes a fresh authd's admin its owner's: the default password
// changed to password.
func ownerSetup(t *testing.T, d *daemon, password string) *client {
	t.Helper()
	c := newClient(d.url(), "")
	def := d.defaultPassword(t)
	if out := c.must(t, 200, "POST", "/api/v1/login", login("admin", def)); out["status"] != "password_change_required" {
		t.Fatalf("first login: %v", out)
	}
	c.must(t, 200, "PUT", "/api/v1/me/password", map[string]string{"current_password": def, "new_password": password})
	return c
}
