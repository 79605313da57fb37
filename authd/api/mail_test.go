package api

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/mail"
	"github.com/rknas/firmware/authd/mail/mailtest"
)

// mailEnv is an env whose device mails through a real SMTP server on
// loopback with STARTTLS and AUTH.
type mailEnv struct {
	*env
	smtp   *mailtest.Server
	mailer *mail.Mailer
}

func newMailEnv(t *testing.T) *mailEnv {
	t.Helper()
	e := newEnv(t, start())
	smtp, err := mailtest.Start(mailtest.Options{Mode: mailtest.ModeStartTLS, Username: "nas", Password: "smtp-secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { smtp.Close() })
	m, err := mail.New(mail.Config{StateDir: t.TempDir(), DeviceName: "TestNAS", Clock: e.clock, Logger: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.svc.SetCodeMailer(m)
	e.svc.SetNotifier(auth.MailNotifier{Mailer: m, Log: discardLog()})
	srv := New(e.svc, discardLog(), time.Hour)
	srv.AttachMail(m)
	e.url = startServer(t, srv)
	return &mailEnv{env: e, smtp: smtp, mailer: m}
}

// waitMail waits for the n-th message the server received and returns it.
func (me *mailEnv) waitMail(t *testing.T, n int) mailtest.Received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msgs, err := me.smtp.WaitForMessages(ctx, n)
	if err != nil {
		t.Fatalf("waiting for mail %d: %v (have %d)", n, err, len(me.smtp.Messages()))
	}
	return msgs[n-1]
}

func codeIn(t *testing.T, msg mailtest.Received, digits int) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)(?:^|\s)(\d{` + string(rune('0'+digits)) + `})(?:\s|$)`).FindStringSubmatch(string(msg.Data))
	if m == nil {
		t.Fatalf("no %d-digit code in the mail:\n%s", digits, msg.Data)
	}
	return m[1]
}

func (me *mailEnv) smtpSettings(password string) map[string]any {
	return map[string]any{"preset": "custom", "host": me.smtp.Host(), "port": me.smtp.Port(), "security": "starttls",
		"username": "nas", "password": password, "from": "nas@example.com", "ca_pem": me.smtp.CA().PEM}
}

// TestLostPhoneEmergencyCode is the owner's path: set up mail, verify a
// security email, lose the phone, get an emergency code at login, use it
// once, and receive a notice of its use.
func TestLostPhoneEmergencyCode(t *testing.T) {
	me := newMailEnv(t)
	a := me.browser()
	a.setUpAdmin("correct horse")

	// Mail settings: a step-up change; the password is stored, never shown.
	a.wantErr(403, "step_up_required", "PUT", "/api/v1/settings/smtp", me.smtpSettings("smtp-secret"))
	a.stepUp()
	a.wantErr(400, "bad_request", "PUT", "/api/v1/settings/smtp", map[string]any{"preset": "custom", "host": "bad host", "port": 25, "security": "none", "from": "a@b.c"})
	a.wantErr(400, "bad_request", "PUT", "/api/v1/settings/smtp", map[string]any{"preset": "custom", "host": "smtp.example.com", "port": 587, "security": "starttls", "from": "nas@example.com\r\nBcc: evil@example.com"})
	out := a.must(200, "PUT", "/api/v1/settings/smtp", me.smtpSettings("smtp-secret"))
	got := a.must(200, "GET", "/api/v1/settings/smtp", nil)
	if strings.Contains(jsonString(got), "smtp-secret") || strings.Contains(jsonString(out), "smtp-secret") {
		t.Fatal("the SMTP password came back from the API")
	}
	if got["settings"].(map[string]any)["password_set"] != true {
		t.Fatalf("settings: %v", got)
	}
	a.must(200, "POST", "/api/v1/settings/smtp/test", map[string]string{"to": "owner@example.com"})
	if m := me.waitMail(t, 1); !m.TLS || m.User != "nas" {
		t.Fatalf("test mail went without TLS or AUTH: %+v", m)
	}

	// A wrong SMTP password is a clear error, and the good one comes back.
	a.must(200, "PUT", "/api/v1/settings/smtp", me.smtpSettings("wrong"))
	out = a.wantErr(502, "mail_failed", "POST", "/api/v1/settings/smtp/test", map[string]string{"to": "owner@example.com"})
	if msg := out["error"].(map[string]any)["message"].(string); !strings.HasPrefix(msg, "auth_failed") {
		t.Errorf("message %q", msg)
	}
	a.must(200, "PUT", "/api/v1/settings/smtp", me.smtpSettings("smtp-secret"))

	// The security email, verified by a mailed code.
	a.wantErr(400, "bad_request", "PUT", "/api/v1/me/security-email", map[string]string{"email": "owner@example.com\r\nBcc: x@example.com"})
	a.wantErr(400, "bad_request", "PUT", "/api/v1/me/security-email", map[string]string{"email": "not an address"})
	out = a.must(200, "PUT", "/api/v1/me/security-email", map[string]string{"email": "owner@example.com", "password": "correct horse"})
	if out["sent_to"] != "o***@example.com" {
		t.Fatalf("masked address %v", out["sent_to"])
	}
	verify := me.waitMail(t, 2)
	if verify.To[0] != "owner@example.com" {
		t.Fatalf("verification to %v", verify.To)
	}
	a.wantErr(401, "invalid_code", "POST", "/api/v1/me/security-email/verify", map[string]string{"code": "000000"})
	a.must(200, "POST", "/api/v1/me/security-email/verify", map[string]string{"code": codeIn(t, verify, 6)})
	secret, _ := a.enroll()
	_ = secret
	if n := me.waitMail(t, 3); !strings.Contains(string(n.Data), "admin") {
		t.Fatalf("2FA notice: %s", n.Data)
	}
	a.must(200, "POST", "/api/v1/logout", nil)

	// The phone is lost: ask for an emergency code at the code step.
	out = a.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	if !strings.Contains(jsonString(out["methods"]), "email") {
		t.Fatalf("methods %v", out["methods"])
	}
	ch := out["challenge"]
	out = a.must(200, "POST", "/api/v1/login/emergency", map[string]any{"challenge": ch})
	if out["sent_to"] != "o***@example.com" {
		t.Fatalf("emergency: %v", out)
	}
	em := me.waitMail(t, 4)
	code := codeIn(t, em, 8)
	body := string(em.Data)
	for _, want := range []string{"127.0.0.1", "10 minutes", "TestNAS"} {
		if !strings.Contains(body, want) {
			t.Errorf("emergency mail lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "correct horse") || strings.Contains(body, secret) {
		t.Fatal("a secret other than the code is in the mail")
	}
	// Valid for 10 minutes, beyond the 5-minute challenge.
	me.clock.Advance(7 * time.Minute)
	a.must(200, "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": code})
	a.must(200, "GET", "/api/v1/me", nil)
	// Once only.
	b := me.browser()
	ch2 := b.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))["challenge"]
	b.wantErr(401, "invalid_code", "POST", "/api/v1/login/otp", map[string]any{"challenge": ch2, "code": code})
	// The notice of its use arrives through the outbox.
	if n := me.waitMail(t, 5); !strings.Contains(string(n.Data), "127.0.0.1") {
		t.Fatalf("notice of use: %s", n.Data)
	}

	// At most 5 emergency codes a day.
	for i := 0; i < 4; i++ {
		b.must(200, "POST", "/api/v1/login/emergency", map[string]any{"challenge": ch2})
	}
	b.wantErr(429, "locked", "POST", "/api/v1/login/emergency", map[string]any{"challenge": ch2})

	// The outbox is visible to admins.
	entries := a.must(200, "GET", "/api/v1/settings/smtp/outbox", nil)["entries"].([]any)
	if len(entries) < 2 || strings.Contains(jsonString(entries), "owner@example.com") {
		t.Fatalf("outbox: %v", entries)
	}
}

// TestMailOutageNeverBlocksLogin: with the SMTP server down, logins go on
// and the notice waits in the outbox.
func TestMailOutageNeverBlocksLogin(t *testing.T) {
	me := newMailEnv(t)
	a := me.browser()
	a.setUpAdmin("correct horse")
	a.stepUp()
	a.must(200, "PUT", "/api/v1/settings/smtp", me.smtpSettings("smtp-secret"))
	a.must(200, "PUT", "/api/v1/me/security-email", map[string]string{"email": "owner@example.com", "password": "correct horse"})
	a.must(200, "POST", "/api/v1/me/security-email/verify", map[string]string{"code": codeIn(t, me.waitMail(t, 1), 6)})
	me.smtp.Close()
	a.enroll()
	a.must(200, "GET", "/api/v1/me", nil)
	a.must(200, "POST", "/api/v1/logout", nil)
	out := a.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))
	out = a.wantErr(502, "mail_failed", "POST", "/api/v1/login/emergency", map[string]any{"challenge": out["challenge"]})
	if !strings.Contains(out["error"].(map[string]any)["message"].(string), "refused") {
		t.Errorf("message %v", out)
	}
	var pending bool
	for _, e := range me.mailer.Outbox().List() {
		if e.Done.IsZero() {
			pending = true
		}
	}
	if !pending {
		t.Fatalf("the 2FA notice is not waiting in the outbox: %+v", me.mailer.Outbox().List())
	}
}
