//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/store"
	"github.com/rknas/firmware/authd/tlscert"
	"github.com/rknas/firmware/rescue/console"
	"github.com/rknas/firmware/rescue/internal/ptytest"
)

// startAuthd builds and starts the real authd with its control socket.
func startAuthd(t *testing.T, state, sock string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "authd")
	if out, err := exec.Command("go", "build", "-o", bin, "../authd").CombinedOutput(); err != nil {
		t.Fatalf("build authd: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "-state", state, "-listen", addr, "-board", "none", "-set-clock=false", "-ntp", "127.0.0.1:9",
		"-control-socket", sock, "-argon2-memory", "8192", "-argon2-time", "1", "-tls", "auto")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		var once sync.Once
		for sc.Scan() {
			if strings.Contains(sc.Text(), "authd ready") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatal("authd did not get ready")
	}
	return "https://" + addr
}

func post(t *testing.T, hc *http.Client, method, url string, body any) (int, map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// TestConsoleResetsAdminThroughAuthd drives the real authd through the
// console on a pty pair at 1,500,000 baud: the owner who forgot the new
// password resets the admin from the serial port, without the network,
// and logs in again with the device's default password.
func TestConsoleResetsAdminThroughAuthd(t *testing.T) {
	dir := t.TempDir()
	state, sock := filepath.Join(dir, "state"), filepath.Join(dir, "run", "control.sock")
	url := startAuthd(t, state, sock)
	pw, err := os.ReadFile(filepath.Join(state, "default-password"))
	if err != nil {
		t.Fatal(err)
	}
	def := strings.TrimSpace(string(pw))
	jar, _ := cookiejar.New(nil)
	var served string
	hc := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // compared with the console below
		VerifyConnection: func(cs tls.ConnectionState) error {
			served = tlscert.Fingerprint(cs.PeerCertificates[0].Raw)
			return nil
		}}}}
	if st, out := post(t, hc, "POST", url+"/api/v1/login", map[string]string{"username": "admin", "password": def}); st != 200 || out["status"] != "password_change_required" {
		t.Fatalf("first login: %d %v", st, out)
	}
	if st, out := post(t, hc, "PUT", url+"/api/v1/me/password", map[string]string{"current_password": def, "new_password": "forgotten passphrase"}); st != 200 {
		t.Fatalf("password change: %d %v", st, out)
	}

	pdir := t.TempDir()
	b, pc := ptytest.NewPort(t, pdir, "ttyS2"), ptytest.NewPort(t, pdir, "ttyUSB0")
	ptytest.Join(b, pc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"console", "--port", b.Path(), "--control", sock, "--board", "none"}, nil, io.Discard, io.Discard)
	}()
	defer func() { cancel(); <-done }()

	out, errs, code := attachRun(t, "--port", pc.Path(), "--run", "status")
	if code != exitOK || !strings.Contains(out, "running") {
		t.Fatalf("status: %d\n%s\n%s", code, out, errs)
	}
	// The console shows the fingerprint of the certificate the browser
	// meets, for the owner to compare.
	const label = "https certificate SHA-256: "
	shown := ""
	if i := strings.Index(out, label); i >= 0 {
		shown = strings.Join(strings.Fields(out[i+len(label):]), "")
	}
	if served == "" || !strings.HasPrefix(shown, served) {
		t.Errorf("the console's certificate fingerprint does not match the served %s:\n%s", served, out)
	}
	// A new certificate from the console: the next connection meets it.
	out, errs, code = attachRun(t, "--port", pc.Path(), "--run", "new-certificate", "--yes")
	flat := strings.Join(strings.Fields(out), " ")
	if code != exitOK || !strings.Contains(flat, "SHA-256 ") {
		t.Fatalf("new-certificate: %d\n%s\n%s", code, out, errs)
	}
	before := served
	hc.CloseIdleConnections()
	if st, _ := post(t, hc, "GET", url+"/healthz", nil); st != 200 || served == before || !strings.Contains(flat, "SHA-256 "+served) {
		t.Fatalf("after new-certificate the server shows %s (was %s); the console said:\n%s", served, before, out)
	}
	// This authd does not manage the network: refused before any word.
	out, errs, code = attachRun(t, "--port", pc.Path(), "--run", "reset-network", "--yes")
	if code == exitOK || !strings.Contains(errs+out, "does not manage the network") || strings.Contains(errs+out, console.ConfirmTypePrefix) {
		t.Errorf("reset-network without a managed network: %d\n%s\n%s", code, out, errs)
	}
	// No button on this board: the typed word confirms.
	out, errs, code = attachRun(t, "--port", pc.Path(), "--run", "reset-admin", "--yes")
	if code != exitOK || !strings.Contains(out, "default password") {
		t.Fatalf("reset-admin: %d\n%s\n%s", code, out, errs)
	}
	// It says where the default password is, and claims nothing of a
	// network this authd does not manage.
	if flat := strings.Join(strings.Fields(out), " "); !strings.Contains(flat, "rknas/default-password on the boot partition") || strings.Contains(flat, "DHCP") {
		t.Errorf("reset-admin's result:\n%s", out)
	}
	if st, _ := post(t, hc, "POST", url+"/api/v1/login", map[string]string{"username": "admin", "password": "forgotten passphrase"}); st != 401 {
		t.Fatalf("old password still works: %d", st)
	}
	if st, out := post(t, hc, "POST", url+"/api/v1/login", map[string]string{"username": "admin", "password": def}); st != 200 || out["status"] != "password_change_required" {
		t.Fatalf("login with the default password after the reset: %d %v", st, out)
	}
	out, errs, code = attachRun(t, "--port", pc.Path(), "--run", "audit")
	if code != exitOK || !strings.Contains(out, "console_reset") || !strings.Contains(out, "by=rescue") {
		t.Fatalf("audit: %d\n%s\n%s", code, out, errs)
	}
}

// TestConsoleSetsADamagedDatabaseAside is the way out of a damaged
// accounts database: authd refuses it and stays down, the console says
// so, sets it aside (kept, byte for byte) after the typed word, and the
// next authd starts anew with the device's default password. While authd
// runs, the action is refused and changes nothing.
func TestConsoleSetsADamagedDatabaseAside(t *testing.T) {
	dir := t.TempDir()
	state, sock := filepath.Join(dir, "state"), filepath.Join(dir, "run", "control.sock")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(state, "auth.db")
	healthy, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	healthy.Close()
	pdir := t.TempDir()
	b, pc := ptytest.NewPort(t, pdir, "ttyS2"), ptytest.NewPort(t, pdir, "ttyUSB0")
	ptytest.Join(b, pc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"console", "--port", b.Path(), "--control", sock, "--state", state, "--board", "none"}, nil, io.Discard, io.Discard)
	}()
	defer func() { cancel(); <-done }()

	// A healthy database with authd down (stopped for another reason):
	// refused, nothing changed.
	out, errs, code := attachRun(t, "--port", pc.Path(), "--run", "set-aside-database", "--yes")
	if code == exitOK || !strings.Contains(errs+out, "not damaged") {
		t.Errorf("set-aside-database on a healthy database: %d\n%s\n%s", code, out, errs)
	}
	if s, err := store.Open(db); err != nil {
		t.Fatalf("the healthy database after the refusal: %v", err)
	} else {
		s.Close()
	}
	damaged := bytes.Repeat([]byte("not a database "), 600)
	if err := os.WriteFile(db, damaged, 0o600); err != nil {
		t.Fatal(err)
	}

	out, errs, code = attachRun(t, "--port", pc.Path(), "--run", "status")
	if flat := strings.Join(strings.Fields(out), " "); code != exitOK || !strings.Contains(flat, "auth.db is damaged; set-aside-database (11) starts a new one") {
		t.Fatalf("status with a damaged database: %d\n%s\n%s", code, out, errs)
	}
	out, errs, code = attachRun(t, "--port", pc.Path(), "--run", "set-aside-database", "--yes")
	if code != exitOK || !strings.Contains(out, "kept as auth.db.damaged-") {
		t.Fatalf("set-aside-database: %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatalf("auth.db is still there: %v", err)
	}
	kept, _ := filepath.Glob(db + ".damaged-*")
	if len(kept) != 1 {
		t.Fatalf("kept copies: %v", kept)
	}
	if b, err := os.ReadFile(kept[0]); err != nil || !bytes.Equal(b, damaged) {
		t.Fatalf("the damaged database was not kept as it was: %v", err)
	}

	// The next authd starts anew: the admin with the default password.
	url := startAuthd(t, state, sock)
	pw, err := os.ReadFile(filepath.Join(state, "default-password"))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if st, out := post(t, hc, "POST", url+"/api/v1/login", map[string]string{"username": "admin", "password": strings.TrimSpace(string(pw))}); st != 200 || out["status"] != "password_change_required" {
		t.Fatalf("login on the new database: %d %v", st, out)
	}
	// Now the database is healthy and in use: refused, nothing changed.
	out, errs, code = attachRun(t, "--port", pc.Path(), "--run", "set-aside-database", "--yes")
	if code == exitOK || !strings.Contains(errs+out, "not damaged") {
		t.Errorf("set-aside-database on a healthy database in use: %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(db); err != nil {
		t.Errorf("the healthy database was touched: %v", err)
	}
}
