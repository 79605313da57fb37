package mail

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rknas/firmware/authd/clock"
)

// Kind says what a mail is for; it is stored in the outbox and shown to
// admins, so the values are stable.
type Kind string

// Kinds of mail: codes go out directly, notices through the outbox.
const (
	KindVerificationCode Kind = "verification_code"
	KindEmergencyCode    Kind = "emergency_code"
	KindTest             Kind = "test"

	KindTwoFAEnabled             Kind = "twofa_enabled"
	KindTwoFADisabled            Kind = "twofa_disabled"
	KindRecoveryCodeUsed         Kind = "recovery_code_used"
	KindRecoveryCodesRegenerated Kind = "recovery_codes_regenerated"
	KindTrustedDeviceAdded       Kind = "trusted_device_added"
	KindEmergencyCodeUsed        Kind = "emergency_code_used"
	KindDeviceReset              Kind = "device_reset"
	// KindSecurityEmailChanged goes to the old address when an account's
	// security email is replaced.
	KindSecurityEmailChanged Kind = "security_email_changed"
	// KindAccountLocked goes to the account's owner and the admins when
	// failed attempts lock an account.
	KindAccountLocked Kind = "account_locked"
	// KindAddressBlocked goes to the admins when failed attempts block a
	// client address.
	KindAddressBlocked Kind = "address_blocked"
	// KindPasskeyAdded and KindPasskeyRemoved go to the account's owner
	// when a passkey is added to or removed from the account.
	KindPasskeyAdded   Kind = "passkey_added"
	KindPasskeyRemoved Kind = "passkey_removed"
)

// IsNotice reports whether k is a notice kind (sent through the outbox).
func (k Kind) IsNotice() bool {
	switch k {
	case KindTwoFAEnabled, KindTwoFADisabled, KindRecoveryCodeUsed, KindRecoveryCodesRegenerated,
		KindTrustedDeviceAdded, KindEmergencyCodeUsed, KindDeviceReset, KindSecurityEmailChanged,
		KindAccountLocked, KindAddressBlocked, KindPasskeyAdded, KindPasskeyRemoved:
		return true
	}
	return false
}

func (k Kind) valid() bool {
	return k.IsNotice() || k == KindVerificationCode || k == KindEmergencyCode || k == KindTest
}

const (
	maxSubjectRunes = 200
	maxBodyBytes    = 64 << 10
	maxDeviceRunes  = 64
	maxAccountRunes = 128
	maxDetailRunes  = 200
	maxIDLen        = 64
)

// Message is one mail, ready for a Sender. The From address and the domain
// of the Message-ID come from the SMTP settings at send time; ID and Date are
// fixed when the message is built, so a retried notice keeps its Message-ID
// and a receiving server can spot a duplicate.
type Message struct {
	Kind    Kind      `json:"kind"`
	To      string    `json:"to"`
	Subject string    `json:"subject"`
	Body    string    `json:"body"` // text/plain, UTF-8, "\n" line ends
	Date    time.Time `json:"date"`
	ID      string    `json:"id"` // left part of the Message-ID
	// FromName is the display name of the sender, the device's name.
	FromName string `json:"from_name"`
}

// ErrInvalidMessage is wrapped by the errors of Message.Validate that are
// not header injection or a bad address.
var ErrInvalidMessage = errors.New("mail: invalid message")

// Validate refuses a message that is not safe to send: a bad recipient,
// CR/LF or control characters in the subject or the sender name
// (ErrHeaderInjection), invalid UTF-8, or values out of bounds.
func (m Message) Validate() error {
	if !m.Kind.valid() {
		return fmt.Errorf("%w: unknown kind %q", ErrInvalidMessage, m.Kind)
	}
	if err := ValidateAddress(m.To); err != nil {
		return fmt.Errorf("mail: recipient: %w", err)
	}
	if err := checkHeaderValue(m.Subject); err != nil {
		return fmt.Errorf("mail: subject: %w", err)
	}
	if err := checkHeaderValue(m.FromName); err != nil {
		return fmt.Errorf("mail: sender name: %w", err)
	}
	if m.Subject == "" || utf8.RuneCountInString(m.Subject) > maxSubjectRunes {
		return fmt.Errorf("%w: subject must have 1 to %d characters", ErrInvalidMessage, maxSubjectRunes)
	}
	if utf8.RuneCountInString(m.FromName) > maxDeviceRunes {
		return fmt.Errorf("%w: sender name longer than %d characters", ErrInvalidMessage, maxDeviceRunes)
	}
	if !utf8.ValidString(m.Body) || len(m.Body) > maxBodyBytes {
		return fmt.Errorf("%w: body must be valid UTF-8 of at most %d bytes", ErrInvalidMessage, maxBodyBytes)
	}
	if m.Date.IsZero() {
		return fmt.Errorf("%w: no date", ErrInvalidMessage)
	}
	if m.ID == "" || len(m.ID) > maxIDLen || strings.IndexFunc(m.ID, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) >= 0 {
		return fmt.Errorf("%w: id must be 1 to %d letters and digits", ErrInvalidMessage, maxIDLen)
	}
	return nil
}

// Notice describes a security event to tell an account's owner about.
type Notice struct {
	Kind Kind
	// Account is the login name the event concerns; empty for
	// KindDeviceReset and KindAddressBlocked.
	Account string
	// At is when it happened; zero means now.
	At time.Time
	// ClientAddr is the IP address (optionally with port) of the client that
	// caused it, if any.
	ClientAddr string
	// Detail describes the new trusted device for KindTrustedDeviceAdded,
	// e.g. "Firefox on Linux". It comes from the client, so it is cleaned of
	// control characters and shortened, not refused.
	Detail string
	// Remaining is the number of recovery codes left, for
	// KindRecoveryCodeUsed, and the number of other addresses blocked since
	// the last notice, for KindAddressBlocked.
	Remaining int
	// Lasts is how long the lock or the block lasts, for KindAccountLocked
	// and KindAddressBlocked.
	Lasts time.Duration
}

// Composer builds the mails of authd with the device's name in subject and
// body. Its methods check every input and never put a secret other than
// the code itself into a mail.
type Composer struct {
	device string
	clock  clock.Clock
}

// NewComposer returns a Composer for the device called deviceName (shown
// in subjects and bodies; at most 64 characters, no control characters).
func NewComposer(deviceName string, clk clock.Clock) (*Composer, error) {
	if deviceName == "" || utf8.RuneCountInString(deviceName) > maxDeviceRunes {
		return nil, fmt.Errorf("mail: device name must have 1 to %d characters", maxDeviceRunes)
	}
	if err := checkHeaderValue(deviceName); err != nil {
		return nil, fmt.Errorf("mail: device name: %w", err)
	}
	return &Composer{device: deviceName, clock: clk}, nil
}

// DeviceName returns the name the composer puts into mails.
func (c *Composer) DeviceName() string { return c.device }

func (c *Composer) message(kind Kind, to, subject, body string) (Message, error) {
	m := Message{
		Kind:     kind,
		To:       to,
		Subject:  fmt.Sprintf("[%s] %s", c.device, subject),
		Body:     body,
		Date:     c.clock.Now(),
		ID:       strings.ReplaceAll(rand.Text(), "=", ""),
		FromName: c.device,
	}
	if err := m.Validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}

const signature = "\n-- \nThis mail was sent automatically by %s. Replies are not read.\n"

// VerificationCode builds the mail that confirms to as the security email
// of account.
func (c *Composer) VerificationCode(to, account, code string) (Message, error) {
	if err := checkCode(code); err != nil {
		return Message{}, err
	}
	if err := checkAccount(account, true); err != nil {
		return Message{}, err
	}
	body := fmt.Sprintf("Your verification code is:\n\n    %s\n\n"+
		"Enter it on %s to confirm this address as the security email of the account %q.\n\n"+
		"If you did not ask for this, ignore this mail: nothing changes without the code.\n"+signature,
		code, c.device, account, c.device)
	return c.message(KindVerificationCode, to, "Your verification code", body)
}

// EmergencyCode builds the mail with a one-time emergency login code for
// account, requested at requestedAt from clientAddr, valid for validFor
// (authd uses 10 minutes) and usable once.
func (c *Composer) EmergencyCode(to, account, code string, requestedAt time.Time, clientAddr string, validFor time.Duration) (Message, error) {
	if err := checkCode(code); err != nil {
		return Message{}, err
	}
	if err := checkAccount(account, true); err != nil {
		return Message{}, err
	}
	client, err := cleanClientAddr(clientAddr)
	if err != nil {
		return Message{}, err
	}
	if client == "" {
		client = "an unknown address"
	}
	if validFor <= 0 {
		return Message{}, fmt.Errorf("%w: validity must be positive", ErrInvalidMessage)
	}
	body := fmt.Sprintf("An emergency login code for the account %q on %s was requested\n"+
		"on %s from the client address %s.\n\n"+
		"Your emergency code is:\n\n    %s\n\n"+
		"It is valid for %s and can be used only once.\n\n"+
		"If you did not request it, do not use it or pass it on: somebody may be trying to\n"+
		"get into your account. Change your password.\n"+signature,
		account, c.device, formatTime(requestedAt), client, code, formatDuration(validFor), c.device)
	return c.message(KindEmergencyCode, to, "Your emergency login code", body)
}

// TestMessage builds the mail of the "send a test mail" button.
func (c *Composer) TestMessage(to string) (Message, error) {
	body := fmt.Sprintf("This is a test mail from %s, sent on %s.\n\n"+
		"The SMTP settings work: security notices and login codes can reach you.\n"+signature,
		c.device, formatTime(c.clock.Now()), c.device)
	return c.message(KindTest, to, "Test mail", body)
}

// Notice builds the mail telling the owner of an account about n.
func (c *Composer) Notice(to string, n Notice) (Message, error) {
	if !n.Kind.IsNotice() {
		return Message{}, fmt.Errorf("%w: %q is not a notice kind", ErrInvalidMessage, n.Kind)
	}
	if err := checkAccount(n.Account, n.Kind != KindDeviceReset && n.Kind != KindAddressBlocked); err != nil {
		return Message{}, err
	}
	client, err := cleanClientAddr(n.ClientAddr)
	if err != nil {
		return Message{}, err
	}
	at := n.At
	if at.IsZero() {
		at = c.clock.Now()
	}
	when := formatTime(at)
	from := ""
	if client != "" {
		from = " from the client address " + client
	}
	const notYou = "If this was not you, sign in and check the account's security settings at once,\n" +
		"or ask the administrator for help.\n"
	var subject, what string
	switch n.Kind {
	case KindTwoFAEnabled:
		subject = "Two-factor authentication turned on"
		what = fmt.Sprintf("Two-factor authentication was turned on for the account %q on %s\non %s%s.\n\n%s",
			n.Account, c.device, when, from, notYou)
	case KindTwoFADisabled:
		subject = "Two-factor authentication turned off"
		what = fmt.Sprintf("Two-factor authentication was turned OFF for the account %q on %s\non %s%s.\n"+
			"The account is now protected by its password alone.\n\n%s",
			n.Account, c.device, when, from, notYou)
	case KindRecoveryCodeUsed:
		subject = "A recovery code was used"
		what = fmt.Sprintf("A recovery code was used to sign in to the account %q on %s\non %s%s.\n"+
			"Recovery codes left: %d.\n\n%s", n.Account, c.device, when, from, max(n.Remaining, 0), notYou)
	case KindRecoveryCodesRegenerated:
		subject = "New recovery codes were created"
		what = fmt.Sprintf("New recovery codes were created for the account %q on %s\non %s%s.\n"+
			"The old codes no longer work.\n\n%s", n.Account, c.device, when, from, notYou)
	case KindTrustedDeviceAdded:
		subject = "New trusted device"
		device := cleanDetail(n.Detail)
		if device == "" {
			device = "an unnamed device"
		}
		what = fmt.Sprintf("A new trusted device was added to the account %q on %s\non %s%s:\n\n    %s\n\n"+
			"It can sign in without a second factor until it expires or is removed.\n\n%s",
			n.Account, c.device, when, from, device, notYou)
	case KindPasskeyAdded, KindPasskeyRemoved:
		name := cleanDetail(n.Detail)
		if name == "" {
			name = "a passkey"
		}
		verb := "added to"
		subject = "A passkey was added"
		if n.Kind == KindPasskeyRemoved {
			subject, verb = "A passkey was removed", "removed from"
		}
		what = fmt.Sprintf("A passkey was %s the account %q on %s\non %s%s:\n\n    %s\n\n%s",
			verb, n.Account, c.device, when, from, name, notYou)
	case KindEmergencyCodeUsed:
		subject = "An emergency login code was used"
		what = fmt.Sprintf("An emergency login code was used to sign in to the account %q on %s\non %s%s.\n\n%s",
			n.Account, c.device, when, from, notYou)
	case KindSecurityEmailChanged:
		subject = "The security email address was changed"
		what = fmt.Sprintf("The security email address of the account %q on %s was changed\non %s%s, to %s.\n"+
			"Security notices and emergency codes now go there, not to this address.\n\n%s",
			n.Account, c.device, when, from, cleanDetail(n.Detail), notYou)
	case KindAccountLocked:
		subject = "An account was locked after failed sign-in attempts"
		what = fmt.Sprintf("The account %q on %s was locked on %s for %s after too many failed\n"+
			"sign-in attempts from addresses that are not on the allow-list (the last%s).\n\n"+
			"While it is locked the owner can still sign in from a trusted device, from an address\n"+
			"on the allow-list or at the device's console; an administrator can lift the lock\n"+
			"under Security. If nobody you know mistyped a password, somebody is guessing it.\n",
			n.Account, c.device, when, formatDuration(n.Lasts.Round(time.Second)), from)
	case KindAddressBlocked:
		subject = "A client address was blocked after failed sign-in attempts"
		address := cleanDetail(n.Detail)
		if address == "" {
			address = "an unknown address"
		}
		more := ""
		if n.Remaining > 0 {
			more = fmt.Sprintf("\n%d other addresses were blocked since the last notice of this kind.\n", n.Remaining)
		}
		what = fmt.Sprintf("The client address %s was blocked on %s on %s for %s\n"+
			"after too many failed sign-in attempts.\n%s\n"+
			"Administrators see every block, and can lift one, under Security; addresses on\n"+
			"the allow-list are never blocked.\n",
			address, c.device, when, formatDuration(n.Lasts.Round(time.Second)), more)
	case KindDeviceReset:
		subject = "The device was reset with its RESET button"
		what = fmt.Sprintf("%s was reset with its physical RESET button on %s.\n"+
			"The admin account is back to its default password and the network to DHCP.\n"+
			"Other accounts and data are unchanged.\n\n"+
			"If nobody you trust did this, somebody had physical access to the device.\n",
			c.device, when)
	}
	return c.message(n.Kind, to, subject, what+fmt.Sprintf(signature, c.device))
}

// checkCode accepts the short codes authd generates: 4 to 64 letters,
// digits and hyphens. Anything else would be a bug upstream, and refusing
// it keeps arbitrary text out of the mail.
func checkCode(code string) error {
	if len(code) < 4 || len(code) > 64 || strings.IndexFunc(code, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
	}) >= 0 {
		return fmt.Errorf("%w: code must be 4 to 64 letters, digits or hyphens", ErrInvalidMessage)
	}
	return nil
}

func checkAccount(account string, required bool) error {
	if account == "" && required {
		return fmt.Errorf("%w: account name required", ErrInvalidMessage)
	}
	if utf8.RuneCountInString(account) > maxAccountRunes {
		return fmt.Errorf("%w: account name longer than %d characters", ErrInvalidMessage, maxAccountRunes)
	}
	if err := checkHeaderValue(account); err != nil {
		return fmt.Errorf("mail: account name: %w", err)
	}
	return nil
}

// cleanClientAddr returns the IP of "ip" or "ip:port", or "" for "".
func cleanClientAddr(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().String(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String(), nil
	}
	return "", fmt.Errorf("%w: client address %q is not an IP address", ErrInvalidMessage, s)
}

// cleanDetail makes client-supplied text safe for a body line.
func cleanDetail(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > maxDetailRunes {
		s = string([]rune(s)[:maxDetailRunes]) + "…"
	}
	return s
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

func formatDuration(d time.Duration) string {
	if d%time.Minute == 0 {
		if m := int(d / time.Minute); m == 1 {
			return "1 minute"
		} else {
			return fmt.Sprintf("%d minutes", m)
		}
	}
	return d.String()
}
