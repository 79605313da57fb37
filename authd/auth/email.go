package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/rknas/firmware/authd/mail"
	"github.com/rknas/firmware/authd/session"
	"github.com/rknas/firmware/authd/store"
)

// Limits of mailed codes.
const (
	// EmergencyValidity is how long an emailed emergency code works.
	EmergencyValidity = 10 * time.Minute
	// MaxEmergencyPerDay caps emergency codes per account in 24 hours.
	MaxEmergencyPerDay = 5
	// MaxMailsPerDay caps all mailed codes per account in 24 hours, so the
	// device cannot be made to spam an inbox.
	MaxMailsPerDay = 10
	// EmailCodeValidity is how long a verification code works.
	EmailCodeValidity = 30 * time.Minute
	// MaxEmailCodeTries is how many wrong verification codes void one.
	MaxEmailCodeTries = 5
)

// CodeMailer sends codes by mail, synchronously; mail.Mailer implements it.
type CodeMailer interface {
	SendVerificationCode(ctx context.Context, to, account, code string) error
	SendEmergencyCode(ctx context.Context, to, account, code string, requestedAt time.Time, clientAddr string, validFor time.Duration) error
}

// SetCodeMailer connects mailed codes (nil: the email method is off).
func (s *Service) SetCodeMailer(m CodeMailer) { s.mailer = m }

// CodeMailFailed is the error code when a code could not be mailed.
const CodeMailFailed = "mail_failed"

func errMail(err error) *Error {
	msg := "the mail could not be sent"
	var se *mail.SendError
	if errors.As(err, &se) {
		msg += ": " + se.Message()
	} else if errors.Is(err, mail.ErrNotConfigured) {
		msg += ": no mail server is set up on this device (ask an administrator)"
	}
	return &Error{Code: CodeMailFailed, Message: msg, cause: err}
}

// errMailCap answers a mail cap with the time until the oldest send of the
// day leaves the window.
func errMailCap(msg string, sent []time.Time, now time.Time) *Error {
	wait := time.Hour
	if len(sent) > 0 {
		wait = max(24*time.Hour-now.Sub(sent[0]), time.Second)
	}
	return &Error{Code: CodeLocked, Message: fmt.Sprintf("%s; try again in %s", msg, wait.Round(time.Minute)), RetryAfter: wait}
}

// unrecordMail takes back the send recorded at t when the mail did not go
// out, so a mail outage does not use up the day's codes.
func (s *Service) unrecordMail(user string, t time.Time, emergency bool) {
	drop := func(ts []time.Time) []time.Time {
		for i, x := range ts {
			if x.Equal(t) {
				return append(ts[:i:i], ts[i+1:]...)
			}
		}
		return ts
	}
	_, err := s.updateUser(user, func(_ *store.Tx, u *store.User) error {
		u.MailsSent = drop(u.MailsSent)
		if emergency {
			u.EmergencySent = drop(u.EmergencySent)
		}
		return nil
	})
	if err != nil {
		s.log.Warn("mail count not corrected", "user", user, "err", err)
	}
}

// randomDigits returns n uniformly random decimal digits.
func randomDigits(n int) (string, error) {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	v, err := rand.Int(rand.Reader, max)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%0*d", n, v), nil
}

// recentMails keeps the send times of the last 24 hours.
func recentMails(ts []time.Time, now time.Time) []time.Time {
	out := ts[:0:0]
	for _, t := range ts {
		if now.Sub(t) < 24*time.Hour && !t.After(now) {
			out = append(out, t)
		}
	}
	return out
}

// SetSecurityEmail starts the verification of a new security email for the
// account: a 6-digit code is mailed to it. The address is used for
// emergency codes and notices only once verified. It needs the account's
// password, and on an account with a second factor a fresh step-up: the
// address receives emergency login codes, so a stolen session must not be
// able to point it elsewhere.
func (s *Service) SetSecurityEmail(ctx context.Context, sess session.Session, password, email string, c Client) (string, error) {
	user := sess.User
	if s.mailer == nil {
		return "", errMail(mail.ErrNotConfigured)
	}
	email = strings.TrimSpace(email)
	if err := mail.ValidateAddress(email); err != nil {
		return "", errBadRequest("email: %v", err)
	}
	u, err := s.User(user)
	if err != nil {
		return "", err
	}
	if password == "" {
		return "", errBadRequest("password: required to change the security email")
	}
	if err := s.checkFactorChange(ctx, sess, u, password, c); err != nil {
		return "", err
	}
	code, err := randomDigits(6)
	if err != nil {
		return "", errInternal(err)
	}
	now := s.clock.Now()
	var verr error
	_, err = s.updateUser(user, func(_ *store.Tx, u *store.User) error {
		u.MailsSent = recentMails(u.MailsSent, now)
		if len(u.MailsSent) >= MaxMailsPerDay {
			verr = errMailCap(fmt.Sprintf("at most %d mails a day go out for one account", MaxMailsPerDay), u.MailsSent, now)
			return verr
		}
		u.MailsSent = append(u.MailsSent, now)
		u.EmailPending, u.EmailCodeHash, u.EmailCodeExpires, u.EmailCodeTries = email, hashEmergency("verify:"+code), now.Add(EmailCodeValidity), 0
		return nil
	})
	if verr != nil {
		return "", verr
	}
	if err != nil {
		return "", asErr(err)
	}
	if err := s.mailer.SendVerificationCode(ctx, email, user, code); err != nil {
		s.log.Warn("verification mail failed", "user", user, "err", err)
		s.unrecordMail(user, now, false)
		return "", errMail(err)
	}
	s.audit(store.AuditEntry{Event: "security_email_verification_sent", User: user, Client: c.String(), Detail: mail.MaskAddress(email)})
	return mail.MaskAddress(email), nil
}

// VerifySecurityEmail confirms the pending security email with its code. A
// notice about the change goes to the address it replaces.
func (s *Service) VerifySecurityEmail(user, code string, c Client) (string, error) {
	g, err := s.begin(c, s.guard(c, user)...)
	if err != nil {
		return "", err
	}
	now := s.clock.Now()
	var verr error
	var old store.User
	u, err := s.updateUser(user, func(tx *store.Tx, u *store.User) error {
		old = *u
		if u.EmailPending == "" || !now.Before(u.EmailCodeExpires) || u.EmailCodeTries >= MaxEmailCodeTries {
			verr = newErr(CodeChallengeExpired, "no verification is pending or it has expired; enter the address again")
			return nil
		}
		if subtle.ConstantTimeCompare([]byte(hashEmergency("verify:"+strings.TrimSpace(code))), []byte(u.EmailCodeHash)) != 1 {
			u.EmailCodeTries++
			verr = errInvalidCode
			return nil // keep the counted try
		}
		u.SecurityEmail, u.SecurityEmailVerified = u.EmailPending, true
		u.EmailPending, u.EmailCodeHash, u.EmailCodeExpires, u.EmailCodeTries = "", "", time.Time{}, 0
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: "security_email_verified", User: u.Name, Client: c.String(), Detail: mail.MaskAddress(u.SecurityEmail)})
	})
	if verr == errInvalidCode {
		g.fail()
	} else {
		g.release()
	}
	if err != nil {
		return "", asErr(err)
	}
	if verr != nil {
		return "", verr
	}
	if old.SecurityEmailVerified && old.SecurityEmail != "" && old.SecurityEmail != u.SecurityEmail {
		s.notify(old, "security_email_changed", map[string]string{"client": c.String(), "new": mail.MaskAddress(u.SecurityEmail)})
	}
	return mail.MaskAddress(u.SecurityEmail), nil
}

// SendEmergencyCode mails an 8-digit one-time code for the challenge to the
// account's verified security email and returns the masked address.
func (s *Service) SendEmergencyCode(ctx context.Context, challenge string, c Client) (string, error) {
	ch, err := s.sessions.Challenge(challenge, c.Key())
	if err != nil {
		return "", errChallengeExpired
	}
	// Sending asks nothing of the client: a check is enough.
	for _, l := range s.guard(c, ch.User) {
		if wait := l.r.Check(l.key); wait > 0 {
			return "", errLocked(l.kind, wait)
		}
	}
	if s.mailer == nil {
		return "", errMail(mail.ErrNotConfigured)
	}
	code, err := randomDigits(8)
	if err != nil {
		return "", errInternal(err)
	}
	now := s.clock.Now()
	var verr error
	u, err := s.updateUser(ch.User, func(_ *store.Tx, u *store.User) error {
		if !u.SecurityEmailVerified || u.SecurityEmail == "" {
			verr = newErr(CodeBadRequest, "this account has no verified security email; use a recovery code or ask an administrator")
			return verr
		}
		u.MailsSent = recentMails(u.MailsSent, now)
		u.EmergencySent = recentMails(u.EmergencySent, now)
		switch {
		case len(u.EmergencySent) >= MaxEmergencyPerDay:
			verr = errMailCap(fmt.Sprintf("at most %d emergency codes a day; use a recovery code", MaxEmergencyPerDay), u.EmergencySent, now)
		case len(u.MailsSent) >= MaxMailsPerDay:
			verr = errMailCap(fmt.Sprintf("at most %d mails a day go out for one account; use a recovery code", MaxMailsPerDay), u.MailsSent, now)
		}
		if verr != nil {
			return verr
		}
		u.MailsSent = append(u.MailsSent, now)
		u.EmergencySent = append(u.EmergencySent, now)
		return nil
	})
	if verr != nil {
		return "", verr
	}
	if err != nil {
		return "", asErr(err)
	}
	if !s.sessions.SetEmergency(challenge, hashEmergency(code), now.Add(EmergencyValidity)) {
		return "", errChallengeExpired
	}
	if err := s.mailer.SendEmergencyCode(ctx, u.SecurityEmail, u.Name, code, now, c.String(), EmergencyValidity); err != nil {
		// The code that was mailed before, if any, stays good.
		s.sessions.SetEmergency(challenge, ch.EmergencyHash, ch.EmergencyUntil)
		s.unrecordMail(u.Name, now, true)
		s.log.Warn("emergency code mail failed", "user", u.Name, "err", err)
		return "", errMail(err)
	}
	masked := mail.MaskAddress(u.SecurityEmail)
	s.audit(store.AuditEntry{Event: "emergency_code_sent", User: u.Name, Client: c.String(), Detail: masked})
	return masked, nil
}

// MailNotifier turns the auth core's security events into notices in the
// mail package's persistent outbox.
type MailNotifier struct {
	Mailer *mail.Mailer
	Log    *slog.Logger
}

var noticeKinds = map[string]mail.Kind{
	"2fa_enabled":                mail.KindTwoFAEnabled,
	"2fa_disabled":               mail.KindTwoFADisabled,
	"recovery_code_used":         mail.KindRecoveryCodeUsed,
	"recovery_codes_regenerated": mail.KindRecoveryCodesRegenerated,
	"trusted_device_added":       mail.KindTrustedDeviceAdded,
	"emergency_code_used":        mail.KindEmergencyCodeUsed,
	"physical_reset":             mail.KindDeviceReset,
	"security_email_changed":     mail.KindSecurityEmailChanged,
	"account_locked":             mail.KindAccountLocked,
	"client_blocked":             mail.KindAddressBlocked,
	"passkey_added":              mail.KindPasskeyAdded,
	"passkey_removed":            mail.KindPasskeyRemoved,
}

// Notify queues the notice; a failure is logged and never blocks a login.
func (n MailNotifier) Notify(u store.User, event string, details map[string]string) {
	kind, ok := noticeKinds[event]
	if !ok {
		n.Log.Warn("no mail notice for event", "event", event)
		return
	}
	notice := mail.Notice{Kind: kind, Account: u.Name, ClientAddr: details["client"], Detail: details["device"]}
	switch kind {
	case mail.KindSecurityEmailChanged:
		notice.Detail = details["new"]
	case mail.KindAccountLocked:
		notice.Account = details["account"]
	case mail.KindPasskeyAdded, mail.KindPasskeyRemoved:
		notice.Detail = details["name"]
	case mail.KindAddressBlocked:
		notice.Account, notice.ClientAddr, notice.Detail = "", "", details["key"]
		if more, err := strconv.Atoi(details["more"]); err == nil {
			notice.Remaining = more
		}
	}
	if lasts, err := time.ParseDuration(details["for"]); err == nil {
		notice.Lasts = lasts
	}
	if left, err := strconv.Atoi(details["left"]); err == nil {
		notice.Remaining = left
	}
	if _, err := n.Mailer.Notify(u.SecurityEmail, notice); err != nil {
		n.Log.Warn("security notice not queued", "user", u.Name, "event", event, "err", err)
	}
}
