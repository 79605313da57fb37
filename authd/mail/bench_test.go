package mail_test

import (
	"context"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/mail"
	"github.com/rknas/firmware/authd/mail/mailtest"
)

// BenchmarkSend measures one complete delivery (connect, TLS, AUTH,
// message, QUIT) to the loopback test server.
func BenchmarkSend(b *testing.B) {
	for _, mode := range []struct {
		name     string
		mode     mailtest.Mode
		security string
	}{
		{"starttls", mailtest.ModeStartTLS, mail.SecurityStartTLS},
		{"tls", mailtest.ModeImplicitTLS, mail.SecurityTLS},
	} {
		b.Run(mode.name, func(b *testing.B) {
			srv, err := mailtest.Start(mailtest.Options{Mode: mode.mode, Username: testUser, Password: testPassword})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			s := mail.NewSMTPSender(staticSettings(settingsFor(srv, mode.security)), mail.SMTPOptions{})
			c, err := mail.NewComposer(testDevice, clocktest.New(t0))
			if err != nil {
				b.Fatal(err)
			}
			msg, err := c.VerificationCode(testTo, "alice", "123456")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			for b.Loop() {
				if err := s.Send(ctx, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
