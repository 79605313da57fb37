package mail_test

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/quotedprintable"
	netmail "net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/mail"
	"github.com/rknas/firmware/authd/mail/mailtest"
	"github.com/rknas/firmware/internal/porttest"
)

const (
	testUser     = "nas@example.com"
	testPassword = "s3cret-Pa55word!"
	testFrom     = "nas@example.com"
	testTo       = "alice@example.com"
	testDevice   = "Büro-NAS"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// staticSettings is a SettingsSource that always returns the same settings.
type staticSettings mail.Settings

func (s staticSettings) Current() (mail.Settings, error) { return mail.Settings(s), nil }

func startServer(t *testing.T, opt mailtest.Options) *mailtest.Server {
	t.Helper()
	s, err := mailtest.Start(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// settingsFor returns custom settings pointing at s, trusting its CA.
func settingsFor(s *mailtest.Server, security string) mail.Settings {
	st := mail.Settings{
		Preset: mail.PresetCustom, Host: s.Host(), Port: s.Port(), Security: security,
		Username: testUser, Password: testPassword, From: testFrom, CAPEM: s.CA().PEM,
	}
	return st
}

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) int { return porttest.Free(t) }

func newComposer(t *testing.T, clk *clocktest.Clock) *mail.Composer {
	t.Helper()
	c, err := mail.NewComposer(testDevice, clk)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// parsed is a delivered message, decoded.
type parsed struct {
	Header  netmail.Header
	Subject string
	Body    string
}

// parseDelivered parses raw RFC 5322 data and decodes subject and
// quoted-printable body.
func parseDelivered(t *testing.T, raw []byte) parsed {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("delivered message does not parse: %v\n%s", err, raw)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("subject does not decode: %v", err)
	}
	var body io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("body does not decode: %v", err)
	}
	return parsed{Header: msg.Header, Subject: subject, Body: string(b)}
}

func itoa(n int) string { return strconv.Itoa(n) }
