package api

import (
	"bytes"
	"encoding/base64"
	"image/png"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
)

// browserFrom is a browser whose connections come from source address ip
// (any of 127.0.0.0/8 works on Linux loopback), to act as another client.
func (e *env) browserFrom(ip string) *browser {
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &browser{e: e, hc: &http.Client{Jar: jar, Transport: &http.Transport{DialContext: d.DialContext}}}
}

func start() *clocktest.Clock { return clocktest.New(time.Date(2026, 11, 23, 12, 0, 5, 0, time.UTC)) }

// TestNewOwnerJourney walks the path a new owner takes: default password,
// forced change, enrolment from the QR code, a code login, the same code
// refused, a recovery code used once, a trusted device, and a lockout.
func TestNewOwnerJourney(t *testing.T) {
	e := newEnv(t, start())
	b := e.browser()
	b.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)
	b.wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("admin", "wrong-password"))

	out := b.must(200, "POST", "/api/v1/login", login("admin", testDefaultPassword))
	if out["status"] != "password_change_required" {
		t.Fatalf("default password login: %v", out)
	}
	b.wantErr(403, "password_change_required", "GET", "/api/v1/users", nil)
	b.wantErr(403, "password_change_required", "POST", "/api/v1/me/2fa/enroll", nil)
	for _, bad := range []string{testDefaultPassword, "short", "admin"} {
		out := b.wantErr(400, "bad_request", "PUT", "/api/v1/me/password", map[string]string{"current_password": testDefaultPassword, "new_password": bad})
		if !strings.Contains(out["error"].(map[string]any)["message"].(string), "new_password") {
			t.Errorf("message for %q does not name the field: %v", bad, out)
		}
	}
	b.wantErr(401, "invalid_credentials", "PUT", "/api/v1/me/password", map[string]string{"current_password": "nope-nope", "new_password": "correct horse"})
	out = b.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": testDefaultPassword, "new_password": "correct horse"})
	if out["status"] != "ok" {
		t.Fatalf("after the change: %v", out)
	}
	me := b.must(200, "GET", "/api/v1/me", nil)
	if me["name"] != "admin" || me["must_change_password"] != false || me["session_status"] != "ok" {
		t.Fatalf("me: %v", me)
	}
	// The default password no longer works.
	e.browser().wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("admin", testDefaultPassword))

	// Enrol: the QR code is a PNG, the URI names the device and account.
	b.wantErr(400, "bad_request", "POST", "/api/v1/me/2fa/enroll", nil) // a full session gives the password
	enr := b.must(200, "POST", "/api/v1/me/2fa/enroll", map[string]string{"password": "correct horse"})
	uri := enr["otpauth_uri"].(string)
	if !strings.HasPrefix(uri, "otpauth://totp/TestNAS:admin?") {
		t.Errorf("otpauth uri %q", uri)
	}
	qr, err := base64.StdEncoding.DecodeString(enr["qr_png"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(qr)); err != nil {
		t.Fatalf("qr_png: %v", err)
	}
	secret := enr["secret"].(string)
	if strings.ReplaceAll(enr["secret_grouped"].(string), " ", "") != secret {
		t.Errorf("grouped secret %q", enr["secret_grouped"])
	}
	// Not on until a code proves the authenticator has the key.
	if me := b.must(200, "GET", "/api/v1/me", nil); me["two_factor"] != false {
		t.Fatal("2FA on before verification")
	}
	b.wantErr(401, "invalid_code", "POST", "/api/v1/me/2fa/verify", map[string]string{"code": "000000"})
	out = b.must(200, "POST", "/api/v1/me/2fa/verify", map[string]string{"code": codeAt(t, secret, e.clock.Now())})
	recovery := out["recovery_codes"].([]any)
	if len(recovery) != 10 {
		t.Fatalf("%d recovery codes", len(recovery))
	}
	b.must(200, "POST", "/api/v1/logout", nil)
	b.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)

	// Log in with a code.
	e.clock.Advance(30 * time.Second)
	out = b.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	if out["status"] != "otp_required" || out["challenge"] == "" {
		t.Fatalf("login with 2FA: %v", out)
	}
	b.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)
	code := codeAt(t, secret, e.clock.Now())
	b.must(200, "POST", "/api/v1/login/otp", map[string]any{"challenge": out["challenge"], "code": code})
	b.must(200, "GET", "/api/v1/me", nil)

	// The same code again, in its own 30 s window, is refused. (Other
	// browsers come from other addresses: a success no longer clears the
	// failures of the client it came from.)
	b2 := e.browserFrom("127.0.0.2")
	out = b2.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	b2.wantErr(401, "code_reused", "POST", "/api/v1/login/otp", map[string]any{"challenge": out["challenge"], "code": code})

	// A recovery code works once.
	rc := recovery[0].(string)
	b2.must(200, "POST", "/api/v1/login/otp", map[string]any{"challenge": out["challenge"], "code": rc})
	if me := b2.must(200, "GET", "/api/v1/me", nil); me["recovery_codes_left"] != 9.0 {
		t.Errorf("recovery codes left: %v", me["recovery_codes_left"])
	}
	b3 := e.browserFrom("127.0.0.3")
	out = b3.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	b3.wantErr(401, "invalid_code", "POST", "/api/v1/login/otp", map[string]any{"challenge": out["challenge"], "code": rc})

	// Trust this device: the next login skips the code.
	e.clock.Advance(30 * time.Second)
	b3.must(200, "POST", "/api/v1/login/otp", map[string]any{"challenge": out["challenge"], "code": codeAt(t, secret, e.clock.Now()),
		"trust_device": true, "device_name": "Laptop"})
	b3.must(200, "POST", "/api/v1/logout", nil)
	out = b3.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	if out["status"] != "ok" || out["trusted_device"] != true {
		t.Fatalf("trusted device login: %v", out)
	}
	devs := b3.must(200, "GET", "/api/v1/me/devices", nil)["devices"].([]any)
	if len(devs) != 1 || devs[0].(map[string]any)["name"] != "Laptop" || devs[0].(map[string]any)["current"] != true {
		t.Fatalf("devices: %v", devs)
	}
	// The trust is for this account and password only: a wrong password
	// still fails.
	b3.wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("admin", "wrong horse"))

	// After 30 days the device must use a code again.
	e.clock.Advance(31 * 24 * time.Hour)
	out = b3.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	if out["status"] != "otp_required" {
		t.Fatalf("expired trusted device: %v", out)
	}

	// Guessing gets the client locked out, even with the right password,
	// and the answer says for how long.
	g := e.browserFrom("127.0.0.9")
	for i := 0; i < 5; i++ {
		g.wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("admin", "guess-"+string(rune('a'+i))))
	}
	st, out, hdr := g.call("POST", "/api/v1/login", login("admin", "correct horse"))
	if st != 429 || errCode(out) != "locked" || hdr.Get("Retry-After") != "300" {
		t.Fatalf("after 5 failures: %d %v Retry-After=%q", st, out, hdr.Get("Retry-After"))
	}
	if msg := out["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "from this address: it is blocked for 5 minutes") {
		t.Errorf("lockout message %q", msg)
	}
	// Another client is not locked out.
	e.browserFrom("127.0.0.10").must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	e.clock.Advance(5 * time.Minute)

	// The audit log has recorded the story.
	ch := g.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))["challenge"]
	g.must(200, "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": codeAt(t, secret, e.clock.Now())})
	events := map[string]bool{}
	for _, en := range g.must(200, "GET", "/api/v1/audit?limit=1000", nil)["entries"].([]any) {
		events[en.(map[string]any)["event"].(string)] = true
	}
	for _, ev := range []string{"login", "login_failed", "password_changed", "2fa_enabled", "login_code_failed", "recovery_code_used", "trusted_device_added", "trusted_device_used"} {
		if !events[ev] {
			t.Errorf("audit log lacks %s", ev)
		}
	}
}

func TestCodeStepFailuresLockAndChallengeRules(t *testing.T) {
	e := newEnv(t, start())
	b := e.browser()
	b.setUpAdmin("correct horse")
	secret, _ := b.enroll()

	out := b.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	ch := out["challenge"]
	// A challenge is bound to the client that passed the password step.
	other := e.browserFrom("127.0.0.3")
	other.wantErr(401, "challenge_expired", "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": codeAt(t, secret, e.clock.Now())})
	// Code guesses count; re-entering the password does not reset them.
	for i := 0; i < 3; i++ {
		b.wantErr(401, "invalid_code", "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": "000000"})
	}
	ch = b.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))["challenge"]
	for i := 0; i < 2; i++ {
		b.wantErr(401, "invalid_code", "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": "111111"})
	}
	b.wantErr(429, "locked", "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": codeAt(t, secret, e.clock.Now())})
	e.clock.Advance(5 * time.Minute)
	// The challenge has now expired (5 minutes).
	b.wantErr(401, "challenge_expired", "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": codeAt(t, secret, e.clock.Now())})
	ch = b.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))["challenge"]
	b.must(200, "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": codeAt(t, secret, e.clock.Now())})
	// A challenge is single-use.
	e.clock.Advance(30 * time.Second)
	b.wantErr(401, "challenge_expired", "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": codeAt(t, secret, e.clock.Now())})
}

func TestAccountCapAcrossAddresses(t *testing.T) {
	e := newEnv(t, start())
	e.browser().setUpAdmin("correct horse")
	// Ten guesses from ten addresses, two each: no address reaches its own
	// limit, but the account does.
	for i := 0; i < 5; i++ {
		g := e.browserFrom("127.0.1." + string(rune('1'+i)))
		g.wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("admin", "guess-1"))
		g.wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("admin", "guess-2"))
	}
	e.browserFrom("127.0.2.1").wantErr(429, "locked", "POST", "/api/v1/login", login("admin", "correct horse"))
	// Unknown names are throttled apart: spraying them does not lock a
	// real account, and they answer like a wrong password.
	s := e.browserFrom("127.0.3.1")
	s.wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("nobody", "x-password"))
}

func TestTwoFactorChangesEndOtherSessions(t *testing.T) {
	e := newEnv(t, start())
	a := e.browser()
	a.setUpAdmin("correct horse")
	other := e.browser()
	other.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	other.must(200, "GET", "/api/v1/me", nil)
	secret, _ := a.enroll()
	other.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)
	a.must(200, "GET", "/api/v1/me", nil)

	// Regenerating recovery codes ends other sessions and voids old codes.
	ch := other.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))["challenge"]
	other.must(200, "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": codeAt(t, secret, e.clock.Now())})
	// New codes need a fresh step-up, made with the second factor: with
	// the password alone a stolen session would mint codes of its own.
	a.wantErr(403, "step_up_required", "POST", "/api/v1/me/2fa/recovery-codes", map[string]string{"password": "correct horse"})
	e.clock.Advance(30 * time.Second) // the other browser spent this step's code
	a.stepUp()
	a.wantErr(401, "invalid_credentials", "POST", "/api/v1/me/2fa/recovery-codes", map[string]string{"password": "wrong horse"})
	codes := a.must(200, "POST", "/api/v1/me/2fa/recovery-codes", map[string]string{"password": "correct horse"})["recovery_codes"].([]any)
	if len(codes) != 10 {
		t.Fatal(codes)
	}
	other.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)

	// Turning 2FA off needs the password and a current code.
	e.clock.Advance(30 * time.Second)
	a.wantErr(401, "invalid_credentials", "DELETE", "/api/v1/me/2fa", map[string]string{"password": "wrong horse", "code": codeAt(t, secret, e.clock.Now())})
	a.wantErr(401, "invalid_code", "DELETE", "/api/v1/me/2fa", map[string]string{"password": "correct horse", "code": "123456"})
	a.must(200, "DELETE", "/api/v1/me/2fa", map[string]string{"password": "correct horse", "code": codeAt(t, secret, e.clock.Now())})
	if out := e.browser().must(200, "POST", "/api/v1/login", login("admin", "correct horse")); out["status"] != "ok" {
		t.Fatalf("login after 2FA off: %v", out)
	}
}

func TestPolicyAndAdministration(t *testing.T) {
	e := newEnv(t, start())
	a := e.browser()
	a.setUpAdmin("correct horse")
	a.must(201, "POST", "/api/v1/groups", map[string]string{"name": "media"})
	a.wantErr(409, "conflict", "POST", "/api/v1/groups", map[string]string{"name": "media"})
	a.wantErr(400, "bad_request", "POST", "/api/v1/groups", map[string]string{"name": "Bad Name"})
	a.must(201, "POST", "/api/v1/users", map[string]any{"name": "alice", "password": "alice-initial", "groups": []string{"media"}})
	a.must(201, "POST", "/api/v1/users", map[string]any{"name": "bob", "password": "bob-initial", "must_change_password": false})
	a.wantErr(409, "conflict", "POST", "/api/v1/users", map[string]any{"name": "bob", "password": "bob-initial"})
	a.wantErr(400, "bad_request", "POST", "/api/v1/users", map[string]any{"name": "carol", "password": "carol-pw", "groups": []string{"nope"}})
	a.wantErr(400, "bad_request", "POST", "/api/v1/users", map[string]any{"name": "carol", "password": "carol-pw", "role": "root"})

	// Mandatory 2FA for the media group: alice must enrol, bob need not.
	// The policy is a step-up change.
	a.wantErr(403, "step_up_required", "PUT", "/api/v1/policy/2fa", map[string]any{"scope": "selected", "groups": []string{"media"}})
	a.stepUp()
	a.wantErr(400, "bad_request", "PUT", "/api/v1/policy/2fa", map[string]any{"scope": "selected", "users": []string{"ghost"}})
	a.wantErr(400, "bad_request", "PUT", "/api/v1/policy/2fa", map[string]any{"scope": "some"})
	a.must(200, "PUT", "/api/v1/policy/2fa", map[string]any{"scope": "selected", "groups": []string{"media"}})
	if p := a.must(200, "GET", "/api/v1/policy/2fa", nil); p["scope"] != "selected" {
		t.Fatal(p)
	}
	alice := e.browser()
	if out := alice.must(200, "POST", "/api/v1/login", login("alice", "alice-initial")); out["status"] != "password_change_required" {
		t.Fatalf("alice: %v", out)
	}
	if out := alice.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": "alice-initial", "new_password": "alice-own-pass"}); out["status"] != "enroll_required" {
		t.Fatalf("alice after password: %v", out)
	}
	alice.wantErr(403, "enroll_required", "GET", "/api/v1/me/devices", nil)
	alice.enroll()
	alice.must(200, "GET", "/api/v1/me/devices", nil)
	alice.wantErr(403, "forbidden", "GET", "/api/v1/users", nil)
	bob := e.browser()
	if out := bob.must(200, "POST", "/api/v1/login", login("bob", "bob-initial")); out["status"] != "ok" {
		t.Fatalf("bob: %v", out)
	}

	// An admin cannot turn off their own 2FA this way.
	a.wantErr(403, "forbidden", "DELETE", "/api/v1/users/admin/2fa", nil)
	// An admin turns off alice's 2FA (lost phone): her sessions end.
	a.must(200, "DELETE", "/api/v1/users/alice/2fa", nil)
	alice.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)
	if u := a.must(200, "GET", "/api/v1/users/alice", nil); u["two_factor"] != false || u["two_factor_required"] != true {
		t.Fatalf("alice after reset: %v", u)
	}
	if out := alice.must(200, "POST", "/api/v1/login", login("alice", "alice-own-pass")); out["status"] != "enroll_required" {
		t.Fatalf("alice must enrol again: %v", out)
	}

	// The last admin stays.
	a.wantErr(403, "forbidden", "PATCH", "/api/v1/users/admin", map[string]any{"role": "user"})
	a.wantErr(403, "forbidden", "DELETE", "/api/v1/users/admin", nil)
	a.must(200, "PATCH", "/api/v1/users/bob", map[string]any{"role": "admin"})
	a.must(200, "PATCH", "/api/v1/users/bob", map[string]any{"role": "user"})
	a.wantErr(404, "not_found", "PATCH", "/api/v1/users/ghost", map[string]any{"disabled": true})
	a.must(200, "PATCH", "/api/v1/users/bob", map[string]any{"disabled": true})
	bob.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)
	e.browser().wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("bob", "bob-initial"))

	a.must(200, "DELETE", "/api/v1/groups/media", nil)
	if u := a.must(200, "GET", "/api/v1/users/alice", nil); len(u["groups"].([]any)) != 0 {
		t.Fatalf("alice still in a deleted group: %v", u)
	}
	a.must(200, "DELETE", "/api/v1/users/alice", nil)
	a.wantErr(404, "not_found", "GET", "/api/v1/users/alice", nil)
	users := a.must(200, "GET", "/api/v1/users", nil)["users"].([]any)
	if len(users) != 2 {
		t.Fatalf("users: %v", users)
	}
	for _, u := range users {
		if _, leaked := u.(map[string]any)["password_hash"]; leaked {
			t.Fatal("password hash in the user list")
		}
	}
}

func TestBadInputGetsClearErrors(t *testing.T) {
	e := newEnv(t, start())
	b := e.browser()
	tests := []struct {
		name, body string
		status     int
		mention    string
	}{
		{"malformed", `{"username": "admin",`, 400, "JSON"},
		{"unknown field", `{"username": "admin", "password": "x", "admin": true}`, 400, "admin: unknown field"},
		{"wrong type", `{"username": 42, "password": "x"}`, 400, "username: expected a string"},
		{"not an object", `[1,2]`, 400, "JSON object"},
		{"trailing data", `{"username": "a", "password": "b"} {"x":1}`, 400, "after the JSON object"},
		{"empty", ``, 400, "empty"},
		{"huge", `{"username": "` + strings.Repeat("a", 70000) + `"}`, 413, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, out, _ := b.call("POST", "/api/v1/login", tc.body)
			msg, _ := out["error"].(map[string]any)["message"].(string)
			if st != tc.status || !strings.Contains(msg, tc.mention) {
				t.Fatalf("%d %v, want %d mentioning %q", st, out, tc.status, tc.mention)
			}
		})
	}
	b.wantErr(404, "not_found", "GET", "/api/v1/nothing", nil)
}

func TestCrossSiteRequestsRefused(t *testing.T) {
	e := newEnv(t, start())
	for _, h := range []map[string]string{{"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}} {
		req, _ := http.NewRequest("POST", e.url+"/api/v1/login", strings.NewReader(`{"username":"admin","password":"`+testDefaultPassword+`"}`))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("%v: status %d, want 403", h, resp.StatusCode)
		}
	}
}

func TestSessionExpiry(t *testing.T) {
	e := newEnv(t, start())
	b := e.browser()
	b.setUpAdmin("correct horse")
	e.clock.Advance(29 * time.Minute)
	b.must(200, "GET", "/api/v1/me", nil)
	e.clock.Advance(30 * time.Minute)
	b.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)
	// Absolute expiry: kept busy, the session still ends after 12 hours.
	b.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	elapsed := time.Duration(0)
	for elapsed < 13*time.Hour {
		e.clock.Advance(29 * time.Minute)
		elapsed += 29 * time.Minute
		if st, _, _ := b.call("GET", "/api/v1/me", nil); st != 200 {
			if elapsed < 12*time.Hour {
				t.Fatalf("busy session ended after %v", elapsed)
			}
			return
		}
	}
	t.Fatal("session outlived 12 hours")
}
