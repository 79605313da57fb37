package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/mail/mailtest"
	"github.com/rknas/firmware/authd/store"
)

// restart closes the database and starts a new service and server on it
// with the same clock, as after a reboot: only what was written survives.
func (e *env) restart() *env {
	e.t.Helper()
	path := e.db.Path()
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	db, err := store.Open(path)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	cfg := auth.DefaultConfig()
	cfg.DefaultPassword = testDefaultPassword
	cfg.DeviceName = "TestNAS"
	svc, err := auth.New(context.Background(), cfg, auth.Deps{Store: db, Clock: e.clock, Hasher: testHasher(e.t.(*testing.T)), Log: discardLog()})
	if err != nil {
		e.t.Fatal(err)
	}
	return &env{t: e.t, url: startServer(e.t, New(svc, discardLog(), cfg.TrustedDeviceTTL)), clock: e.clock, svc: svc, db: db}
}

// adminAndBob sets up the admin (signed in from 127.0.0.2, returned) and a
// user bob with the password "bob passphrase".
func (e *env) adminAndBob() *browser {
	a := e.browserFrom("127.0.0.2")
	a.setUpAdmin("correct horse")
	a.must(201, "POST", "/api/v1/users", map[string]any{"name": "bob", "password": "bob passphrase", "must_change_password": false})
	return a
}

// lockedBy returns what a locked answer locks and its retry_after.
func lockedBy(t *testing.T, out map[string]any) (string, float64) {
	t.Helper()
	e, _ := out["error"].(map[string]any)
	if e["code"] != "locked" {
		t.Fatalf("want a locked answer, got %v", out)
	}
	locked, _ := e["locked"].(string)
	after, _ := e["retry_after"].(float64)
	return locked, after
}

func blocksOf(t *testing.T, b *browser) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, x := range b.must(200, "GET", "/api/v1/security/blocks", nil)["blocks"].([]any) {
		bl := x.(map[string]any)
		out[bl["kind"].(string)+"/"+bl["key"].(string)] = bl
	}
	return out
}

// TestBansSurviveARestart: an address blocked and an account locked by
// guessing stay so after a restart, the admin sees both, with since and
// time left, lifts them, and lifted bans do not come back at the next
// restart.
func TestBansSurviveARestart(t *testing.T) {
	e := newEnv(t, start())
	a := e.adminAndBob()

	g := e.browserFrom("127.0.0.20")
	for i := 0; i < 5; i++ {
		g.wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("admin", fmt.Sprint("guess ", i)))
	}
	if kind, after := lockedBy(t, g.wantErr(429, "locked", "POST", "/api/v1/login", login("admin", "correct horse"))); kind != "client" || after != 300 {
		t.Fatalf("blocked address: locked %q retry_after %v", kind, after)
	}
	// Bob's password guessed from five addresses, two guesses each: no
	// address is blocked, the account is.
	for i := 0; i < 10; i++ {
		e.browserFrom(fmt.Sprintf("127.0.0.%d", 30+i/2)).wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("bob", fmt.Sprint("guess ", i)))
	}
	bob := e.browserFrom("127.0.0.40")
	out := bob.wantErr(429, "locked", "POST", "/api/v1/login", login("bob", "bob passphrase"))
	if kind, after := lockedBy(t, out); kind != "account" || after != 900 {
		t.Fatalf("locked account: locked %q retry_after %v", kind, after)
	}
	if msg := out["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "locked for 15 minutes") {
		t.Errorf("message %q", msg)
	}
	blocks := blocksOf(t, a)
	if len(blocks) != 2 || blocks["client/127.0.0.20"]["seconds_left"] != 300.0 || blocks["account/bob"]["offences"] != 1.0 {
		t.Fatalf("blocks before the restart: %v", blocks)
	}

	e.clock.Advance(time.Minute)
	e2 := e.restart()
	if kind, _ := lockedBy(t, e2.browserFrom("127.0.0.20").wantErr(429, "locked", "POST", "/api/v1/login", login("admin", "correct horse"))); kind != "client" {
		t.Fatal("the address block did not survive the restart")
	}
	if kind, after := lockedBy(t, e2.browserFrom("127.0.0.41").wantErr(429, "locked", "POST", "/api/v1/login", login("bob", "bob passphrase"))); kind != "account" || after != 840 {
		t.Fatalf("the account lock after the restart: %q %v", kind, after)
	}
	a2 := e2.browserFrom("127.0.0.2")
	a2.password = "correct horse"
	a2.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	blocks = blocksOf(t, a2)
	if len(blocks) != 2 || blocks["client/127.0.0.20"]["seconds_left"] != 240.0 || blocks["account/bob"]["since"] == nil {
		t.Fatalf("blocks after the restart: %v", blocks)
	}

	// The admin lifts both; lifting again is not found.
	a2.must(200, "DELETE", "/api/v1/security/blocks?kind=account&key=bob", nil)
	a2.must(200, "DELETE", "/api/v1/security/blocks?kind=client&key="+url.QueryEscape("127.0.0.20"), nil)
	a2.wantErr(404, "not_found", "DELETE", "/api/v1/security/blocks?kind=account&key=bob", nil)
	a2.wantErr(400, "bad_request", "DELETE", "/api/v1/security/blocks?kind=planet&key=bob", nil)
	a2.wantErr(400, "bad_request", "DELETE", "/api/v1/security/blocks", nil)
	bob2 := e2.browserFrom("127.0.0.41")
	bob2.must(200, "POST", "/api/v1/login", login("bob", "bob passphrase"))
	bob2.wantErr(403, "forbidden", "GET", "/api/v1/security/blocks", nil)
	e3 := e2.restart()
	e3.browserFrom("127.0.0.20").wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("admin", "wrong"))
	a3 := e3.browserFrom("127.0.0.2")
	a3.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	if blocks := blocksOf(t, a3); len(blocks) != 0 {
		t.Fatalf("lifted bans came back after a restart: %v", blocks)
	}
	if n := strings.Count(jsonString(a3.must(200, "GET", "/api/v1/audit?limit=1000", nil)), `"event":"block_lifted"`); n != 2 {
		t.Errorf("%d block_lifted entries, want 2", n)
	}
}

// TestAllowListKeepsTheOwnerIn: while an account is locked by guessing from
// outside, its owner still signs in from an allow-listed address; such an
// address is only slowed for its own failures, which do not lock the
// account; the list needs a step-up and refuses networks too wide.
func TestAllowListKeepsTheOwnerIn(t *testing.T) {
	e := newEnv(t, start())
	a := e.adminAndBob()

	a.wantErr(403, "step_up_required", "PUT", "/api/v1/settings/security", map[string]any{"allow_list": []string{"127.0.1.0/24"}})
	a.stepUp()
	for _, bad := range [][]string{{"0.0.0.0/0"}, {"::/0"}, {"10.0.0.0/7"}, {"not an address"}, {"192.168.1.0/24", "fe80::1%eth0"}} {
		out := a.wantErr(400, "bad_request", "PUT", "/api/v1/settings/security", map[string]any{"allow_list": bad})
		if msg := out["error"].(map[string]any)["message"].(string); !strings.HasPrefix(msg, "allow_list[") {
			t.Errorf("%v: message %q does not name the entry", bad, msg)
		}
	}
	a.wantErr(400, "bad_request", "PUT", "/api/v1/settings/security", map[string]any{})
	set := a.must(200, "PUT", "/api/v1/settings/security", map[string]any{"allow_list": []string{"127.0.1.17/24", "::ffff:127.0.2.5"}})
	if got := jsonString(set["allow_list"]); got != `["127.0.1.0/24","127.0.2.5/32"]` || set["your_address"] != "127.0.0.2" || set["your_address_allowed"] != false {
		t.Fatalf("stored settings: %v", set)
	}

	// Bob's account locked by guesses from outside the list.
	for i := 0; i < 10; i++ {
		e.browserFrom(fmt.Sprintf("127.0.0.%d", 30+i/2)).wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("bob", fmt.Sprint("guess ", i)))
	}
	e.browserFrom("127.0.0.50").wantErr(429, "locked", "POST", "/api/v1/login", login("bob", "bob passphrase"))
	home := e.browserFrom("127.0.1.9")
	home.must(200, "POST", "/api/v1/login", login("bob", "bob passphrase"))

	// From the allow-list: 10 failures slow the address for a minute, and
	// only the address.
	a.must(200, "DELETE", "/api/v1/security/blocks?kind=account&key=bob", nil)
	kid := e.browserFrom("127.0.1.10")
	for i := 0; i < 10; i++ {
		kid.wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("bob", fmt.Sprint("kid guess ", i)))
	}
	if kind, after := lockedBy(t, kid.wantErr(429, "locked", "POST", "/api/v1/login", login("bob", "bob passphrase"))); kind != "client" || after != 60 {
		t.Fatalf("an allow-listed address after 10 failures: %q %v", kind, after)
	}
	e.browserFrom("127.0.0.51").must(200, "POST", "/api/v1/login", login("bob", "bob passphrase"))
	if blocks := blocksOf(t, a); len(blocks) != 0 {
		t.Fatalf("an allow-listed address's failures were kept as bans: %v", blocks)
	}
	e.clock.Advance(time.Minute)
	kid.must(200, "POST", "/api/v1/login", login("bob", "bob passphrase"))

	// The list survives a restart.
	a2 := e.restart().browserFrom("127.0.0.2")
	a2.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	if got := jsonString(a2.must(200, "GET", "/api/v1/settings/security", nil)["allow_list"]); got != `["127.0.1.0/24","127.0.2.5/32"]` {
		t.Fatalf("allow-list after a restart: %s", got)
	}
}

// adminAndBobWithMail sets up mail through the test SMTP server, the admin
// with the security email owner@example.com and bob (password "bob
// passphrase", signed in) with bob@example.com, both verified: the first
// two mails are the verification codes.
func (me *mailEnv) adminAndBobWithMail(t *testing.T) (admin, bob *browser) {
	t.Helper()
	a := me.browserFrom("127.0.0.2")
	a.setUpAdmin("correct horse")
	a.stepUp()
	a.must(200, "PUT", "/api/v1/settings/smtp", me.smtpSettings("smtp-secret"))
	a.must(200, "PUT", "/api/v1/me/security-email", map[string]string{"email": "owner@example.com", "password": "correct horse"})
	a.must(200, "POST", "/api/v1/me/security-email/verify", map[string]string{"code": codeIn(t, me.waitMail(t, 1), 6)})
	a.must(201, "POST", "/api/v1/users", map[string]any{"name": "bob", "password": "bob passphrase", "must_change_password": false})
	b := me.browserFrom("127.0.0.3")
	b.password = "bob passphrase"
	b.must(200, "POST", "/api/v1/login", login("bob", "bob passphrase"))
	b.must(200, "PUT", "/api/v1/me/security-email", map[string]string{"email": "bob@example.com", "password": "bob passphrase"})
	b.must(200, "POST", "/api/v1/me/security-email/verify", map[string]string{"code": codeIn(t, me.waitMail(t, 2), 6)})
	return a, b
}

// TestBlocksAreMailed: a locked account is mailed to its owner and the
// admins; blocked addresses are mailed to the admins at most once per 15
// minutes, and the next mail counts those in between. Mail goes through a
// real SMTP server.
func TestBlocksAreMailed(t *testing.T) {
	me := newMailEnv(t)
	me.adminAndBobWithMail(t)

	blockAddress := func(ip string) {
		t.Helper()
		g := me.browserFrom(ip)
		for i := 0; i < 5; i++ {
			g.wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("user"+ip, fmt.Sprint("guess ", i)))
		}
	}
	blockAddress("127.0.0.20")
	if m := me.waitMail(t, 3); m.To[0] != "owner@example.com" || !strings.Contains(mailText(t, m), "The client address 127.0.0.20 was blocked") {
		t.Fatalf("mail about the first blocked address:\n%s", m.Data)
	}
	blockAddress("127.0.0.21")
	blockAddress("127.0.0.22")
	for i := 0; i < 10; i++ {
		me.browserFrom(fmt.Sprintf("127.0.0.%d", 30+i/2)).wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("bob", fmt.Sprint("guess ", i)))
	}
	locked := map[string]bool{}
	for n := 4; n <= 5; n++ {
		m := me.waitMail(t, n)
		if !strings.Contains(mailText(t, m), `The account "bob" on TestNAS was locked`) {
			t.Fatalf("mail %d:\n%s", n, mailText(t, m))
		}
		locked[m.To[0]] = true
	}
	if !locked["owner@example.com"] || !locked["bob@example.com"] {
		t.Fatalf("the locked account was mailed to %v, want the admin and bob", locked)
	}
	me.clock.Advance(15 * time.Minute)
	blockAddress("127.0.0.23")
	m := me.waitMail(t, 6)
	if !strings.Contains(mailText(t, m), "127.0.0.23 was blocked") || !strings.Contains(mailText(t, m), "2 other addresses were blocked since the last notice") {
		t.Fatalf("mail after 15 minutes:\n%s", m.Data)
	}
	if n := len(me.smtp.Messages()); n != 6 {
		t.Fatalf("%d mails, want 6: the blocks in between were mailed one by one", n)
	}
}

// mailText is a received mail with its quoted-printable body decoded.
func mailText(t *testing.T, m mailtest.Received) string {
	t.Helper()
	raw, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(m.Data)))
	if err != nil {
		t.Fatalf("decode the mail: %v\n%s", err, m.Data)
	}
	return strings.ReplaceAll(string(raw), "\r\n", "\n")
}

// TestOutboxKeepsOtherAccountsNotices: while mail cannot go out, one user
// making notices without end (new recovery codes, again and again) only
// replaces their own waiting notices; the admin's stay in the outbox, and
// the admin's next notice still finds room.
func TestOutboxKeepsOtherAccountsNotices(t *testing.T) {
	me := newMailEnv(t)
	a, bob := me.adminAndBobWithMail(t)
	bob.enroll()
	me.waitMail(t, 3) // bob's 2FA notice, delivered

	// The mail server is gone (nothing listens on port 1).
	dead := me.smtpSettings("smtp-secret")
	dead["port"] = 1
	a.stepUp()
	a.must(200, "PUT", "/api/v1/settings/smtp", dead)
	a.enroll() // the admin's notice now waits in the outbox
	// More than the outbox holds (200).
	bob.stepUp()
	for i := 0; i < 205; i++ {
		bob.must(200, "POST", "/api/v1/me/2fa/recovery-codes", map[string]string{"password": "bob passphrase"})
	}
	a.stepUp()
	a.must(200, "POST", "/api/v1/me/2fa/recovery-codes", map[string]string{"password": "correct horse"})
	pending := map[string]int{}
	for _, x := range a.must(200, "GET", "/api/v1/settings/smtp/outbox", nil)["entries"].([]any) {
		e := x.(map[string]any)
		if e["state"] == "pending" {
			pending[e["to"].(string)+" "+e["kind"].(string)]++
		}
	}
	if pending["o***@example.com twofa_enabled"] != 1 || pending["o***@example.com recovery_codes_regenerated"] != 1 ||
		pending["b***@example.com recovery_codes_regenerated"] != 10 {
		t.Fatalf("pending notices %v: want the admin's two and 10 of bob's", pending)
	}
}

// TestOwnLoginDoesNotResetTheAddress: a user who signs in to their own
// account between guesses does not get a fresh count for their address.
func TestOwnLoginDoesNotResetTheAddress(t *testing.T) {
	e := newEnv(t, start())
	e.adminAndBob()
	bob := e.browserFrom("127.0.0.60")
	for i := 0; i < 4; i++ {
		bob.wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("admin", fmt.Sprint("guess ", i)))
	}
	bob.must(200, "POST", "/api/v1/login", login("bob", "bob passphrase"))
	bob.wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("admin", "guess 4"))
	if kind, _ := lockedBy(t, bob.wantErr(429, "locked", "POST", "/api/v1/login", login("bob", "bob passphrase"))); kind != "client" {
		t.Fatalf("locked %q, want the address", kind)
	}
}

// TestCodeGuessesAreCappedPerAccountAndChallenge: someone who has the
// password and guesses codes from many addresses, each with its own login
// challenge, is held to the account's 10 failures; from an allow-listed
// address, where the account-wide cap does not apply, a challenge still
// takes at most 5 wrong codes, however many are sent at once.
func TestCodeGuessesAreCappedPerAccountAndChallenge(t *testing.T) {
	e := newEnv(t, start())
	a := e.browserFrom("127.0.0.2")
	a.setUpAdmin("correct horse")
	secret, _ := a.enroll()
	a.stepUp()
	a.must(200, "PUT", "/api/v1/settings/security", map[string]any{"allow_list": []string{"127.0.1.0/24"}})

	// Inside the list: 300 wrong codes at once on one challenge.
	home := e.browserFrom("127.0.1.7")
	ch := home.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))["challenge"]
	got := burst(300, func() (int, string) {
		return home.raw("POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": "000000"})
	})
	t.Logf("burst: %v", got)
	if got["invalid_code"] > 5 {
		t.Errorf("300 parallel codes from an allow-listed address: %v; want at most 5 judged", got)
	}
	home.wantErr(401, "challenge_expired", "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": codeAt(t, secret, e.clock.Now())})

	// Outside the list: 2 wrong codes from each of 5 addresses lock the
	// account, even for the right code from a sixth.
	for i := 0; i < 5; i++ {
		g := e.browserFrom(fmt.Sprintf("127.0.0.%d", 30+i))
		ch := g.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))["challenge"]
		for j := 0; j < 2; j++ {
			g.wantErr(401, "invalid_code", "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": fmt.Sprintf("00000%d", j)})
		}
	}
	g := e.browserFrom("127.0.0.40")
	st, body, _ := g.call("POST", "/api/v1/login", login("admin", "correct horse"))
	if st == 200 {
		ch := body["challenge"]
		body = g.wantErr(429, "locked", "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": codeAt(t, secret, e.clock.Now())})
	}
	if kind, _ := lockedBy(t, body); kind != "account" {
		t.Fatalf("after 10 wrong codes from 5 addresses: locked %q, want the account", kind)
	}
}
