package mail_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/mail"
	"github.com/rknas/firmware/authd/mail/mailtest"
)

// Debian's interpreter: the python3 first on PATH may be another one
// without Debian's packages.
const debianPython = "/usr/bin/python3"

// startAiosmtpd runs Debian's aiosmtpd on loopback delivering into the
// Maildir dir, with extra arguments, and returns its port once it listens.
func startAiosmtpd(t *testing.T, dir string, extra ...string) int {
	t.Helper()
	if err := exec.Command(debianPython, "-c", "import aiosmtpd").Run(); err != nil {
		t.Fatalf("Debian's python3-aiosmtpd is missing (%v): install it with scripts/deps.sh (apt-get install python3-aiosmtpd)", err)
	}
	port := freePort(t)
	args := append([]string{"-m", "aiosmtpd", "-n", "-d", "-l", "127.0.0.1:" + strconv.Itoa(port)}, extra...)
	args = append(args, "-c", "aiosmtpd.handlers.Mailbox", dir)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, debianPython, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start aiosmtpd: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	// aiosmtpd -d logs "Server is listening on HOST:PORT" once the socket
	// is bound: wait for that line, not for a fixed time.
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var seen []string
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Server is listening on") {
				ready <- nil
				// Keep draining so aiosmtpd never blocks on stderr.
				_, _ = io.Copy(io.Discard, stderr)
				return
			}
			seen = append(seen, sc.Text())
		}
		ready <- &exitError{strings.Join(seen, "\n")}
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("aiosmtpd ended before listening: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("aiosmtpd did not report listening within 30 s")
	}
	return port
}

type exitError struct{ output string }

func (e *exitError) Error() string { return "output:\n" + e.output }

func readMaildir(t *testing.T, dir string) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "new", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// Plain SMTP (security none) to Debian's aiosmtpd, delivered into a Maildir.
func TestAiosmtpdPlain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Maildir")
	port := startAiosmtpd(t, dir)
	st := mail.Settings{Preset: mail.PresetCustom, Host: "127.0.0.1", Port: port, Security: mail.SecurityNone, From: testFrom}
	if err := st.Validate(); err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(t0)
	msg, err := newComposer(t, clk).VerificationCode(testTo, "alice", "493817")
	if err != nil {
		t.Fatal(err)
	}
	reply, err := mail.NewSMTPSender(staticSettings(st), mail.SMTPOptions{Timeout: 20 * time.Second}).SendReply(ctxTimeout(t, 30*time.Second), msg)
	if err != nil {
		t.Fatalf("SendReply: %v", err)
	}
	t.Logf("aiosmtpd said %q", reply)
	// aiosmtpd's Mailbox handler stores the message before it answers 250.
	got := readMaildir(t, dir)
	if len(got) != 1 {
		t.Fatalf("Maildir holds %d messages, want 1", len(got))
	}
	p := checkDelivered(t, got[0], t0, "493817", `"alice"`)
	if !strings.Contains(p.Subject, "verification code") {
		t.Errorf("subject = %q", p.Subject)
	}
}

// STARTTLS to aiosmtpd with a certificate from the test CA: an independent
// TLS implementation on the other side.
func TestAiosmtpdSTARTTLS(t *testing.T) {
	ca, err := mailtest.NewCA("aiosmtpd test CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.ServerCertPEM("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	certFile, keyFile := filepath.Join(tmp, "cert.pem"), filepath.Join(tmp, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "Maildir")
	port := startAiosmtpd(t, dir, "--tlscert", certFile, "--tlskey", keyFile)
	st := mail.Settings{Preset: mail.PresetCustom, Host: "127.0.0.1", Port: port, Security: mail.SecurityStartTLS,
		From: testFrom, CAPEM: ca.PEM}
	msg, err := newComposer(t, clocktest.New(t0)).Notice(testTo, mail.Notice{Kind: mail.KindTwoFADisabled, Account: "alice", At: t0})
	if err != nil {
		t.Fatal(err)
	}
	if err := mail.NewSMTPSender(staticSettings(st), mail.SMTPOptions{Timeout: 20 * time.Second}).Send(ctxTimeout(t, 30*time.Second), msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := readMaildir(t, dir)
	if len(got) != 1 {
		t.Fatalf("Maildir holds %d messages, want 1", len(got))
	}
	checkDelivered(t, got[0], t0, "turned OFF", "2026-11-23 10:00:00 UTC")

	// Without the CA the same server is refused.
	st.CAPEM = ""
	err = mail.NewSMTPSender(staticSettings(st), mail.SMTPOptions{Timeout: 20 * time.Second}).Send(ctxTimeout(t, 30*time.Second), msg)
	if mail.CodeOf(err) != mail.CodeTLSFailed {
		t.Fatalf("without ca_pem: %v, want tls_failed", err)
	}
}
