package mail_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/mail"
	"github.com/rknas/firmware/authd/mail/mailtest"
)

func newMailer(t *testing.T, dir string, clk *clocktest.Clock, sender mail.Sender) *mail.Mailer {
	t.Helper()
	m, err := mail.New(mail.Config{StateDir: dir, DeviceName: testDevice, Clock: clk, Sender: sender})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The whole path the API takes: configure, test mail, codes, notices.
func TestMailerEndToEnd(t *testing.T) {
	srv := startServer(t, mailtest.Options{Mode: mailtest.ModeStartTLS, Username: testUser, Password: testPassword})
	dir := t.TempDir()
	clk := clocktest.New(t0)
	m := newMailer(t, dir, clk, nil)
	ctx := ctxTimeout(t, 30*time.Second)

	if err := m.SendVerificationCode(ctx, testTo, "alice", "123456"); !errors.Is(err, mail.ErrNotConfigured) || mail.CodeOf(err) != mail.CodeNotConfigured {
		t.Fatalf("code before configuration: %v", err)
	}
	if _, err := m.Notify(testTo, mail.Notice{Kind: mail.KindTwoFAEnabled, Account: "alice"}); !errors.Is(err, mail.ErrNotConfigured) {
		t.Fatalf("notice before configuration: %v", err)
	}
	if n := len(m.Outbox().List()); n != 0 {
		t.Fatalf("outbox holds %d entries while unconfigured", n)
	}

	if _, err := m.UpdateSettings(settingsFor(srv, mail.SecurityStartTLS)); err != nil {
		t.Fatal(err)
	}
	reply, err := m.Test(ctx, testTo)
	if err != nil || !strings.HasPrefix(reply, "250") {
		t.Fatalf("Test = %q, %v", reply, err)
	}
	if err := m.SendVerificationCode(ctx, testTo, "alice", "654321"); err != nil {
		t.Fatal(err)
	}
	if err := m.SendEmergencyCode(ctx, testTo, "alice", "ABCD-EFGH", t0, "[2001:db8::5]:443", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	if _, err := m.Notify(testTo, mail.Notice{Kind: mail.KindDeviceReset}); err != nil {
		t.Fatal(err)
	}
	got, err := srv.WaitForMessages(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	wants := []string{"test mail", "654321", "ABCD-EFGH", "RESET button"}
	for i, r := range got {
		p := checkDelivered(t, r.Data, t0, wants[i])
		if i == 2 && !strings.Contains(p.Body, "2001:db8::5") {
			t.Errorf("emergency mail lacks the client address:\n%s", p.Body)
		}
	}

	// Wrong password: the code's caller gets auth_failed at once.
	bad := settingsFor(srv, mail.SecurityStartTLS)
	bad.Password = "wrong"
	if _, err := m.UpdateSettings(bad); err != nil {
		t.Fatal(err)
	}
	err = m.SendVerificationCode(ctx, testTo, "alice", "111111")
	var se *mail.SendError
	if !errors.As(err, &se) || se.Code != mail.CodeAuthFailed || !strings.Contains(se.Message(), "535") {
		t.Fatalf("with a wrong password: %v", err)
	}
	if err := m.SendEmergencyCode(ctx, testTo, "alice", "x\r\ny", t0, "", time.Minute); mail.CodeOf(err) != mail.CodeInvalidMessage {
		t.Errorf("code with CRLF: %v, want invalid_message", err)
	}
}

func TestMailerMovesCorruptOutboxAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, mail.OutboxFileName)
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := newMailer(t, dir, clocktest.New(t0), mailtest.NewSender())
	if n := len(m.Outbox().List()); n != 0 {
		t.Fatalf("outbox holds %d", n)
	}
	aside, _ := filepath.Glob(path + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("corrupt file not moved aside: %v", aside)
	}
}

func TestMailerRefusesCorruptSettings(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, mail.SettingsFileName), []byte(`{"preset":"custom","port":0}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := mail.New(mail.Config{StateDir: dir, DeviceName: "nas", Clock: clocktest.New(t0)}); err == nil {
		t.Fatal("New accepted invalid stored settings")
	}
}

// Settings changes retry pending notices at once.
func TestMailerSettingsChangeRetriesNow(t *testing.T) {
	dir := t.TempDir()
	clk := clocktest.New(t0)
	s := mailtest.NewSender()
	m := newMailer(t, dir, clk, s)
	if _, err := m.UpdateSettings(validCustom()); err != nil {
		t.Fatal(err)
	}
	s.SetError(&mail.SendError{Code: mail.CodeAuthFailed, Err: errors.New("535")})
	if _, err := m.Notify(testTo, mail.Notice{Kind: mail.KindTwoFAEnabled, Account: "alice"}); err != nil {
		t.Fatal(err)
	}
	mail.ProcessDue(context.Background(), m.Outbox())
	if e := only(t, m.Outbox()); e.Attempts != 1 || e.LastErrorCode != mail.CodeAuthFailed {
		t.Fatalf("%+v", e)
	}
	s.SetError(nil)
	if _, err := m.UpdateSettings(validCustom()); err != nil {
		t.Fatal(err)
	}
	mail.ProcessDue(context.Background(), m.Outbox()) // the clock has not moved
	if e := only(t, m.Outbox()); e.State != mail.StateDelivered {
		t.Fatalf("after the settings change: %+v", e)
	}
}
