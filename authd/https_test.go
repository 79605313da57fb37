package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/api"
	"github.com/rknas/firmware/authd/portconf"
	"github.com/rknas/firmware/authd/tlscert"
	"github.com/rknas/firmware/internal/lockedbuf"
	"github.com/rknas/firmware/internal/porttest"
)

// waitLog waits for a line matching re and returns its first group.
func waitLog(t *testing.T, l *lockedbuf.Buffer, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(l.String()); m != nil {
			return m[1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %v in authd's log within 30 s:\n%s", re, l.String())
	return ""
}

// TestHTTPSEndToEnd runs authd as the firmware does (-tls auto with a
// plain-HTTP redirect): authd cert prints the fingerprint a pinning client
// then meets; the login sets Secure cookies; plain HTTP only redirects,
// health checks aside; a foreign Host is refused; and a restart serves the
// same certificate.
func TestHTTPSEndToEnd(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	args := []string{"-state", state, "-listen", "127.0.0.1:0", "-tls", "auto", "-http-redirect", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "-board", "none",
		"-set-clock=false", "-ntp", "127.0.0.1:9", "-control-socket", "", "-argon2-memory", "8192", "-argon2-time", "1"}
	start := func() (string, string, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		logs := &lockedbuf.Buffer{}
		done := make(chan error, 1)
		go func() { done <- run(ctx, args, io.Discard, logs) }()
		url := waitLog(t, logs, regexp.MustCompile(`"authd ready" url=(https://\S+)`))
		plain := waitLog(t, logs, regexp.MustCompile(`"plain HTTP answered with redirects" listen=(\S+)`))
		return url, "http://" + plain, func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("authd: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("authd did not stop within 10 s")
			}
		}
	}
	url, plain, stop := start()

	var out bytes.Buffer
	if err := run(context.Background(), []string{"cert", "-state", state}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`SHA-256 fingerprint: (\S+)`).FindStringSubmatch(out.String())
	if m == nil || !strings.Contains(out.String(), "the device's own certificate") {
		t.Fatalf("authd cert:\n%s", out.String())
	}
	fp := m[1]
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if got := tlscert.Fingerprint(raw[0]); got != fp {
				return fmt.Errorf("served %s, authd cert printed %s", got, fp)
			}
			return nil
		},
	}}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	pw, err := os.ReadFile(filepath.Join(state, "default-password"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"username": "admin", "password": strings.TrimSpace(string(pw))})
	resp, err := client.Post(url+"/api/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login over HTTPS: %d", resp.StatusCode)
	}
	if c := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(c, api.SecureSessionCookie+"=") || !strings.Contains(c, "; Secure") || !strings.Contains(c, "; HttpOnly") {
		t.Errorf("session cookie over HTTPS: %q", c)
	}

	// Plain HTTP: a redirect to the same path over HTTPS, no API.
	for _, path := range []string{"/api/v1/me", "/", "/login?next=%2Fsettings"} {
		resp, err := client.Get(plain + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := url + path; resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
			t.Errorf("plain GET %s: %d to %q, want 302 to %q", path, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	if resp, err := client.Post(plain+"/api/v1/login", "application/json", bytes.NewReader(body)); err != nil || resp.StatusCode != http.StatusFound {
		t.Errorf("plain POST /api/v1/login: %v %v, want a redirect and no login", resp.StatusCode, err)
	}
	if resp, err := client.Get(plain + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("plain /healthz: %v %v", resp, err)
	}

	// A foreign Host, as a DNS-rebinding page would send.
	req, _ := http.NewRequest("GET", url+"/healthz", nil)
	req.Host = "evil.example"
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("Host evil.example: %v %v, want 421", resp.StatusCode, err)
	}

	// The owner moves HTTPS to another port: open beside the old one,
	// confirmed through the new one, the old one closed, kept at restart.
	call := func(base, method, path string, body any) (int, map[string]any) {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, map[string]any{"error": err.Error()}
		}
		defer resp.Body.Close()
		out := map[string]any{}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	def := strings.TrimSpace(string(pw))
	if st, out := call(url, "PUT", "/api/v1/me/password", map[string]string{"current_password": def, "new_password": "correct horse"}); st != 200 {
		t.Fatalf("password change: %d %v", st, out)
	}
	newPort := freePort(t)
	if st, out := call(url, "PUT", "/api/v1/settings/ports", map[string]int{"https_port": newPort, "http_port": portOf(t, plain)}); st != 403 || !strings.Contains(fmt.Sprint(out), "step_up_required") {
		t.Fatalf("port change without a step-up: %d %v", st, out)
	}
	if st, out := call(url, "POST", "/api/v1/me/step-up", map[string]string{"password": "correct horse"}); st != 200 {
		t.Fatalf("step-up: %d %v", st, out)
	}
	st, pend := call(url, "PUT", "/api/v1/settings/ports", map[string]int{"https_port": newPort, "http_port": portOf(t, plain)})
	if st != 200 {
		t.Fatalf("port change: %d %v", st, pend)
	}
	moved := fmt.Sprintf("https://127.0.0.1:%d", newPort)
	if st, out := call(url, "POST", "/api/v1/settings/ports/confirm", map[string]any{"id": pend["id"]}); st != 409 || !strings.Contains(fmt.Sprint(out), "confirm through the new HTTPS port") {
		t.Fatalf("confirmed through the old port: %d %v", st, out)
	}
	if st, out := call(moved, "POST", "/api/v1/settings/ports/confirm", map[string]any{"id": pend["id"]}); st != 200 {
		t.Fatalf("confirm through the new port: %d %v", st, out)
	}
	if st, _ := call(url, "GET", "/healthz", nil); st != 0 {
		t.Errorf("the old HTTPS port still answers after the confirmation: %d", st)
	}
	if resp, err := client.Get(plain + "/api/v1/me"); err != nil || resp.Header.Get("Location") != moved+"/api/v1/me" {
		t.Errorf("plain HTTP after the move redirects to %q (%v), want %s", resp.Header.Get("Location"), err, moved+"/api/v1/me")
	}

	// A restart serves the same certificate, on the saved port.
	stop()
	url, _, stop = start()
	defer stop()
	if url != moved {
		t.Errorf("after a restart authd serves %s, want the saved %s", url, moved)
	}
	if resp, err := client.Get(url + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after a restart the pinned certificate is not served: %v", err)
	}
}

func freePort(t *testing.T) int { return porttest.Free(t) }

func portOf(t *testing.T, url string) int {
	t.Helper()
	p, err := strconv.Atoi(url[strings.LastIndex(url, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLSFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tls", "on"}, `-tls "on": auto or off`},
		{[]string{"-tls", "auto", "-tls-cert", "c.pem", "-tls-key", "k.pem"}, "-tls auto and -tls-cert exclude each other"},
		{[]string{"-http-redirect", ":80"}, "-http-redirect needs HTTPS"},
		{[]string{"-tls", "auto", "-http-redirect", "80"}, `-http-redirect "80"`},
		{[]string{"-tls", "auto", "-http-redirect", ":0"}, `-http-redirect ":0": name a port`},
		{[]string{"-tls", "auto", "-listen", "127.0.0.1:443", "-http-redirect", ":80"}, `use the address of -listen ("127.0.0.1")`},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, err := parseFlags([]string{"-listen", ":443", "-tls", "auto", "-http-redirect", ":80", "-mdns"}, io.Discard); err != nil {
		t.Errorf("the firmware's flags: %v", err)
	}
}

func TestCertCommandBeforeTheFirstStart(t *testing.T) {
	err := run(context.Background(), []string{"cert", "-state", t.TempDir()}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "makes the device certificate at its first start with -tls auto") {
		t.Fatalf("authd cert with no certificate: %v", err)
	}
}

// fixedPorts is port settings that stay as they are.
type fixedPorts struct{ cur portconf.Ports }

func (f fixedPorts) Current() (portconf.Ports, *portconf.Pending) {
	return f.cur, &portconf.Pending{Ports: portconf.Ports{HTTPS: 9443}}
}
func (fixedPorts) Apply(portconf.Ports) (portconf.Pending, error) { return portconf.Pending{}, nil }
func (fixedPorts) Confirm(string, int) error                      { return nil }

// TestAnnouncedPortFollowsTheOwnersPorts: mDNS announces the HTTPS port
// the owner confirmed, not -listen's, and not one still on trial.
func TestAnnouncedPortFollowsTheOwnersPorts(t *testing.T) {
	if got := servedPort(443, fixedPorts{portconf.Ports{HTTPS: 8443, HTTP: 8080}}); got != 8443 {
		t.Errorf("announced port %d after the owner moved HTTPS to 8443", got)
	}
	if got := servedPort(443, nil); got != 443 {
		t.Errorf("announced port %d with no port settings, want -listen's 443", got)
	}
}
