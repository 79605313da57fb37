package mail_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/mail"
)

func TestNoticeTexts(t *testing.T) {
	clk := clocktest.New(t0)
	c := newComposer(t, clk)
	for _, tt := range []struct {
		n    mail.Notice
		want []string
	}{
		{mail.Notice{Kind: mail.KindTwoFAEnabled, Account: "alice", ClientAddr: "::ffff:192.0.2.1"}, []string{"turned on", "192.0.2.1", `"alice"`}},
		{mail.Notice{Kind: mail.KindTwoFADisabled, Account: "alice"}, []string{"turned OFF"}},
		{mail.Notice{Kind: mail.KindRecoveryCodeUsed, Account: "alice", Remaining: 4}, []string{"Recovery codes left: 4"}},
		{mail.Notice{Kind: mail.KindRecoveryCodesRegenerated, Account: "alice"}, []string{"old codes no longer work"}},
		{mail.Notice{Kind: mail.KindTrustedDeviceAdded, Account: "alice", Detail: "Firefox\r\nBcc: x on Linux\x00"}, []string{"Firefox  Bcc: x on Linux"}},
		{mail.Notice{Kind: mail.KindEmergencyCodeUsed, Account: "alice", At: t0.Add(-time.Hour)}, []string{"emergency login code was used", "09:00:00 UTC"}},
		{mail.Notice{Kind: mail.KindDeviceReset}, []string{"RESET button", "DHCP"}},
		{mail.Notice{Kind: mail.KindPasskeyAdded, Account: "alice", Detail: "Laptop key"}, []string{"passkey was added to the account \"alice\"", "Laptop key"}},
		{mail.Notice{Kind: mail.KindPasskeyRemoved, Account: "alice", Detail: "Old key"}, []string{"passkey was removed from the account", "Old key"}},
		{mail.Notice{Kind: mail.KindAccountLocked, Account: "alice", ClientAddr: "203.0.113.9", Lasts: 15 * time.Minute},
			[]string{`"alice"`, "for 15 minutes", "the last from the client address 203.0.113.9", "trusted device", "allow-list"}},
		{mail.Notice{Kind: mail.KindAddressBlocked, Detail: "2001:db8:1:2::/64", Lasts: 5 * time.Minute, Remaining: 41},
			[]string{"2001:db8:1:2::/64 was blocked", "for 5 minutes", "41 other addresses"}},
	} {
		m, err := c.Notice(testTo, tt.n)
		if err != nil {
			t.Errorf("%s: %v", tt.n.Kind, err)
			continue
		}
		if m.Kind != tt.n.Kind || !strings.Contains(m.Subject, testDevice) || !strings.Contains(m.Body, testDevice) {
			t.Errorf("%s: %+v", tt.n.Kind, m)
		}
		for _, w := range tt.want {
			if !strings.Contains(m.Body, w) {
				t.Errorf("%s body lacks %q:\n%s", tt.n.Kind, w, m.Body)
			}
		}
		if strings.Contains(m.Body, "\r") {
			t.Errorf("%s body holds CR", tt.n.Kind)
		}
	}
	for _, bad := range []mail.Notice{
		{Kind: mail.KindVerificationCode, Account: "alice"},
		{Kind: mail.KindTwoFAEnabled},
		{Kind: mail.KindTwoFAEnabled, Account: "alice", ClientAddr: "not-an-ip"},
	} {
		if _, err := c.Notice(testTo, bad); mail.CodeOf(err) != mail.CodeInvalidMessage {
			t.Errorf("Notice(%+v) = %v, want invalid_message", bad, err)
		}
	}
}
