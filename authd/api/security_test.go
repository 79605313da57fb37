package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/recovery"
	"github.com/rknas/firmware/authd/store"
	"github.com/rknas/firmware/board"
)

// raw sends one JSON request from a goroutine (no testing.T calls) and
// returns the status and the error code, if any.
func (b *browser) raw(method, path string, body any) (int, string) {
	var r io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, b.e.url+path, r)
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, errCode(out)
}

// burst sends n copies of a request at once and counts the answers by
// error code ("" for success).
func burst(n int, send func() (int, string)) map[string]int {
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, code := send()
			mu.Lock()
			got[code]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return got
}

// TestParallelGuessesHeldToTheLimits sends wrong passwords and codes in
// parallel bursts: no more are judged than the limits allow, where before
// every request in flight got a verdict.
func TestParallelGuessesHeldToTheLimits(t *testing.T) {
	e := newEnv(t, start())
	a := e.browserFrom("127.0.0.2")
	a.setUpAdmin("correct horse")
	secret, _ := a.enroll()

	// 40 wrong passwords at once from one address: 5 judged (the client
	// limit), the rest refused before any hash.
	g := e.browserFrom("127.0.0.10")
	got := burst(40, func() (int, string) { return g.raw("POST", "/api/v1/login", login("admin", "wrong horse")) })
	t.Logf("burst: %v", got)
	if got["invalid_credentials"] > 5 || got["invalid_credentials"]+got["locked"] != 40 {
		t.Errorf("40 parallel wrong passwords: %v; want at most 5 judged, the rest locked", got)
	}

	// 300 wrong codes at once on one login challenge: at most 5 checked,
	// and the challenge is void after the fifth.
	c := e.browserFrom("127.0.0.11")
	out := c.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	ch := out["challenge"]
	got = burst(300, func() (int, string) {
		return c.raw("POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": "000000"})
	})
	t.Logf("burst: %v", got)
	if got["invalid_code"] > 5 {
		t.Errorf("300 parallel codes on one challenge: %v; want at most 5 checked", got)
	}
	e.clock.Advance(30 * time.Second)
	if st, code := c.raw("POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": codeAt(t, secret, e.clock.Now())}); st == 200 {
		t.Errorf("the right code was taken on a challenge that had 5 wrong ones: %d %s", st, code)
	}

	// The same for a session's own password checks: /me/password, 2FA
	// off, new recovery codes. (The bursts above banned the account: let
	// that go first.)
	e.clock.Advance(24 * time.Hour)
	for _, tt := range []struct {
		name, method, path string
		body               any
	}{
		{"password change", "PUT", "/api/v1/me/password", map[string]string{"current_password": "wrong horse", "new_password": "another horse"}},
		{"2FA off", "DELETE", "/api/v1/me/2fa", map[string]string{"password": "wrong horse", "code": "123456"}},
		{"recovery codes", "POST", "/api/v1/me/2fa/recovery-codes", map[string]string{"password": "wrong horse"}},
	} {
		s := e.browserFrom("127.0.0.12")
		s.password, s.secret = "correct horse", secret
		e.clock.Advance(30 * time.Second)
		out := s.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
		s.must(200, "POST", "/api/v1/login/otp", map[string]any{"challenge": out["challenge"], "code": codeAt(t, secret, e.clock.Now())})
		got := burst(40, func() (int, string) { return s.raw(tt.method, tt.path, tt.body) })
		t.Logf("burst: %v", got)
		if got["invalid_credentials"] > 5 {
			t.Errorf("%s: 40 parallel wrong passwords: %v; want at most 5 judged", tt.name, got)
		}
		e.clock.Advance(24 * time.Hour) // let the ban and the offences go
	}
}

// TestStepUp checks that the changes that could hand the device to someone
// else need the password (and a code) given again within 5 minutes, and
// that a stolen admin session can neither make an admin nor take over the
// built-in one.
func TestStepUp(t *testing.T) {
	e := newEnv(t, start())
	// With the system routes, whose network part is not running here: the
	// access check answers before it is asked.
	srv := New(e.svc, discardLog(), time.Hour)
	srv.AttachSystem(&System{Board: board.NoneProfile("test"), Started: time.Now()})
	e.url = startServer(t, srv)
	a := e.browserFrom("127.0.0.2")
	a.setUpAdmin("correct horse")
	a.enroll()
	a.must(201, "POST", "/api/v1/users", map[string]any{"name": "bob", "password": "bob-initial", "must_change_password": false})

	for _, tt := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/v1/users", map[string]any{"name": "mallory", "password": "mallory pass", "role": "admin"}},
		{"PATCH", "/api/v1/users/bob", map[string]any{"role": "admin"}},
		{"PATCH", "/api/v1/users/admin", map[string]any{"password": "set without the current one"}},
		{"PUT", "/api/v1/policy/2fa", map[string]any{"scope": "all"}},
		{"PUT", "/api/v1/settings/security", map[string]any{"allow_list": []string{"192.168.1.0/24"}}},
		{"PUT", "/api/v1/settings/network", map[string]any{"hostname": "nas"}},
		{"PUT", "/api/v1/time", map[string]any{"time": "2030-01-01T00:00:00Z"}},
		{"PUT", "/api/v1/settings/time", map[string]any{"ntp_enabled": true, "ntp_servers": []string{"ntp.attacker.example"}}},
		// (SMTP settings: mail_test.go.)
	} {
		a.wantErr(403, "step_up_required", tt.method, tt.path, tt.body)
	}
	// A plain user is still made without a step-up.
	a.must(201, "POST", "/api/v1/users", map[string]any{"name": "carol", "password": "carol-initial"})

	// Step-up: the password alone is not enough with 2FA on; a wrong one
	// counts as a failure.
	a.wantErr(400, "bad_request", "POST", "/api/v1/me/step-up", map[string]string{"password": "correct horse"})
	a.wantErr(401, "invalid_credentials", "POST", "/api/v1/me/step-up", map[string]string{"password": "wrong", "code": "123456"})
	a.stepUp()
	a.must(201, "POST", "/api/v1/users", map[string]any{"name": "mallory", "password": "mallory pass", "role": "admin"})
	a.must(200, "PATCH", "/api/v1/users/bob", map[string]any{"role": "admin"})
	// Five minutes later the step-up is spent.
	e.clock.Advance(5*time.Minute + time.Second)
	a.wantErr(403, "step_up_required", "PUT", "/api/v1/policy/2fa", map[string]any{"scope": "all"})
	a.wantErr(403, "step_up_required", "DELETE", "/api/v1/users/mallory", nil)
}

// TestTokensRotate checks that a session's token changes at every change
// of its kind and of its password, and at a step-up: a copy of the old
// token is worthless afterwards.
func TestTokensRotate(t *testing.T) {
	e := newEnv(t, start())
	b := e.browserFrom("127.0.0.2")
	token := func() string {
		for _, c := range b.hc.Jar.Cookies(mustURL(t, e.url)) {
			if c.Name == SessionCookie {
				return c.Value
			}
		}
		return ""
	}
	stolen := func(step string, tok string) {
		t.Helper()
		thief := e.browserFrom("127.0.0.3")
		thief.hc.Jar.SetCookies(mustURL(t, e.url), []*http.Cookie{{Name: SessionCookie, Value: tok}})
		if st, code := thief.raw("GET", "/api/v1/me", nil); st != 401 {
			t.Errorf("after %s the old token still works: %d %s", step, st, code)
		}
	}
	b.must(200, "POST", "/api/v1/login", login("admin", testDefaultPassword))
	old := token()
	b.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": testDefaultPassword, "new_password": "correct horse"})
	b.password = "correct horse"
	stolen("the forced password change (password_change to full)", old)
	old = token()
	b.enroll()
	stolen("turning 2FA on", old)
	old = token()
	b.stepUp()
	stolen("a step-up", old)
	old = token()
	b.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": "correct horse", "new_password": "correct horse 2"})
	stolen("a password change", old)
	b.must(200, "GET", "/api/v1/me", nil)
}

// TestStolenSessionCannotEnrolOrMoveTheEmail: turning 2FA on from a full
// session, and changing the security email, need the password; the old
// address hears of the change. Mail goes through a real SMTP server.
func TestStolenSessionCannotEnrolOrMoveTheEmail(t *testing.T) {
	me := newMailEnv(t)
	b := me.browserFrom("127.0.0.2")
	b.setUpAdmin("correct horse")
	b.wantErr(400, "bad_request", "POST", "/api/v1/me/2fa/enroll", nil)
	b.wantErr(401, "invalid_credentials", "POST", "/api/v1/me/2fa/enroll", map[string]string{"password": "thief's guess"})

	b.stepUp()
	b.must(200, "PUT", "/api/v1/settings/smtp", me.smtpSettings("smtp-secret"))
	b.must(200, "PUT", "/api/v1/me/security-email", map[string]string{"email": "owner@example.com", "password": "correct horse"})
	b.must(200, "POST", "/api/v1/me/security-email/verify", map[string]string{"code": codeIn(t, me.waitMail(t, 1), 6)})

	// The thief holds the session, not the password.
	b.wantErr(400, "bad_request", "PUT", "/api/v1/me/security-email", map[string]string{"email": "thief@example.com"})
	b.wantErr(401, "invalid_credentials", "PUT", "/api/v1/me/security-email", map[string]string{"email": "thief@example.com", "password": "thief's guess"})
	// The owner moves the address; the old one is told.
	b.must(200, "PUT", "/api/v1/me/security-email", map[string]string{"email": "new@example.com", "password": "correct horse"})
	verify := me.waitMail(t, 2)
	if verify.To[0] != "new@example.com" {
		t.Fatalf("a verification code went to %v: the refused changes sent mail", verify.To)
	}
	b.must(200, "POST", "/api/v1/me/security-email/verify", map[string]string{"code": codeIn(t, verify, 6)})
	notice := me.waitMail(t, 3)
	if notice.To[0] != "owner@example.com" || !strings.Contains(mailText(t, notice), "security email address") {
		t.Fatalf("notice to the old address:\n%s", mailText(t, notice))
	}
}

// liveReset is what authd wires into the recovery: the auth core's view.
type liveReset struct{ e *env }

func (l liveReset) AdminReset(source, noticeTo string) { l.e.svc.AdminReset(source, noticeTo) }

type noNetwork struct{}

func (noNetwork) ResetToDefault(context.Context) error { return nil }

// TestResetEndsEveryAdminSession: a physical reset ends the sessions of
// every admin account, and no other admin may change the built-in admin
// until its owner has signed in with the default password and set a new
// one.
func TestResetEndsEveryAdminSession(t *testing.T) {
	e := newEnv(t, start())
	a := e.browserFrom("127.0.0.2")
	a.setUpAdmin("correct horse")
	a.stepUp()
	a.must(201, "POST", "/api/v1/users", map[string]any{"name": "mallory", "password": "mallory pass", "role": "admin", "must_change_password": false})
	m := e.browserFrom("127.0.0.3")
	m.password = "mallory pass"
	m.must(200, "POST", "/api/v1/login", login("mallory", "mallory pass"))
	m.stepUp()
	u := e.browserFrom("127.0.0.4")
	a.must(201, "POST", "/api/v1/users", map[string]any{"name": "user1", "password": "user1 pass", "must_change_password": false})
	u.must(200, "POST", "/api/v1/login", login("user1", "user1 pass"))

	// RESET at the device.
	err := recovery.Run(context.Background(), recovery.Deps{Store: e.db, Hasher: testHasher(t), DefaultPassword: testDefaultPassword,
		Network: noNetwork{}, Live: liveReset{e}, Clock: e.clock, Log: discardLog()}, "button")
	if err != nil {
		t.Fatal(err)
	}
	a.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)
	m.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)
	u.must(200, "GET", "/api/v1/me", nil) // not an admin: untouched

	// Mallory signs in again and steps up, but cannot touch the admin.
	m.must(200, "POST", "/api/v1/login", login("mallory", "mallory pass"))
	e.clock.Advance(time.Minute)
	m.stepUp()
	for _, tt := range []struct {
		method, path string
		body         any
	}{
		{"PATCH", "/api/v1/users/admin", map[string]any{"password": "mallory owns this"}},
	} {
		m.wantErr(403, "forbidden", tt.method, tt.path, tt.body)
	}
	// The owner signs in with the default password and sets a new one;
	// from then on the admin is an ordinary (step-up protected) account.
	o := e.browserFrom("127.0.0.5")
	o.setUpAdmin("owner's new horse")
	m.stepUp()
	m.must(200, "PATCH", "/api/v1/users/admin", map[string]any{"groups": []string{}})
	if n := strings.Count(jsonString(o.must(200, "GET", "/api/v1/audit?limit=1000", nil)), `"event":"physical_reset"`); n != 1 {
		t.Errorf("%d physical_reset entries", n)
	}
}

func testHasher(t *testing.T) *account.Hasher {
	h, err := account.NewHasher(testParams, 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestAPIAnswersCarryTheSecurityHeaders checks that every API answer,
// refusals included, tells the browser not to sniff, frame, refer or store
// it: an account's details must not stay behind in a shared browser's cache.
func TestAPIAnswersCarryTheSecurityHeaders(t *testing.T) {
	e := newEnv(t, start())
	br := e.browser()
	br.setUpAdmin("correct horse")
	want := map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
		"Cache-Control":          "no-store",
	}
	for _, tc := range []struct {
		name string
		b    *browser
		path string
		code int
	}{
		{"signed in", br, "/api/v1/me", http.StatusOK},
		{"signed out", e.browser(), "/api/v1/me", http.StatusUnauthorized},
	} {
		code, _, hdr := tc.b.call("GET", tc.path, nil)
		if code != tc.code {
			t.Fatalf("%s: GET %s = %d, want %d", tc.name, tc.path, code, tc.code)
		}
		for k, v := range want {
			if got := hdr.Values(k); len(got) != 1 || got[0] != v {
				t.Errorf("%s: GET %s: %s = %q, want exactly %q", tc.name, tc.path, k, got, v)
			}
		}
	}
}

// TestResetsTakeTheSecurityEmail: an admin's 2FA reset of an account, and a
// RESET at the device for the admin, remove the account's security email,
// so an address someone else set while holding the account gets no
// emergency codes once 2FA is on again; the notice of each reset still goes
// to the address that was verified. Mail goes through a real SMTP server.
func TestResetsTakeTheSecurityEmail(t *testing.T) {
	me := newMailEnv(t)
	a, bob := me.adminAndBobWithMail(t)
	bob.enroll()
	if n := me.waitMail(t, 3); n.To[0] != "bob@example.com" {
		t.Fatalf("mail 3 went to %v", n.To)
	}

	a.must(200, "DELETE", "/api/v1/users/bob/2fa", nil)
	if n := me.waitMail(t, 4); n.To[0] != "bob@example.com" || !strings.Contains(mailText(t, n), "turned off") {
		t.Fatalf("the 2FA reset's notice went to %v:\n%s", n.To, mailText(t, n))
	}
	if u := a.must(200, "GET", "/api/v1/users/bob", nil); u["security_email"] != nil || u["security_email_verified"] != false {
		t.Errorf("after an admin's 2FA reset bob has %v (verified %v)", u["security_email"], u["security_email_verified"])
	}

	err := recovery.Run(context.Background(), recovery.Deps{Store: me.db, Hasher: testHasher(t), DefaultPassword: testDefaultPassword,
		Network: noNetwork{}, Live: liveReset{me.env}, Clock: me.clock, Log: discardLog()}, "button")
	if err != nil {
		t.Fatal(err)
	}
	if n := me.waitMail(t, 5); n.To[0] != "owner@example.com" || !strings.Contains(mailText(t, n), "RESET button") {
		t.Fatalf("the RESET's notice went to %v:\n%s", n.To, mailText(t, n))
	}
	o := me.browserFrom("127.0.0.5")
	o.must(200, "POST", "/api/v1/login", login("admin", testDefaultPassword))
	if u := o.must(200, "GET", "/api/v1/me", nil); u["security_email"] != nil || u["security_email_verified"] != false {
		t.Errorf("after the RESET the admin has %v (verified %v)", u["security_email"], u["security_email_verified"])
	}
	entries, err := me.svc.AuditLogMatching(2, 0, store.AuditFilter{Event: "physical_reset"})
	if err != nil || len(entries) != 2 || entries[1].Event != "physical_reset" || !strings.Contains(entries[1].Detail, "security email removed") {
		t.Errorf("the RESET's audit entries: %+v (%v)", entries, err)
	}
}

// TestParallelPasswordChangesLandOnce: sessions that change the password
// at once, each with the same current password, do not all land: the first
// does, the others find current_password is no longer it, and the password
// in effect is the one whose request was answered 200.
func TestParallelPasswordChangesLandOnce(t *testing.T) {
	e := newEnv(t, start())
	a := e.browserFrom("127.0.0.2")
	a.setUpAdmin("correct horse")
	a.stepUp()
	a.must(200, "PUT", "/api/v1/settings/security", map[string]any{"allow_list": []string{"127.0.1.0/24"}})
	const n = 8
	bs := make([]*browser, n)
	for i := range bs {
		bs[i] = e.browserFrom(fmt.Sprintf("127.0.1.%d", i+1))
		bs[i].must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	}
	changes := func() int {
		entries, err := e.svc.AuditLogMatching(100, 0, store.AuditFilter{Event: "password_changed"})
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	before := changes()
	var mu sync.Mutex
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	status := make([]int, n)
	burst(n, func() (int, string) {
		i := <-next
		st, code := bs[i].raw("PUT", "/api/v1/me/password", map[string]string{"current_password": "correct horse", "new_password": fmt.Sprint("new horse ", i)})
		mu.Lock()
		status[i] = st
		mu.Unlock()
		return st, code
	})
	won := -1
	for i, st := range status {
		if st == 200 {
			if won >= 0 {
				t.Errorf("two changes answered 200: %v", status)
			}
			won = i
		}
	}
	if won < 0 {
		t.Fatalf("no change landed: %v", status)
	}
	if n := changes() - before; n != 1 {
		t.Errorf("%d password changes recorded, want 1", n)
	}
	for i := range bs {
		st, _ := e.browserFrom("127.0.1.99").raw("POST", "/api/v1/login", login("admin", fmt.Sprint("new horse ", i)))
		if (st == 200) != (i == won) {
			t.Errorf("new password %d (its change answered %d) signs in: %d", i, status[i], st)
		}
	}
}

// TestTheDefaultPasswordIsNoOracleForOtherAccounts: only the built-in
// admin, which a RESET gives the device's default password, is refused it
// as a new password. Refused for every account, the default could be tested
// by any signed-in user (and by an admin's program through the users
// routes), guess after guess with no throttle, since the refusal named the
// right one.
func TestTheDefaultPasswordIsNoOracleForOtherAccounts(t *testing.T) {
	_, admin, alice := adminAndAlice(t)
	for _, guess := range []string{"not the default", testDefaultPassword} {
		alice.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": "alice passphrase", "new_password": guess})
		alice.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": guess, "new_password": "alice passphrase"})
	}
	admin.must(201, "POST", "/api/v1/users", map[string]any{"name": "carol", "password": testDefaultPassword, "must_change_password": true})
	// The built-in admin still may not take it back.
	admin.wantErr(400, "bad_request", "PUT", "/api/v1/me/password", map[string]string{"current_password": "correct horse", "new_password": testDefaultPassword})
}
