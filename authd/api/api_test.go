package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/store"
)

const testDefaultPassword = "Dflt-Pass-1234"

// testParams keep argon2id cheap in tests; the parameters themselves are
// tested in package account.
var testParams = account.Params{Time: 1, MemKiB: 8 * 1024, Threads: 1, KeyLen: 32, SaltLen: 16}

type env struct {
	t     testing.TB
	url   string
	clock *clocktest.Clock
	svc   *auth.Service
	db    *store.Store
}

func newEnv(t testing.TB, c clock.Clock) *env {
	t.Helper()
	hasher, err := account.NewHasher(testParams, 4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return newEnvWith(t, c, hasher)
}

// newEnvWith is newEnv with hasher doing the hashing.
func newEnvWith(t testing.TB, c clock.Clock, hasher *account.Hasher) *env {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := auth.DefaultConfig()
	cfg.DefaultPassword = testDefaultPassword
	cfg.DeviceName = "TestNAS"
	log := discardLog()
	svc, err := auth.New(context.Background(), cfg, auth.Deps{Store: db, Clock: c, Hasher: hasher, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, url: startServer(t, New(svc, log, cfg.TrustedDeviceTTL)), svc: svc, db: db}
	if fc, ok := c.(*clocktest.Clock); ok {
		e.clock = fc
	}
	return e
}

// browser is a client with its own cookie jar, like one browser profile.
type browser struct {
	e  *env
	hc *http.Client
	// password is the account's password as the test set it (setUpAdmin,
	// enroll); secret its TOTP key once enrolled. stepUp uses both.
	password, secret string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, hc: &http.Client{Jar: jar}}
}

// call sends a JSON request and decodes the JSON answer into a map.
func (b *browser) call(method, path string, body any) (int, map[string]any, http.Header) {
	b.e.t.Helper()
	var r io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			r = strings.NewReader(s)
		} else {
			raw, _ := json.Marshal(body)
			r = bytes.NewReader(raw)
		}
	}
	req, err := http.NewRequest(method, b.e.url+path, r)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		b.e.t.Fatalf("%s %s: answer is not JSON: %q", method, path, raw)
	}
	return resp.StatusCode, out, resp.Header
}

// must calls and checks the status.
func (b *browser) must(want int, method, path string, body any) map[string]any {
	b.e.t.Helper()
	status, out, _ := b.call(method, path, body)
	if status != want {
		b.e.t.Fatalf("%s %s: status %d, want %d: %v", method, path, status, want, out)
	}
	return out
}

func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// wantErr calls and checks status and error code.
func (b *browser) wantErr(status int, code, method, path string, body any) map[string]any {
	b.e.t.Helper()
	st, out, _ := b.call(method, path, body)
	if st != status || errCode(out) != code {
		b.e.t.Fatalf("%s %s: %d %v, want %d %s", method, path, st, out, status, code)
	}
	return out
}

func codeAt(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func login(username, password string) map[string]string {
	return map[string]string{"username": username, "password": password}
}

// setUpAdmin takes the admin through the first login: default password,
// new password, and back to a full session.
func (b *browser) setUpAdmin(newPassword string) {
	b.e.t.Helper()
	out := b.must(200, "POST", "/api/v1/login", login("admin", testDefaultPassword))
	if out["status"] != "password_change_required" {
		b.e.t.Fatalf("first login: %v", out)
	}
	out = b.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": testDefaultPassword, "new_password": newPassword})
	if out["status"] != "ok" {
		b.e.t.Fatalf("password change: %v", out)
	}
	b.password = newPassword
}

// stepUp gives the password (and a code, once enrolled) again, for the
// changes that need it, and moves the clock to the next TOTP step so the
// code is not reused.
func (b *browser) stepUp() {
	b.e.t.Helper()
	body := map[string]string{"password": b.password}
	if b.secret != "" {
		body["code"] = codeAt(b.e.t, b.secret, b.e.clock.Now())
		defer b.e.clock.Advance(30 * time.Second)
	}
	if out := b.must(200, "POST", "/api/v1/me/step-up", body); out["status"] != "ok" {
		b.e.t.Fatalf("step-up: %v", out)
	}
}

// enroll turns on 2FA for the logged-in account and returns the secret and
// the recovery codes.
func (b *browser) enroll() (string, []string) {
	b.e.t.Helper()
	var body any
	if b.password != "" {
		body = map[string]string{"password": b.password}
	}
	out := b.must(200, "POST", "/api/v1/me/2fa/enroll", body)
	secret := out["secret"].(string)
	b.secret = secret
	code := codeAt(b.e.t, secret, b.e.clock.Now())
	out = b.must(200, "POST", "/api/v1/me/2fa/verify", map[string]string{"code": code})
	var codes []string
	for _, c := range out["recovery_codes"].([]any) {
		codes = append(codes, c.(string))
	}
	// The step used to enrol is spent; move to the next one.
	b.e.clock.Advance(30 * time.Second)
	return secret, codes
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startServer serves srv on a loopback port for the test's lifetime.
func startServer(t testing.TB, srv *Server) string {
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

func jsonString(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}
