package mail_test

import (
	"context"
	"errors"
	"io"
	"mime"
	"net"
	netmail "net/mail"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/mail"
	"github.com/rknas/firmware/authd/mail/mailtest"
)

// checkDelivered checks the headers and body of a delivered mail.
func checkDelivered(t *testing.T, raw []byte, wantDate time.Time, wantInBody ...string) parsed {
	t.Helper()
	p := parseDelivered(t, raw)
	date, err := p.Header.Date()
	if err != nil {
		t.Errorf("Date header %q: %v", p.Header.Get("Date"), err)
	} else if !date.Equal(wantDate) {
		t.Errorf("Date = %v, want %v", date, wantDate)
	}
	if id := p.Header.Get("Message-Id"); !regexp.MustCompile(`^<[A-Za-z0-9]{10,64}@example\.com>$`).MatchString(id) {
		t.Errorf("Message-ID = %q, want <random@example.com>", id)
	}
	from, err := netmail.ParseAddress(p.Header.Get("From"))
	if err != nil || from.Address != testFrom || from.Name != testDevice {
		t.Errorf("From = %q (%v), want %q <%s>", p.Header.Get("From"), err, testDevice, testFrom)
	}
	to, err := netmail.ParseAddressList(p.Header.Get("To"))
	if err != nil || len(to) != 1 || to[0].Address != testTo {
		t.Errorf("To = %q (%v), want %s", p.Header.Get("To"), err, testTo)
	}
	if !strings.Contains(p.Subject, testDevice) {
		t.Errorf("Subject %q lacks the device name %q", p.Subject, testDevice)
	}
	mt, params, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
	if err != nil || mt != "text/plain" || !strings.EqualFold(params["charset"], "utf-8") {
		t.Errorf("Content-Type = %q, want text/plain; charset=UTF-8", p.Header.Get("Content-Type"))
	}
	if !utf8.ValidString(p.Body) || !strings.Contains(p.Body, testDevice) {
		t.Errorf("body is not UTF-8 or lacks the device name:\n%s", p.Body)
	}
	for _, w := range wantInBody {
		if !strings.Contains(p.Body, w) {
			t.Errorf("body lacks %q:\n%s", w, p.Body)
		}
	}
	if strings.Contains(string(raw), testPassword) || strings.Contains(p.Body, testPassword) {
		t.Error("the SMTP password appears in the mail")
	}
	return p
}

func TestSendOverSTARTTLSWithAuth(t *testing.T) {
	for _, mode := range []struct {
		name     string
		mode     mailtest.Mode
		security string
	}{
		{"starttls", mailtest.ModeStartTLS, mail.SecurityStartTLS},
		{"implicit tls", mailtest.ModeImplicitTLS, mail.SecurityTLS},
	} {
		t.Run(mode.name, func(t *testing.T) {
			srv := startServer(t, mailtest.Options{Mode: mode.mode, Username: testUser, Password: testPassword})
			clk := clocktest.New(t0)
			msg, err := newComposer(t, clk).EmergencyCode(testTo, "alice", "K7Q2-M9XD", t0.Add(-time.Minute),
				"192.0.2.7:51234", 10*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			s := mail.NewSMTPSender(staticSettings(settingsFor(srv, mode.security)), mail.SMTPOptions{Timeout: 10 * time.Second})
			start := time.Now()
			reply, err := s.SendReply(ctxTimeout(t, 20*time.Second), msg)
			if err != nil {
				t.Fatalf("SendReply: %v", err)
			}
			t.Logf("delivered in %v, server said %q", time.Since(start), reply)
			if !strings.HasPrefix(reply, "250") {
				t.Errorf("reply = %q, want 250 ...", reply)
			}
			got := srv.Messages()
			if len(got) != 1 {
				t.Fatalf("server holds %d messages, want 1", len(got))
			}
			r := got[0]
			t.Logf("delivered:\n%s", r.Data)
			if r.From != testFrom || len(r.To) != 1 || r.To[0] != testTo || r.User != testUser || !r.TLS {
				t.Errorf("envelope from=%q to=%q user=%q tls=%v", r.From, r.To, r.User, r.TLS)
			}
			checkDelivered(t, r.Data, t0, "K7Q2-M9XD", "10 minutes", "only once", "192.0.2.7",
				"2026-11-23 09:59:00 UTC", `"alice"`)
		})
	}
}

func TestSendFailures(t *testing.T) {
	tests := []struct {
		name      string
		mode      mailtest.Mode
		failure   mailtest.Failure
		edit      func(*mail.Settings)
		timeout   time.Duration
		want      mail.ErrorCode
		wantReply string
	}{
		{name: "server down", edit: func(s *mail.Settings) { s.Port = freePort(t) }, want: mail.CodeConnectionRefused},
		{name: "wrong password", edit: func(s *mail.Settings) { s.Password = "wrong" }, want: mail.CodeAuthFailed, wantReply: "535"},
		{name: "auth refused", failure: mailtest.FailAuth, want: mail.CodeAuthFailed, wantReply: "535"},
		{name: "unknown CA", edit: func(s *mail.Settings) { s.CAPEM = "" }, want: mail.CodeTLSFailed},
		{name: "CA of another server", edit: func(s *mail.Settings) {
			other, err := mailtest.NewCA("other")
			if err != nil {
				t.Fatal(err)
			}
			s.CAPEM = other.PEM
		}, want: mail.CodeTLSFailed},
		{name: "starttls required, plain server", mode: mailtest.ModePlain, want: mail.CodeTLSFailed},
		{name: "implicit tls against starttls server", edit: func(s *mail.Settings) { s.Security = mail.SecurityTLS }, want: mail.CodeTLSFailed},
		{name: "password never in the clear", mode: mailtest.ModePlain, edit: func(s *mail.Settings) { s.Security = mail.SecurityNone }, want: mail.CodeAuthFailed},
		{name: "sender refused", failure: mailtest.FailSender, want: mail.CodeRejected, wantReply: "553 5.7.1"},
		{name: "recipient refused", failure: mailtest.FailRecipient, want: mail.CodeRejected, wantReply: "550 5.1.1"},
		{name: "content refused", failure: mailtest.FailData, want: mail.CodeRejected, wantReply: "554 5.7.1"},
		{name: "slow server", failure: mailtest.StallMail, timeout: 500 * time.Millisecond, want: mail.CodeTimeout},
		{name: "silent server", edit: func(s *mail.Settings) { s.Port = silentServer(t) }, timeout: 500 * time.Millisecond, want: mail.CodeTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, mailtest.Options{Mode: tt.mode, Username: testUser, Password: testPassword})
			srv.SetFailure(tt.failure)
			st := settingsFor(srv, mail.SecurityStartTLS)
			if tt.edit != nil {
				tt.edit(&st)
			}
			if err := st.Validate(); err != nil {
				t.Fatalf("test settings invalid: %v", err)
			}
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			msg, err := newComposer(t, clocktest.New(t0)).VerificationCode(testTo, "alice", "123456")
			if err != nil {
				t.Fatal(err)
			}
			s := mail.NewSMTPSender(staticSettings(st), mail.SMTPOptions{Timeout: timeout, DialTimeout: 5 * time.Second})
			start := time.Now()
			err = s.Send(ctxTimeout(t, 30*time.Second), msg)
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("Send succeeded, want an error")
			}
			var se *mail.SendError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) is not a *SendError", err, err)
			}
			t.Logf("after %v: code=%s reply=%q err=%v; user message: %s", elapsed, se.Code, se.Reply, err, se.Message())
			if se.Code != tt.want {
				t.Errorf("code = %s, want %s (err: %v)", se.Code, tt.want, err)
			}
			if !strings.HasPrefix(se.Reply, tt.wantReply) {
				t.Errorf("reply = %q, want prefix %q", se.Reply, tt.wantReply)
			}
			if strings.Contains(err.Error(), testPassword) || strings.Contains(se.Message(), testPassword) {
				t.Error("the error reveals the password")
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("server received %d messages, want 0", n)
			}
			if tt.mode == mailtest.ModePlain && srv.AuthAttempts() != 0 {
				t.Errorf("the client tried AUTH %d times on a plain connection", srv.AuthAttempts())
			}
		})
	}
}

// A server with a certificate from an unknown CA fails with tls_failed;
// adding that CA as ca_pem makes the same server work.
func TestUnknownCAThenTrusted(t *testing.T) {
	srv := startServer(t, mailtest.Options{Mode: mailtest.ModeStartTLS, Username: testUser, Password: testPassword})
	st := settingsFor(srv, mail.SecurityStartTLS)
	st.CAPEM = ""
	msg, err := newComposer(t, clocktest.New(t0)).TestMessage(testTo)
	if err != nil {
		t.Fatal(err)
	}
	err = mail.NewSMTPSender(staticSettings(st), mail.SMTPOptions{}).Send(ctxTimeout(t, 20*time.Second), msg)
	if mail.CodeOf(err) != mail.CodeTLSFailed {
		t.Fatalf("without ca_pem: %v (code %s), want tls_failed", err, mail.CodeOf(err))
	}
	st.CAPEM = srv.CA().PEM
	if err := mail.NewSMTPSender(staticSettings(st), mail.SMTPOptions{}).Send(ctxTimeout(t, 20*time.Second), msg); err != nil {
		t.Fatalf("with the CA as ca_pem: %v", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("server received %d messages, want 1", n)
	}
}

// The caller's context ends the exchange too, not only the timeout.
func TestSendCanceledByCaller(t *testing.T) {
	srv := startServer(t, mailtest.Options{Mode: mailtest.ModeStartTLS, Username: testUser, Password: testPassword})
	srv.SetFailure(mailtest.StallMail)
	msg, err := newComposer(t, clocktest.New(t0)).TestMessage(testTo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = mail.NewSMTPSender(staticSettings(settingsFor(srv, mail.SecurityStartTLS)), mail.SMTPOptions{Timeout: time.Minute}).Send(ctx, msg)
	if mail.CodeOf(err) != mail.CodeTimeout {
		t.Fatalf("err = %v (code %s), want timeout", err, mail.CodeOf(err))
	}
}

func TestHeaderInjectionRefused(t *testing.T) {
	srv := startServer(t, mailtest.Options{Mode: mailtest.ModeStartTLS, Username: testUser, Password: testPassword})
	s := mail.NewSMTPSender(staticSettings(settingsFor(srv, mail.SecurityStartTLS)), mail.SMTPOptions{})
	clk := clocktest.New(t0)
	good, err := newComposer(t, clk).TestMessage(testTo)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		edit func(*mail.Message)
	}{
		{"CRLF in recipient", func(m *mail.Message) { m.To = "alice@example.com\r\nBcc: eve@example.net" }},
		{"LF in recipient", func(m *mail.Message) { m.To = "alice@example.com\nBcc: eve@example.net" }},
		{"CRLF in subject", func(m *mail.Message) { m.Subject = "hello\r\nBcc: eve@example.net" }},
		{"CR in subject", func(m *mail.Message) { m.Subject = "hello\rBcc: eve@example.net" }},
		{"CRLF in sender name", func(m *mail.Message) { m.FromName = "NAS\r\nBcc: eve@example.net" }},
		{"NUL in subject", func(m *mail.Message) { m.Subject = "a\x00b" }},
		{"display name recipient", func(m *mail.Message) { m.To = "Alice <alice@example.com>" }},
		{"two recipients", func(m *mail.Message) { m.To = "alice@example.com, eve@example.net" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := good
			tt.edit(&m)
			err := s.Send(ctxTimeout(t, 10*time.Second), m)
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if mail.CodeOf(err) != mail.CodeInvalidMessage {
				t.Errorf("code = %s, want invalid_message (%v)", mail.CodeOf(err), err)
			}
		})
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server received %d messages, want 0", n)
	}

	// The builders refuse CR/LF in what they put into headers too.
	if _, err := mail.NewComposer("NAS\r\nBcc: eve@example.net", clk); !errors.Is(err, mail.ErrHeaderInjection) {
		t.Errorf("NewComposer with CRLF: %v, want ErrHeaderInjection", err)
	}
	c := newComposer(t, clk)
	if _, err := c.VerificationCode("alice@example.com\r\nBcc: eve@example.net", "alice", "123456"); !errors.Is(err, mail.ErrHeaderInjection) {
		t.Errorf("VerificationCode with CRLF address: %v, want ErrHeaderInjection", err)
	}
	if _, err := c.Notice(testTo, mail.Notice{Kind: mail.KindTwoFAEnabled, Account: "alice\r\nBcc: x@y.z"}); !errors.Is(err, mail.ErrHeaderInjection) {
		t.Errorf("Notice with CRLF account: %v, want ErrHeaderInjection", err)
	}
	if _, err := c.VerificationCode(testTo, "alice", "12\r\n34"); mail.CodeOf(err) != mail.CodeInvalidMessage {
		t.Errorf("code with CRLF: %v, want invalid_message", err)
	}
}

func TestNotConfigured(t *testing.T) {
	dir := t.TempDir()
	store, err := mail.OpenSettings(dir)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := newComposer(t, clocktest.New(t0)).TestMessage(testTo)
	if err != nil {
		t.Fatal(err)
	}
	err = mail.NewSMTPSender(store, mail.SMTPOptions{}).Send(context.Background(), msg)
	if mail.CodeOf(err) != mail.CodeNotConfigured || !errors.Is(err, mail.ErrNotConfigured) {
		t.Fatalf("err = %v, want not_configured", err)
	}
}

// silentServer accepts TCP connections and never says a word.
func silentServer(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// TestEndlessReplyEndsTheExchange: a server (or anyone before STARTTLS)
// sending one endless reply line ends the exchange once it has sent 1 MiB,
// instead of filling authd's memory until the exchange's time is up.
func TestEndlessReplyEndsTheExchange(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := io.WriteString(c, "220 "); err != nil {
			return
		}
		chunk := []byte(strings.Repeat("x", 64<<10))
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	st := mail.Settings{Preset: mail.PresetCustom, Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Security: mail.SecurityNone, From: testFrom}
	msg, err := newComposer(t, clocktest.New(t0)).VerificationCode(testTo, "alice", "123456")
	if err != nil {
		t.Fatal(err)
	}
	err = mail.NewSMTPSender(staticSettings(st), mail.SMTPOptions{Timeout: time.Second, DialTimeout: 5 * time.Second}).Send(ctxTimeout(t, 30*time.Second), msg)
	if err == nil || !strings.Contains(err.Error(), "the server sent more than 1024 KiB in one exchange") {
		t.Fatalf("Send: %v, want the exchange ended at 1 MiB", err)
	}
}
