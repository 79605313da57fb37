package api

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/store"
)

// TestPasswordChangeEndsOtherSessions: whoever else holds a session of the
// account (a thief, a forgotten browser) is out once the password changes;
// the browser that changed it stays in.
func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	e := newEnv(t, start())
	a := e.browser()
	a.setUpAdmin("correct horse")
	other := e.browser()
	other.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	other.must(200, "GET", "/api/v1/me", nil)
	a.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": "correct horse", "new_password": "battery staple"})
	other.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)
	a.must(200, "GET", "/api/v1/me", nil)
}

// TestLogoutEndsTheSessionOnTheServer: a session token copied before the
// logout is worth nothing after it.
func TestLogoutEndsTheSessionOnTheServer(t *testing.T) {
	e := newEnv(t, start())
	a := e.browser()
	a.setUpAdmin("correct horse")
	token := sessionCookie(t, a)
	a.must(200, "POST", "/api/v1/logout", nil)
	replay := e.browser()
	replay.hc.Jar.SetCookies(a.baseURL(t), []*http.Cookie{{Name: SessionCookie, Value: token, Path: "/"}})
	replay.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)
}

// TestTrustedDeviceIsForItsOwnAccount: the browser the admin trusted does
// not skip the code step of another account signing in on it.
func TestTrustedDeviceIsForItsOwnAccount(t *testing.T) {
	e, a, alice := adminAndAlice(t)
	aliceSecret, _ := alice.enroll()
	a.enroll()

	// The admin trusts this browser, then logs out; alice signs in on it.
	shared := e.browser()
	out := shared.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	shared.must(200, "POST", "/api/v1/login/otp", map[string]any{"challenge": out["challenge"], "code": codeAt(t, a.secret, e.clock.Now()),
		"trust_device": true, "device_name": "Shared laptop"})
	shared.must(200, "POST", "/api/v1/logout", nil)
	out = shared.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	if out["status"] != "ok" || out["trusted_device"] != true {
		t.Fatalf("the trusted device does not skip the admin's own code step: %v", out)
	}
	shared.must(200, "POST", "/api/v1/logout", nil)
	out = shared.must(200, "POST", "/api/v1/login", login("alice", "alice passphrase"))
	if out["status"] != "otp_required" || out["trusted_device"] == true {
		t.Fatalf("alice on the admin's trusted device: %v, want otp_required", out)
	}
	e.clock.Advance(30 * time.Second)
	shared.must(200, "POST", "/api/v1/login/otp", map[string]any{"challenge": out["challenge"], "code": codeAt(t, aliceSecret, e.clock.Now())})
}

// TestAdminTwoFactorResetDropsTheUsersDevices: when an admin turns off a
// user's 2FA (a lost phone, or a stolen one), the devices the user trusted
// are forgotten too, so none of them skips the code step once 2FA is back.
func TestAdminTwoFactorResetDropsTheUsersDevices(t *testing.T) {
	e, a, alice := adminAndAlice(t)
	secret, _ := alice.enroll()
	alice.must(200, "POST", "/api/v1/logout", nil)
	out := alice.must(200, "POST", "/api/v1/login", login("alice", "alice passphrase"))
	alice.must(200, "POST", "/api/v1/login/otp", map[string]any{"challenge": out["challenge"], "code": codeAt(t, secret, e.clock.Now()),
		"trust_device": true, "device_name": "Phone"})
	if n := devicesOf(t, e, "alice"); n != 1 {
		t.Fatalf("alice has %d trusted devices, want 1", n)
	}
	a.must(200, "DELETE", "/api/v1/users/alice/2fa", nil)
	if n := devicesOf(t, e, "alice"); n != 0 {
		t.Fatalf("after the admin's 2FA reset alice still has %d trusted devices", n)
	}
	// Back with 2FA, the browser she trusted before asks for a code.
	alice.must(200, "POST", "/api/v1/login", login("alice", "alice passphrase"))
	alice.enroll()
	alice.must(200, "POST", "/api/v1/logout", nil)
	if out := alice.must(200, "POST", "/api/v1/login", login("alice", "alice passphrase")); out["status"] != "otp_required" {
		t.Fatalf("a device trusted before the reset skipped the code step: %v", out)
	}
}

// TestSecurityEmailCodeTriesAreCapped: the mailed verification code has 5
// tries; after them even the right code is refused and a new one is needed.
func TestSecurityEmailCodeTriesAreCapped(t *testing.T) {
	me := newMailEnv(t)
	a := me.browser()
	a.setUpAdmin("correct horse")
	a.stepUp()
	a.must(200, "PUT", "/api/v1/settings/smtp", me.smtpSettings("smtp-secret"))
	a.must(200, "PUT", "/api/v1/me/security-email", map[string]string{"email": "owner@example.com", "password": "correct horse"})
	code := codeIn(t, me.waitMail(t, 1), 6)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for range 5 {
		a.wantErr(401, "invalid_code", "POST", "/api/v1/me/security-email/verify", map[string]string{"code": wrong})
	}
	// Past the address's own lock (5 failures hold it for 5 minutes) and
	// well within the code's 30 minutes, the right code is still refused.
	me.clock.Advance(6 * time.Minute)
	a.wantErr(401, "challenge_expired", "POST", "/api/v1/me/security-email/verify", map[string]string{"code": code})
	if got := a.must(200, "GET", "/api/v1/me", nil)["security_email"]; got != nil && got != "" {
		t.Fatalf("security email set after the tries ran out: %v", got)
	}
	// A new code works.
	a.must(200, "PUT", "/api/v1/me/security-email", map[string]string{"email": "owner@example.com", "password": "correct horse"})
	a.must(200, "POST", "/api/v1/me/security-email/verify", map[string]string{"code": codeIn(t, me.waitMail(t, 2), 6)})
}

// TestCookieFlags: the session and trusted-device cookies are HttpOnly,
// SameSite=Strict and Path=/ with no Domain always; over TLS they are
// Secure and named with the __Host- prefix.
func TestCookieFlags(t *testing.T) {
	for _, overTLS := range []bool{false, true} {
		name := "http"
		if overTLS {
			name = "https"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, start())
			b := e.browser()
			if overTLS {
				ts := httptest.NewTLSServer(New(e.svc, discardLog(), 24*time.Hour).Handler())
				t.Cleanup(ts.Close)
				e.url = ts.URL
				jar, _ := cookiejar.New(nil)
				b.hc = ts.Client()
				b.hc.Jar = jar
			}
			session, device := SessionCookie, DeviceCookie
			if overTLS {
				session, device = SecureSessionCookie, SecureDeviceCookie
			}
			_, _, h := b.call("POST", "/api/v1/login", login("admin", testDefaultPassword))
			checkCookie(t, h, session, overTLS)
			b.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": testDefaultPassword, "new_password": "correct horse"})
			b.password = "correct horse"
			secret, _ := b.enroll()
			b.must(200, "POST", "/api/v1/logout", nil)
			out := b.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
			_, _, h = b.call("POST", "/api/v1/login/otp", map[string]any{"challenge": out["challenge"], "code": codeAt(t, secret, e.clock.Now()),
				"trust_device": true, "device_name": "Laptop"})
			checkCookie(t, h, session, overTLS)
			checkCookie(t, h, device, overTLS)
		})
	}
}

// TestAPlantedPlainCookieIsNotReadOverHTTPS: anyone answering plain HTTP
// for the device's name can plant a cookie under the plain name, with a
// longer path, so a browser sends it first; over HTTPS only the __Host-
// cookie, which plain HTTP cannot set, is read. The owner stays signed in as
// the owner, and a planted session alone signs nobody in.
func TestAPlantedPlainCookieIsNotReadOverHTTPS(t *testing.T) {
	e := newEnv(t, start())
	ts := httptest.NewTLSServer(New(e.svc, discardLog(), 24*time.Hour).Handler())
	t.Cleanup(ts.Close)
	e.url = ts.URL
	tlsBrowser := func() *browser {
		jar, _ := cookiejar.New(nil)
		hc := *ts.Client() // one client per browser: ts.Client() is shared
		hc.Jar = jar
		return &browser{e: e, hc: &hc}
	}
	owner := tlsBrowser()
	owner.setUpAdmin("correct horse")
	owner.must(201, "POST", "/api/v1/users", map[string]any{"name": "mallory", "password": "mallory passphrase", "must_change_password": false})
	mallory := tlsBrowser()
	mallory.must(200, "POST", "/api/v1/login", login("mallory", "mallory passphrase"))
	ownerToken, malloryToken := sessionCookie(t, owner), sessionCookie(t, mallory)

	me := func(cookie string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", ts.URL+"/api/v1/me", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Cookie", cookie)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		name, _ := out["name"].(string)
		return resp.StatusCode, name
	}
	if code, name := me(SessionCookie + "=" + malloryToken + "; " + SecureSessionCookie + "=" + ownerToken); code != 200 || name != "admin" {
		t.Errorf("planted plain cookie before the owner's: %d as %q, want 200 as admin", code, name)
	}
	if code, name := me(SessionCookie + "=" + malloryToken); code != 401 {
		t.Errorf("a plain cookie alone over HTTPS: %d as %q, want 401", code, name)
	}
}

// TestAnOldDeviceCookieDoesNotHideANewOne: before the trusted-device
// cookie moved to Path=/ it lived at /api/v1/, and a browser sends the
// longer path first. Setting a new one expires the old, so the browser is
// trusted from its next login, not asked for a code until the old expires.
func TestAnOldDeviceCookieDoesNotHideANewOne(t *testing.T) {
	e := newEnv(t, start())
	b := e.browser()
	b.setUpAdmin("correct horse")
	secret, _ := b.enroll()
	b.hc.Jar.SetCookies(b.baseURL(t), []*http.Cookie{{Name: DeviceCookie, Value: "revoked-before-the-upgrade", Path: "/api/v1/"}})
	b.must(200, "POST", "/api/v1/logout", nil)
	out := b.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	b.must(200, "POST", "/api/v1/login/otp", map[string]any{"challenge": out["challenge"], "code": codeAt(t, secret, e.clock.Now()),
		"trust_device": true, "device_name": "Laptop"})
	b.must(200, "POST", "/api/v1/logout", nil)
	if out := b.must(200, "POST", "/api/v1/login", login("admin", "correct horse")); out["status"] != "ok" || out["trusted_device"] != true {
		t.Fatalf("the login after trusting the browser again: %v (cookies %v)", out, b.hc.Jar.Cookies(b.baseURL(t)))
	}
}

func checkCookie(t *testing.T, h http.Header, name string, overTLS bool) {
	t.Helper()
	for _, line := range h.Values("Set-Cookie") {
		if !strings.HasPrefix(line, name+"=") {
			continue
		}
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("Set-Cookie %q: %v", line, err)
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure != overTLS || c.Path != "/" || c.Domain != "" {
			t.Errorf("cookie %s: HttpOnly=%v SameSite=%v Secure=%v Path=%q Domain=%q; want true, Strict, %v, /, none (%q)",
				name, c.HttpOnly, c.SameSite, c.Secure, c.Path, c.Domain, overTLS, line)
		}
		return
	}
	t.Errorf("no %s cookie set: %q", name, h.Values("Set-Cookie"))
}

func sessionCookie(t *testing.T, b *browser) string {
	t.Helper()
	for _, c := range b.hc.Jar.Cookies(b.baseURL(t)) {
		if c.Name == SessionCookie || c.Name == SecureSessionCookie {
			return c.Value
		}
	}
	t.Fatal("no session cookie in the jar")
	return ""
}

func devicesOf(t *testing.T, e *env, user string) int {
	t.Helper()
	var n int
	err := e.db.View(func(tx *store.Tx) error {
		devs, err := tx.Devices(user)
		n = len(devs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (b *browser) baseURL(t *testing.T) *url.URL {
	t.Helper()
	u, err := url.Parse(b.e.url + "/api/v1/")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// adminAndAlice sets up the admin (stepped up, no 2FA yet) and signs alice,
// a user the admin created, in on her own browser.
func adminAndAlice(t *testing.T) (*env, *browser, *browser) {
	t.Helper()
	e := newEnv(t, start())
	a := e.browser()
	a.setUpAdmin("correct horse")
	a.stepUp()
	a.must(201, "POST", "/api/v1/users", map[string]any{"name": "alice", "password": "alice passphrase", "must_change_password": false})
	alice := e.browser()
	alice.must(200, "POST", "/api/v1/login", login("alice", "alice passphrase"))
	alice.password = "alice passphrase"
	return e, a, alice
}

// TestDeletingAGroupThatCountsNeedsAStepUp: deleting a group that the 2FA
// policy names, or that holds an admin, changes the policy or an admin
// account, which needs a step-up made directly; a group of no consequence
// goes without one.
func TestDeletingAGroupThatCountsNeedsAStepUp(t *testing.T) {
	e, a, _ := adminAndAlice(t)
	for _, g := range []string{"staff", "ops", "media"} {
		a.must(201, "POST", "/api/v1/groups", map[string]any{"name": g})
	}
	a.must(200, "PUT", "/api/v1/policy/2fa", map[string]any{"scope": "selected", "groups": []string{"staff"}})
	a.must(200, "PATCH", "/api/v1/users/admin", map[string]any{"groups": []string{"ops"}})
	a.must(200, "PATCH", "/api/v1/users/alice", map[string]any{"groups": []string{"media"}})
	e.clock.Advance(6 * time.Minute) // the step-up is over
	a.wantErr(403, "step_up_required", "DELETE", "/api/v1/groups/staff", nil)
	a.wantErr(403, "step_up_required", "DELETE", "/api/v1/groups/ops", nil)
	a.must(200, "DELETE", "/api/v1/groups/media", nil)
	if p := a.must(200, "GET", "/api/v1/policy/2fa", nil); jsonString(p["groups"]) != `["staff"]` {
		t.Errorf("the policy after the refusals: %v", p)
	}
	a.stepUp()
	a.must(200, "DELETE", "/api/v1/groups/staff", nil)
	a.must(200, "DELETE", "/api/v1/groups/ops", nil)
}

// TestRoleChangeEndsTheAccountsSessions: a session opened as a user does
// not become an admin's session when the account is made an admin (under
// an admins-only 2FA policy it would be one without the second factor).
func TestRoleChangeEndsTheAccountsSessions(t *testing.T) {
	_, a, alice := adminAndAlice(t)
	alice.must(200, "GET", "/api/v1/me", nil)
	a.must(200, "PATCH", "/api/v1/users/alice", map[string]any{"role": "admin"})
	alice.wantErr(401, "unauthorized", "GET", "/api/v1/users", nil)
	alice.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)
}

// TestPromotionGivesNoOldAppPasswordAdminReads: a read-only app password
// made while the account was a user keeps reading the account after an
// admin promotes it, and not the admin routes; one made as an admin reads
// them; the account's role is kept with the token.
func TestPromotionGivesNoOldAppPasswordAdminReads(t *testing.T) {
	e, a, alice := adminAndAlice(t)
	made := alice.must(201, "POST", "/api/v1/me/app-passwords", map[string]any{"name": "monitor", "scopes": []string{"read"}, "password": alice.password})
	old := e.program("127.0.0.9", made["token"].(string))
	old.want(403, "forbidden", "GET", "/api/v1/users", nil)
	a.must(200, "PATCH", "/api/v1/users/alice", map[string]any{"role": "admin"})
	old.want(200, "ok", "GET", "/api/v1/me", nil)
	old.want(403, "forbidden", "GET", "/api/v1/users", nil)
	old.want(403, "forbidden", "GET", "/api/v1/audit", nil)

	alice.must(200, "POST", "/api/v1/login", login("alice", "alice passphrase"))
	made = alice.must(201, "POST", "/api/v1/me/app-passwords", map[string]any{"name": "admin monitor", "scopes": []string{"read"}, "password": alice.password})
	e.program("127.0.0.10", made["token"].(string)).want(200, "ok", "GET", "/api/v1/users", nil)
}
