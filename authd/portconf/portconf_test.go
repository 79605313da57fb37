package portconf

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/internal/porttest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func freePort(t *testing.T) int { return porttest.Free(t) }

// serve answers "https" or "http" on each listener, as authd's servers
// answer HTTPS or redirects.
func serve(ln net.Listener, secure bool) Server {
	kind := "http"
	if secure {
		kind = "https"
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, kind) })}
	go hs.Serve(ln)
	return hs
}

// answer returns what port answers, or "closed".
func answer(port int) string {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
	if err != nil {
		return "closed"
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func newManager(t *testing.T, dir string, def Ports, timeout time.Duration) *Manager {
	t.Helper()
	m, err := New(Options{Dir: dir, Host: "127.0.0.1", Default: def, ConfirmTimeout: timeout, Serve: serve, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func want(t *testing.T, ports map[int]string) {
	t.Helper()
	for port, w := range ports {
		if got := answer(port); got != w {
			t.Errorf("port %d: %s, want %s", port, got, w)
		}
	}
}

// TestChangeConfirmedThroughTheNewPort: the new HTTPS port opens beside the
// old one; a confirmation through the old port is refused; through the new
// one it is saved, the old HTTPS port closes and the kept HTTP port stays;
// a restart serves the saved ports.
func TestChangeConfirmedThroughTheNewPort(t *testing.T) {
	dir := t.TempDir()
	oldHTTPS, httpPort, newHTTPS := freePort(t), freePort(t), freePort(t)
	m := newManager(t, dir, Ports{HTTPS: oldHTTPS, HTTP: httpPort}, time.Minute)
	want(t, map[int]string{oldHTTPS: "https", httpPort: "http", newHTTPS: "closed"})

	pend, err := m.Apply(Ports{HTTPS: newHTTPS, HTTP: httpPort})
	if err != nil {
		t.Fatal(err)
	}
	want(t, map[int]string{oldHTTPS: "https", httpPort: "http", newHTTPS: "https"})
	if cur, p := m.Current(); cur.HTTPS != oldHTTPS || p == nil || p.ID != pend.ID {
		t.Fatalf("Current during the trial: %+v %+v", cur, p)
	}
	if err := m.Confirm(pend.ID, oldHTTPS); !errors.Is(err, ErrWrongPort) {
		t.Fatalf("confirmed through the old port: %v", err)
	}
	if err := m.Confirm("not-the-id", newHTTPS); !errors.Is(err, ErrNoPending) {
		t.Fatalf("confirmed another id: %v", err)
	}
	if err := m.Confirm(pend.ID, newHTTPS); err != nil {
		t.Fatal(err)
	}
	want(t, map[int]string{oldHTTPS: "closed", httpPort: "http", newHTTPS: "https"})
	if cur, p := m.Current(); cur != (Ports{HTTPS: newHTTPS, HTTP: httpPort}) || p != nil {
		t.Fatalf("Current after the confirmation: %+v %+v", cur, p)
	}
	saved, err := Load(filepath.Join(dir, File))
	if err != nil || saved.HTTPS != newHTTPS {
		t.Fatalf("saved %+v %v", saved, err)
	}
	m.Close()
	newManager(t, dir, Ports{HTTPS: oldHTTPS, HTTP: httpPort}, time.Minute)
	want(t, map[int]string{oldHTTPS: "closed", newHTTPS: "https", httpPort: "http"})
}

// TestUnconfirmedChangeIsClosed: without a confirmation the new ports close
// at the deadline, the old ones never stopped, and nothing is saved.
func TestUnconfirmedChangeIsClosed(t *testing.T) {
	dir := t.TempDir()
	oldHTTPS, oldHTTP, newHTTPS, newHTTP := freePort(t), freePort(t), freePort(t), freePort(t)
	m := newManager(t, dir, Ports{HTTPS: oldHTTPS, HTTP: oldHTTP}, 200*time.Millisecond)
	pend, err := m.Apply(Ports{HTTPS: newHTTPS, HTTP: newHTTP})
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); answer(newHTTPS) != "closed" || answer(newHTTP) != "closed"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the unconfirmed ports are still open 10 s after a 200 ms deadline")
		}
	}
	want(t, map[int]string{oldHTTPS: "https", oldHTTP: "http"})
	if err := m.Confirm(pend.ID, newHTTPS); !errors.Is(err, ErrNoPending) {
		t.Fatalf("a late confirmation: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, File)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an unconfirmed change was saved: %v", err)
	}
}

func TestApplyRefusals(t *testing.T) {
	https, http := freePort(t), freePort(t)
	m := newManager(t, t.TempDir(), Ports{HTTPS: https, HTTP: http}, time.Minute)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		p    Ports
		want error
		msg  string
	}{
		{Ports{HTTPS: https, HTTP: http}, ErrInvalid, "these are the ports in use"},
		{Ports{HTTPS: http, HTTP: 0}, ErrInvalid, fmt.Sprintf("https_port %d is in use already", http)},
		{Ports{HTTPS: freePort(t), HTTP: https}, ErrInvalid, "change it in two steps"},
		{Ports{HTTPS: 0, HTTP: 80}, ErrInvalid, "https_port 0: 1 to 65535"},
		{Ports{HTTPS: 70000, HTTP: 80}, ErrInvalid, "https_port 70000"},
		{Ports{HTTPS: 8443, HTTP: 8443}, ErrInvalid, "both 8443"},
		{Ports{HTTPS: busyPort, HTTP: 0}, ErrInUse, strconv.Itoa(busyPort)},
	} {
		_, err := m.Apply(tc.p)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Apply(%+v) = %v, want %v with %q", tc.p, err, tc.want, tc.msg)
		}
	}
	want(t, map[int]string{https: "https", http: "http"})
}

// TestStoredPortsThatCannotOpen: a saved port another program took since
// is not a dead box: the defaults are served.
func TestStoredPortsThatCannotOpen(t *testing.T) {
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if err := Save(filepath.Join(dir, File), Ports{HTTPS: taken.Addr().(*net.TCPAddr).Port}); err != nil {
		t.Fatal(err)
	}
	def := Ports{HTTPS: freePort(t)}
	m := newManager(t, dir, def, time.Minute)
	if cur, _ := m.Current(); cur != def {
		t.Fatalf("serving %+v, want the defaults %+v", cur, def)
	}
	want(t, map[int]string{def.HTTPS: "https"})
	if err := os.WriteFile(filepath.Join(dir, File), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.Close()
	newManager(t, dir, def, time.Minute)
	want(t, map[int]string{def.HTTPS: "https"})
}
