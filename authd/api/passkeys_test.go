package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rknas/firmware/authd/recovery"
	"github.com/rknas/firmware/authd/store"
)

// byName sends a request to the device by the name localhost, as a
// browser that can hold a passkey must reach it.
func (b *browser) byName(method, path string, body any) (int, map[string]any) {
	b.e.t.Helper()
	raw, _ := json.Marshal(body)
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, strings.Replace(b.e.url, "127.0.0.1", "localhost", 1)+path, r)
	if err != nil {
		b.e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	// The session was made by address; carry its cookie to the name.
	if u, err := url.Parse(b.e.url + "/api/v1/"); err == nil {
		for _, c := range b.hc.Jar.Cookies(u) {
			req.AddCookie(c)
		}
	}
	res, err := b.hc.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer res.Body.Close()
	out := map[string]any{}
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// TestPasskeyCeremoniesAreGuarded: the rules that hold before any
// authenticator answers (the full ceremonies run in Chromium with a virtual
// authenticator, in authd/web): a passkey needs the device's name, adding
// one needs the password, a ceremony belongs to the session that began it,
// and a passkey alone signs in only where the policy allows.
func TestPasskeyCeremoniesAreGuarded(t *testing.T) {
	e := newEnv(t, start())
	a := e.browser()
	a.setUpAdmin("correct horse")

	// By address: refused, saying why.
	if out := a.wantErr(400, "bad_request", "POST", "/api/v1/me/passkeys/register", map[string]any{"password": "correct horse"}); !strings.Contains(jsonString(out), "device's name") {
		t.Errorf("passkey by address: %v", out)
	}
	// By name: the password is needed, and a wrong one counts.
	if st, out := a.byName("POST", "/api/v1/me/passkeys/register", map[string]any{}); st != 401 || errCode(out) != "invalid_credentials" {
		t.Errorf("no password: %d %v", st, out)
	}
	if st, out := a.byName("POST", "/api/v1/me/passkeys/register", map[string]any{"password": "wrong"}); st != 401 || errCode(out) != "invalid_credentials" {
		t.Errorf("wrong password: %d %v", st, out)
	}
	st, out := a.byName("POST", "/api/v1/me/passkeys/register", map[string]any{"password": "correct horse"})
	opts, _ := out["options"].(map[string]any)
	rp, _ := opts["rp"].(map[string]any)
	if st != 200 || out["ceremony"] == "" || rp["id"] != "localhost" || rp["name"] != "TestNAS" {
		t.Fatalf("registration options: %d %v", st, out)
	}
	// Another session cannot finish it, even another of the same account.
	other := e.browser()
	other.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	if st, out := other.byName("POST", "/api/v1/me/passkeys", map[string]any{"ceremony": out["ceremony"], "credential": map[string]any{"id": "x"}}); st != 401 || errCode(out) != "challenge_expired" {
		t.Errorf("finishing another session's ceremony: %d %v", st, out)
	}

	// A passkey alone: off until the policy allows it.
	anon := e.browser()
	if st, out := anon.byName("POST", "/api/v1/login/passkey", map[string]any{}); st != 403 || errCode(out) != "forbidden" {
		t.Errorf("passkey sign-in under the default policy: %d %v", st, out)
	}
	// An unknown ceremony ends nothing.
	if st, out := anon.byName("POST", "/api/v1/login/passkey/finish", map[string]any{"ceremony": "made-up", "credential": map[string]any{"id": "x"}}); st != 401 || errCode(out) != "challenge_expired" {
		t.Errorf("unknown ceremony: %d %v", st, out)
	}
	// The second step of an account with no passkey has none to offer.
	a.enroll()
	ch := anon.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))["challenge"]
	if st, out := anon.byName("POST", "/api/v1/login/passkey", map[string]any{"challenge": ch}); st != 409 || errCode(out) != "conflict" {
		t.Errorf("passkey step of an account without one: %d %v", st, out)
	}
}

// TestPasskeyOnlyStepUpNeedsThePasskey: an account whose second factor is
// a passkey alone steps up with the password and the passkey, not the
// password alone.
func TestPasskeyOnlyStepUpNeedsThePasskey(t *testing.T) {
	e := newEnv(t, start())
	a := e.browser()
	a.setUpAdmin("correct horse")
	err := e.db.Update(func(tx *store.Tx) error {
		u, err := tx.User("admin")
		if err != nil {
			return err
		}
		u.Passkeys = []store.Passkey{{ID: []byte("fake credential"), Name: "Key", RPID: "localhost", Credential: []byte(`{}`)}}
		return tx.PutUser(u)
	})
	if err != nil {
		t.Fatal(err)
	}
	if out := a.wantErr(400, "bad_request", "POST", "/api/v1/me/step-up", map[string]any{"password": "correct horse"}); !strings.Contains(jsonString(out), "passkey: required") {
		t.Errorf("step-up by password alone: %v", out)
	}
	// A made-up answer is no passkey.
	st, out := a.byName("POST", "/api/v1/me/step-up/passkey", nil)
	if st != 200 {
		t.Fatalf("step-up passkey options: %d %v", st, out)
	}
	if st, out := a.byName("POST", "/api/v1/me/step-up", map[string]any{"password": "correct horse",
		"passkey": map[string]any{"ceremony": out["ceremony"], "credential": map[string]any{"id": "x"}}}); st != 401 || errCode(out) != "invalid_code" {
		t.Errorf("step-up with a made-up passkey answer: %d %v", st, out)
	}
	a.wantErr(403, "step_up_required", "PUT", "/api/v1/policy/2fa", map[string]any{"scope": "all"})

	// The passkey is the login's second step: no session after the
	// password alone, and no code form offered.
	out = e.browser().must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	if out["status"] != "otp_required" || jsonString(out["methods"]) != `["passkey"]` {
		t.Errorf("login of a passkey-only account: %v", out)
	}

	// A RESET at the device removes the admin's passkeys.
	if err := recovery.Run(context.Background(), recovery.Deps{Store: e.db, Hasher: testHasher(t), DefaultPassword: testDefaultPassword,
		Network: noNetwork{}, Live: liveReset{e}, Clock: e.clock, Log: discardLog()}, "button"); err != nil {
		t.Fatal(err)
	}
	if u, err := e.svc.User("admin"); err != nil || len(u.Passkeys) != 0 {
		t.Errorf("after the RESET the admin has %d passkeys (%v)", len(u.Passkeys), err)
	}
}

// givePasskey gives user a passkey (a made-up credential: the ceremonies
// run in authd/web) and, when secret is not "", an authenticator app's key
// left from an app turned off.
func givePasskey(t *testing.T, e *env, user, secret string) {
	t.Helper()
	err := e.db.Update(func(tx *store.Tx) error {
		u, err := tx.User(user)
		if err != nil {
			return err
		}
		u.Passkeys = append(u.Passkeys, store.Passkey{ID: []byte("fake credential"), Name: "Key", RPID: "localhost", Credential: []byte(`{}`)})
		u.TOTP.Secret = secret
		return tx.PutUser(u)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPasskeyOnlyAccountTakesNoCode: where the second factor is a passkey
// alone, no code stands in for it, at the login's second step or at a
// step-up: not one made with an empty key, which anyone can make, nor one
// of an authenticator app's key left from an app turned off.
func TestPasskeyOnlyAccountTakesNoCode(t *testing.T) {
	for _, c := range []struct{ name, secret string }{
		{"no key", ""},
		{"a key left from an app turned off", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, start())
			a := e.browser()
			a.setUpAdmin("correct horse")
			givePasskey(t, e, "admin", c.secret)
			code := func() string { return codeAt(t, c.secret, e.clock.Now()) }

			b := e.browser()
			out := b.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
			if jsonString(out["methods"]) != `["passkey"]` {
				t.Fatalf("methods: %v", out)
			}
			b.wantErr(401, "invalid_code", "POST", "/api/v1/login/otp", map[string]any{"challenge": out["challenge"], "code": code()})
			b.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)

			if out := a.wantErr(400, "bad_request", "POST", "/api/v1/me/step-up", map[string]any{"password": "correct horse", "code": code()}); !strings.Contains(jsonString(out), "passkey: required") {
				t.Errorf("step-up with a code: %v", out)
			}
			a.wantErr(403, "step_up_required", "PUT", "/api/v1/policy/2fa", map[string]any{"scope": "all"})
		})
	}
}

// TestRemovingTheLastPasskeyEndsTheOtherSessions: the last second factor
// going is 2FA turned off, as with DELETE /me/2fa: the account's other
// sessions end and the session that did it goes on under a new token.
func TestRemovingTheLastPasskeyEndsTheOtherSessions(t *testing.T) {
	e := newEnv(t, start())
	a := e.browser()
	a.setUpAdmin("correct horse")
	other := e.browser()
	other.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	// Stepped up before the passkey came (by password, as 2FA was off):
	// removing a second factor needs a fresh step-up.
	a.stepUp()
	givePasskey(t, e, "admin", "")
	before := sessionCookie(t, a)

	out := a.must(200, "GET", "/api/v1/me/passkeys", nil)
	list, _ := out["passkeys"].([]any)
	if len(list) != 1 {
		t.Fatalf("passkeys: %v", out)
	}
	id, _ := list[0].(map[string]any)["id"].(string)
	a.wantErr(401, "invalid_credentials", "DELETE", "/api/v1/me/passkeys/"+id, map[string]any{"password": "wrong"})
	other.must(200, "GET", "/api/v1/me", nil)
	if out := a.must(200, "DELETE", "/api/v1/me/passkeys/"+id, map[string]any{"password": "correct horse"}); out["status"] != "ok" {
		t.Errorf("removal: %v", out)
	}
	other.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)
	a.must(200, "GET", "/api/v1/me", nil)
	if after := sessionCookie(t, a); after == before {
		t.Error("the session kept its token")
	}
	replay := e.browser()
	replay.hc.Jar.SetCookies(a.baseURL(t), []*http.Cookie{{Name: SessionCookie, Value: before, Path: "/"}})
	replay.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)
}

// TestNewFactorsNeedAFactorStepUp: on an account with a second factor,
// adding or removing one needs a fresh step-up, made with that factor, and
// not the password alone: else a stolen session with the password would
// make a factor of its own and use it where the owner's is asked for.
func TestNewFactorsNeedAFactorStepUp(t *testing.T) {
	e := newEnv(t, start())
	a := e.browser()
	a.setUpAdmin("correct horse")
	givePasskey(t, e, "admin", "")
	list, _ := a.must(200, "GET", "/api/v1/me/passkeys", nil)["passkeys"].([]any)
	id, _ := list[0].(map[string]any)["id"].(string)
	a.wantErr(403, "step_up_required", "POST", "/api/v1/me/2fa/enroll", map[string]any{"password": "correct horse"})
	if st, out := a.byName("POST", "/api/v1/me/passkeys/register", map[string]any{"password": "correct horse"}); st != 403 || errCode(out) != "step_up_required" {
		t.Errorf("a second passkey by password alone: %d %v", st, out)
	}
	a.wantErr(403, "step_up_required", "DELETE", "/api/v1/me/passkeys/"+id, map[string]any{"password": "correct horse"})
	if u, err := e.svc.User("admin"); err != nil || len(u.Passkeys) != 1 || u.TOTP.PendingSecret != "" {
		t.Errorf("after the refusals: %d passkeys, pending key %v (%v)", len(u.Passkeys), u.TOTP.PendingSecret != "", err)
	}
}

// TestPasskeySignInCeremoniesAreKeptPerAddress: anyone may ask to sign in
// with a passkey alone (where the policy allows it); one address asking
// again and again replaces its own ceremonies and leaves another address's
// in place.
func TestPasskeySignInCeremoniesAreKeptPerAddress(t *testing.T) {
	e := newEnv(t, start())
	a := e.browser()
	a.setUpAdmin("correct horse")
	a.stepUp()
	a.must(200, "PUT", "/api/v1/policy/2fa", map[string]any{"scope": "none", "passkey_sign_in": true})
	owner := e.browserFrom("127.0.0.3")
	st, out := owner.byName("POST", "/api/v1/login/passkey", map[string]any{})
	if st != 200 || out["ceremony"] == nil {
		t.Fatalf("a passkey sign-in: %d %v", st, out)
	}
	flood := e.browserFrom("127.0.0.4")
	for i := 0; i < 1100; i++ {
		if st, out := flood.byName("POST", "/api/v1/login/passkey", map[string]any{}); st != 200 {
			t.Fatalf("passkey sign-in %d from one address: %d %v", i, st, out)
		}
	}
	// The owner's ceremony is still there: its (made-up) answer is checked
	// and refused, not taken for an unknown ceremony.
	st, out = owner.byName("POST", "/api/v1/login/passkey/finish", map[string]any{"ceremony": out["ceremony"], "credential": map[string]any{"id": "x"}})
	if st != 401 || errCode(out) != "invalid_credentials" {
		t.Errorf("the owner's ceremony after another address asked 1100 times: %d %v", st, out)
	}
}
