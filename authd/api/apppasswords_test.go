package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/recovery"
)

// program is a script or a home automation server using an app password:
// no cookies, the token in every request, from its own address.
type program struct {
	e     *env
	hc    *http.Client
	token string
}

func (e *env) program(ip, token string) *program {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &program{e: e, hc: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}, token: token}
}

func (p *program) call(method, path string, body any) (int, string) {
	p.e.t.Helper()
	var r io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, p.e.url+path, r)
	if err != nil {
		p.e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		p.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	code := errCode(out)
	if code == "" {
		code = "ok"
	}
	return resp.StatusCode, code
}

func (p *program) want(status int, code, method, path string, body any) {
	p.e.t.Helper()
	if st, c := p.call(method, path, body); st != status || c != code {
		p.e.t.Errorf("app password %s %s: %d %s, want %d %s", method, path, st, c, status, code)
	}
}

// TestAppPasswordsForPrograms: an app password is given for the account's
// password (or a fresh step-up), shown once, listed without its token,
// reads within its scope and is refused outside it and on every route of
// credentials, sessions and app passwords; it dies when revoked, with a
// password change only when asked, at a RESET for the admin, and guessing
// tokens gets the address blocked.
func TestAppPasswordsForPrograms(t *testing.T) {
	e := newEnv(t, start())
	admin := e.browser()
	admin.setUpAdmin("correct horse")
	admin.must(201, "POST", "/api/v1/users", map[string]any{"name": "bob", "password": "bob passphrase", "must_change_password": false})
	bob := e.browser()
	bob.password = "bob passphrase"
	bob.must(200, "POST", "/api/v1/login", login("bob", "bob passphrase"))
	bob.enroll() // 2FA on: the app password still needs no code

	// Made with the password; a wrong one counts as a failure.
	bob.wantErr(401, "invalid_credentials", "POST", "/api/v1/me/app-passwords", map[string]any{"name": "backup", "scopes": []string{"read"}, "password": "wrong"})
	bob.wantErr(401, "invalid_credentials", "POST", "/api/v1/me/app-passwords", map[string]any{"name": "backup", "scopes": []string{"read"}})
	bob.wantErr(400, "bad_request", "POST", "/api/v1/me/app-passwords", map[string]any{"name": "backup", "scopes": []string{"admin"}, "password": "bob passphrase"})
	bob.wantErr(400, "bad_request", "POST", "/api/v1/me/app-passwords", map[string]any{"name": "", "scopes": []string{"read"}, "password": "bob passphrase"})
	made := bob.must(201, "POST", "/api/v1/me/app-passwords", map[string]any{"name": "backup", "scopes": []string{"read"}, "password": "bob passphrase"})
	token, _ := made["token"].(string)
	if !strings.HasPrefix(token, auth.AppPasswordPrefix) || len(token) < 50 || made["name"] != "backup" {
		t.Fatalf("app password made: %v", made)
	}
	listed := bob.must(200, "GET", "/api/v1/me/app-passwords", nil)["app_passwords"].([]any)
	if len(listed) != 1 || strings.Contains(jsonString(listed), token) || strings.Contains(jsonString(listed), "token") {
		t.Fatalf("listed: %v", listed)
	}
	// A step-up stands in for the password.
	bob.stepUp()
	bob.must(201, "POST", "/api/v1/me/app-passwords", map[string]any{"name": "second", "scopes": []string{"read"}})

	p := e.program("127.0.0.9", token)
	p.want(200, "ok", "GET", "/api/v1/me", nil)
	p.want(200, "ok", "GET", "/api/v1/me/devices", nil)
	p.want(403, "forbidden", "GET", "/api/v1/users", nil) // bob is no admin
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v1/me/app-passwords", nil},
		{"POST", "/api/v1/me/app-passwords", map[string]any{"name": "more", "scopes": []string{"read"}, "password": "bob passphrase"}},
		{"PUT", "/api/v1/me/password", map[string]any{"current_password": "bob passphrase", "new_password": "taken over"}},
		{"DELETE", "/api/v1/me/2fa", map[string]any{"password": "bob passphrase", "code": "000000"}},
		{"POST", "/api/v1/me/2fa/recovery-codes", map[string]any{"password": "bob passphrase"}},
		{"POST", "/api/v1/me/step-up", map[string]any{"password": "bob passphrase"}},
		{"DELETE", "/api/v1/me/devices", nil},
		{"DELETE", "/api/v1/me/sessions/x", nil},
	} {
		p.want(403, "forbidden", r.method, r.path, r.body)
	}
	// The login never takes one.
	if st, code := p.call("POST", "/api/v1/login", map[string]any{"username": "bob", "password": token}); st != 401 || code != "invalid_credentials" {
		t.Errorf("login with the token as password: %d %s", st, code)
	}
	if used := bob.must(200, "GET", "/api/v1/me/app-passwords", nil)["app_passwords"].([]any)[0].(map[string]any); used["last_address"] != "127.0.0.9" {
		t.Errorf("last use not recorded: %v", used)
	}

	// An admin's admin scope changes what needs no step-up, and never
	// what does.
	admin.stepUp()
	adminToken := admin.must(201, "POST", "/api/v1/me/app-passwords", map[string]any{"name": "home assistant", "scopes": []string{"read", "admin"}})["token"].(string)
	readToken := admin.must(201, "POST", "/api/v1/me/app-passwords", map[string]any{"name": "monitor", "scopes": []string{"read"}})["token"].(string)
	ha := e.program("127.0.0.10", adminToken)
	ha.want(200, "ok", "GET", "/api/v1/users", nil)
	ha.want(201, "ok", "POST", "/api/v1/groups", map[string]any{"name": "media"})
	// Its admin scope does not reach the admin's own credentials either.
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"PUT", "/api/v1/me/password", map[string]any{"current_password": "correct horse", "new_password": "taken over"}},
		{"POST", "/api/v1/me/step-up", map[string]any{"password": "correct horse"}},
		{"POST", "/api/v1/me/2fa/enroll", map[string]any{"password": "correct horse"}},
		{"DELETE", "/api/v1/me/devices", nil},
		{"POST", "/api/v1/me/app-passwords", map[string]any{"name": "more", "scopes": []string{"read", "admin"}, "password": "correct horse"}},
	} {
		ha.want(403, "forbidden", r.method, r.path, r.body)
	}
	// The changes that need a step-up need one the program cannot give.
	ha.want(403, "step_up_required", "PUT", "/api/v1/policy/2fa", map[string]any{"scope": "all"})
	ha.want(403, "step_up_required", "POST", "/api/v1/users", map[string]any{"name": "eve", "password": "eve passphrase", "role": "admin"})
	// Nor does it reach the account's own sessions or settings through the
	// admin routes.
	ha.want(403, "forbidden", "PATCH", "/api/v1/users/admin", map[string]any{"password": "taken over by a program"})
	sessions, _ := admin.must(200, "GET", "/api/v1/users/admin/sessions", nil)["sessions"].([]any)
	if len(sessions) == 0 {
		t.Fatal("the admin has no session to list")
	}
	sessionID, _ := sessions[0].(map[string]any)["id"].(string)
	ha.want(403, "forbidden", "DELETE", "/api/v1/users/admin/sessions/"+sessionID, nil)
	admin.must(200, "GET", "/api/v1/me", nil)
	mon := e.program("127.0.0.10", readToken)
	mon.want(200, "ok", "GET", "/api/v1/audit", nil)
	mon.want(403, "forbidden", "POST", "/api/v1/groups", map[string]any{"name": "music"})
	audit := jsonString(admin.must(200, "GET", "/api/v1/audit?event=app_password", nil))
	for _, want := range []string{`"app_password_created"`, `"detail":"home assistant (admin,read)"`, `"app_password_used"`, `"detail":"monitor"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %s: %s", want, audit)
		}
	}

	// Revoked: dead at once.
	id := listed[0].(map[string]any)["id"].(string)
	bob.must(200, "DELETE", "/api/v1/me/app-passwords/"+id, nil)
	p.want(401, "unauthorized", "GET", "/api/v1/me", nil)
	bob.wantErr(404, "not_found", "DELETE", "/api/v1/me/app-passwords/"+id, nil)

	// A password change keeps them unless asked; asked, it ends them.
	second := bob.must(200, "GET", "/api/v1/me/app-passwords", nil)["app_passwords"].([]any)
	if len(second) != 1 {
		t.Fatalf("bob's app passwords: %v", second)
	}
	e.clock.Advance(time.Minute)
	bob.must(200, "PUT", "/api/v1/me/password", map[string]any{"current_password": "bob passphrase", "new_password": "bob's next one"})
	if n := len(bob.must(200, "GET", "/api/v1/me/app-passwords", nil)["app_passwords"].([]any)); n != 1 {
		t.Errorf("a plain password change left %d app passwords, want 1", n)
	}
	bob.must(200, "PUT", "/api/v1/me/password", map[string]any{"current_password": "bob's next one", "new_password": "bob's third one", "revoke_app_passwords": true})
	if n := len(bob.must(200, "GET", "/api/v1/me/app-passwords", nil)["app_passwords"].([]any)); n != 0 {
		t.Errorf("a password change asked to revoke left %d app passwords", n)
	}

	// RESET at the device: the admin's are gone.
	err := recovery.Run(context.Background(), recovery.Deps{Store: e.db, Hasher: testHasher(t), DefaultPassword: testDefaultPassword,
		Network: noNetwork{}, Live: liveReset{e}, Clock: e.clock, Log: discardLog()}, "button")
	if err != nil {
		t.Fatal(err)
	}
	ha.want(401, "unauthorized", "GET", "/api/v1/users", nil)
	mon.want(401, "unauthorized", "GET", "/api/v1/audit", nil)

	// Guessing tokens: the address is blocked, even for a right token.
	guess := e.program("127.0.0.11", auth.AppPasswordPrefix+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	for range 5 {
		guess.want(401, "unauthorized", "GET", "/api/v1/me", nil)
	}
	guess.want(429, "locked", "GET", "/api/v1/me", nil)
	admin2 := e.browserFrom("127.0.0.12")
	admin2.setUpAdmin("owner again horse")
	admin2.stepUp()
	fresh := admin2.must(201, "POST", "/api/v1/me/app-passwords", map[string]any{"name": "again", "scopes": []string{"read"}})["token"].(string)
	guess.token = fresh
	guess.want(429, "locked", "GET", "/api/v1/me", nil)
	e.program("127.0.0.13", fresh).want(200, "ok", "GET", "/api/v1/me", nil)
}
