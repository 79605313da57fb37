package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/session"
	"github.com/rknas/firmware/authd/store"
	"github.com/rknas/firmware/authd/twofa"
)

// checkPassword verifies the current password of u as part of a sensitive
// change, throttled like a login: the attempt counts from its start.
func (s *Service) checkPassword(ctx context.Context, u store.User, password string, c Client) error {
	g, err := s.begin(c, s.guard(c, u.Name)...)
	if err != nil {
		return err
	}
	return s.verifyPassword(ctx, g, u, password, c)
}

// verifyPassword checks the password within the attempt g: a wrong one
// fails g, anything else leaves it to the caller.
func (s *Service) verifyPassword(ctx context.Context, g *gate, u store.User, password string, c Client) error {
	// Only signed-in users check their password here: urgent.
	ok, err := s.hasher.Verify(account.Urgent(ctx), password, u.PasswordHash)
	if err != nil {
		g.release()
		if errors.Is(err, account.ErrBusy) {
			return errBusy()
		}
		return errInternal(err)
	}
	if !ok {
		g.fail()
		s.audit(store.AuditEntry{Event: "password_check_failed", User: u.Name, Client: c.String()})
		return newErr(CodeInvalidCredentials, "the current password is wrong")
	}
	g.release()
	return nil
}

// ChangePassword sets a new password for the session's account, ends its
// other sessions, lifts a password_change session to what comes next, and
// returns the status and the session's new token (the old one ends).
// With revokeAppPasswords, the account's app passwords go too (the owner
// fears they leaked with the password); they stay otherwise, so a password
// change does not break every program that uses one.
func (s *Service) ChangePassword(ctx context.Context, token string, sess session.Session, current, next string, revokeAppPasswords bool, c Client) (string, string, error) {
	u, err := s.User(sess.User)
	if err != nil {
		return "", "", err
	}
	if err := s.checkPassword(ctx, u, current, c); err != nil {
		return "", "", err
	}
	if err := account.CheckNewPassword(next, u.Name, s.defaultPasswordFor(u.Name)); err != nil {
		return "", "", errBadRequest("new_password: %s", err.Error())
	}
	hash, err := s.hasher.Hash(account.Urgent(ctx), next)
	if errors.Is(err, account.ErrBusy) {
		return "", "", errBusy()
	}
	if err != nil {
		return "", "", errInternal(err)
	}
	now := s.clock.Now()
	checked := u.PasswordHash
	var verr error
	u, err = s.updateUser(u.Name, func(tx *store.Tx, u *store.User) error {
		if u.PasswordHash != checked {
			// Another request changed it since current was checked:
			// current is no longer the password, and of two changes
			// made at once only the first may land.
			verr = newErr(CodeInvalidCredentials, "the password was changed meanwhile by another request: current_password is no longer it")
			return verr
		}
		u.PasswordHash, u.MustChangePassword, u.PasswordChanged = hash, false, now
		if revokeAppPasswords {
			if err := deleteAppPasswords(tx, u.Name, now, c, "with the password change"); err != nil {
				return err
			}
		}
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: "password_changed", User: u.Name, Client: c.String()})
	})
	if verr != nil {
		return "", "", verr
	}
	if err != nil {
		return "", "", errInternal(err)
	}
	s.sessions.RevokeUser(u.Name, token)
	return s.nextKind(u, token)
}

// nextKind moves the session on to what its account may now do (a
// restricted one once its condition is met) under a new token, and returns
// the resulting login status and the token. Whoever held the old token,
// which ends here, holds nothing.
func (s *Service) nextKind(u store.User, token string) (string, string, error) {
	kind, status, err := s.restriction(u)
	if err != nil {
		return "", "", err
	}
	next, _, ok := s.sessions.Rotate(token, kind)
	if !ok {
		return "", "", errUnauthorized
	}
	return status, next, nil
}

// restriction says what a session of u may do, and the login status that
// tells the client: a password change first, then enrolment if the policy
// requires 2FA, else everything.
func (s *Service) restriction(u store.User) (session.Kind, string, error) {
	policy, err := s.policy()
	if err != nil {
		return "", "", errInternal(err)
	}
	switch {
	case u.MustChangePassword:
		return session.PasswordChange, StatusPasswordChangeRequired, nil
	case policy.Requires(u) && !u.HasSecondFactor():
		return session.Enroll, StatusEnrollRequired, nil
	}
	return session.Full, StatusOK, nil
}

// policy reads the mandatory-2FA policy.
func (s *Service) policy() (store.Policy, error) { return s.store.Policy() }

// Enroll starts an enrolment: a new key, pending until a code confirms it.
// From a full session it needs the password: turning 2FA on ends the
// account's other sessions, so a stolen session must not be able to enrol
// its own authenticator and lock the owner out. An enroll session (just
// after the password, required by the policy) needs none.
func (s *Service) Enroll(ctx context.Context, sess session.Session, password string, c Client) (twofa.Enrollment, error) {
	u, err := s.User(sess.User)
	if err != nil {
		return twofa.Enrollment{}, err
	}
	if u.TOTP.Enabled {
		return twofa.Enrollment{}, newErr(CodeConflict, "two-factor authentication is already on; turn it off first to enrol a new authenticator")
	}
	if sess.Kind == session.Full {
		if password == "" {
			return twofa.Enrollment{}, errBadRequest("password: required to turn on two-factor authentication")
		}
		if err := s.checkFactorChange(ctx, sess, u, password, c); err != nil {
			return twofa.Enrollment{}, err
		}
	}
	e, err := twofa.NewEnrollment(s.cfg.DeviceName, u.Name)
	if err != nil {
		return e, errInternal(err)
	}
	now := s.clock.Now()
	_, err = s.updateUser(u.Name, func(_ *store.Tx, u *store.User) error {
		u.TOTP.PendingSecret, u.TOTP.PendingCreated = e.Secret, now
		return nil
	})
	if err != nil {
		return e, errInternal(err)
	}
	return e, nil
}

// VerifyEnroll confirms the pending key with a code, turns 2FA on, ends the
// account's other sessions and returns fresh recovery codes, the status and
// the session's new token.
func (s *Service) VerifyEnroll(ctx context.Context, token string, user, code string, c Client) ([]string, string, string, error) {
	g, err := s.begin(c, s.guard(c, user)...)
	if err != nil {
		return nil, "", "", err
	}
	codes, hashes, err := twofa.NewRecoveryCodes()
	if err != nil {
		g.release()
		return nil, "", "", errInternal(err)
	}
	now := s.clock.Now()
	var verr error
	u, err := s.updateUser(user, func(tx *store.Tx, u *store.User) error {
		switch {
		case u.TOTP.Enabled:
			verr = newErr(CodeConflict, "two-factor authentication is already on")
		case u.TOTP.PendingSecret == "" || now.Sub(u.TOTP.PendingCreated) > s.cfg.EnrollTTL || now.Before(u.TOTP.PendingCreated.Add(-s.cfg.EnrollTTL)):
			verr = newErr(CodeChallengeExpired, "no enrolment is pending or it has expired; start again")
		}
		if verr != nil {
			return verr
		}
		step, err := twofa.Verify(u.TOTP.PendingSecret, code, now, 0)
		if err != nil {
			verr = errInvalidCode
			return verr
		}
		u.TOTP = store.TOTP{Enabled: true, Secret: u.TOTP.PendingSecret, LastStep: step, RecoveryCodes: hashes, EnabledAt: now}
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: "2fa_enabled", User: u.Name, Client: c.String()})
	})
	if verr == errInvalidCode {
		g.fail()
		if s.clockSuspect() {
			return nil, "", "", errClock
		}
		return nil, "", "", verr
	}
	g.release()
	if verr != nil {
		return nil, "", "", verr
	}
	if err != nil {
		return nil, "", "", errInternal(err)
	}
	s.sessions.RevokeUser(u.Name, token)
	status, next, err := s.nextKind(u, token)
	s.notify(u, "2fa_enabled", map[string]string{"client": c.String()})
	return codes, status, next, err
}

// Disable2FA turns off the account's own 2FA; it needs the password and a
// current code (or a recovery code), checked as one throttled attempt. It
// returns the status and the session's new token.
func (s *Service) Disable2FA(ctx context.Context, token string, user, password, code string, c Client) (string, string, error) {
	u, err := s.User(user)
	if err != nil {
		return "", "", err
	}
	if !u.TOTP.Enabled {
		return "", "", newErr(CodeConflict, "two-factor authentication is not on")
	}
	g, err := s.begin(c, s.guard(c, user)...)
	if err != nil {
		return "", "", err
	}
	ok, err := s.hasher.Verify(account.Urgent(ctx), password, u.PasswordHash) // a signed-in user's
	if err != nil {
		g.release()
		if errors.Is(err, account.ErrBusy) {
			return "", "", errBusy()
		}
		return "", "", errInternal(err)
	}
	if !ok {
		g.fail()
		s.audit(store.AuditEntry{Event: "password_check_failed", User: u.Name, Client: c.String()})
		return "", "", newErr(CodeInvalidCredentials, "the current password is wrong")
	}
	now := s.clock.Now()
	var verr error
	u, err = s.updateUser(user, func(tx *store.Tx, u *store.User) error {
		// The code is spent with the rest of the second factor.
		if _, e := spendSecondFactor(u, code, now); e != nil {
			verr = e
			return verr
		}
		u.TOTP = store.TOTP{}
		if _, err := tx.DeleteDevices(u.Name); err != nil {
			return err
		}
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: "2fa_disabled", User: u.Name, Client: c.String(), Detail: "by the account itself"})
	})
	if verr != nil {
		g.fail()
		if verr == errInvalidCode && s.clockSuspect() {
			return "", "", errClock
		}
		return "", "", verr
	}
	g.release()
	if err != nil {
		return "", "", errInternal(err)
	}
	s.sessions.RevokeUser(u.Name, token)
	s.notify(u, "2fa_disabled", map[string]string{"client": c.String(), "by": u.Name})
	return s.nextKind(u, token)
}

// RegenerateRecoveryCodes voids the old recovery codes and returns new ones;
// the account's other sessions end. It needs a fresh step-up (made with the
// second factor) and the password again, so a stolen session cannot mint
// codes of its own.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, token string, sess session.Session, password string, c Client) ([]string, error) {
	u, err := s.User(sess.User)
	if err != nil {
		return nil, err
	}
	user := u.Name
	if err := s.checkFactorChange(ctx, sess, u, password, c); err != nil {
		return nil, err
	}
	codes, hashes, err := twofa.NewRecoveryCodes()
	if err != nil {
		return nil, errInternal(err)
	}
	now := s.clock.Now()
	var verr error
	u, err = s.updateUser(user, func(tx *store.Tx, u *store.User) error {
		if !u.TOTP.Enabled {
			verr = newErr(CodeConflict, "two-factor authentication is not on")
			return verr
		}
		u.TOTP.RecoveryCodes = hashes
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: "recovery_codes_regenerated", User: u.Name, Client: c.String()})
	})
	if verr != nil {
		return nil, verr
	}
	if err != nil {
		return nil, errInternal(fmt.Errorf("regenerate recovery codes: %w", err))
	}
	s.sessions.RevokeUser(u.Name, token)
	s.notify(u, "recovery_codes_regenerated", map[string]string{"client": c.String()})
	return codes, nil
}

// StepUp checks the session's password again, and a code when the account
// uses two-factor authentication (a TOTP code, never accepted twice, or a
// recovery code, used up), as one throttled attempt. On success the session
// may make sensitive changes for five minutes, under a new token, which it
// returns.
//
// An account with passkeys may answer with a passkey (from
// BeginPasskeyStepUp) instead of a code; one with passkeys and no
// authenticator app must.
func (s *Service) StepUp(ctx context.Context, token string, sess session.Session, password, code string, passkey *PasskeyAnswer, c Client) (string, error) {
	u, err := s.User(sess.User)
	if err != nil {
		return "", err
	}
	usePasskey := passkey != nil && code == "" && len(u.Passkeys) > 0
	switch {
	case u.HasSecondFactor() && !u.TOTP.Enabled && !usePasskey:
		// A passkey alone: no code can stand in for it.
		return "", errBadRequest("passkey: required, as two-factor authentication is on")
	case u.HasSecondFactor() && code == "" && !usePasskey:
		return "", errBadRequest("code: required, as two-factor authentication is on")
	}
	if len(code) > 64 {
		return "", errBadRequest("code: longer than 64 characters")
	}
	g, err := s.begin(c, s.guard(c, u.Name)...)
	if err != nil {
		return "", err
	}
	ok, err := s.hasher.Verify(account.Urgent(ctx), password, u.PasswordHash) // a signed-in user's
	if err != nil {
		g.release()
		if errors.Is(err, account.ErrBusy) {
			return "", errBusy()
		}
		return "", errInternal(err)
	}
	if !ok {
		g.fail()
		s.audit(store.AuditEntry{Event: "step_up_failed", User: u.Name, Client: c.String(), Detail: "wrong password"})
		return "", newErr(CodeInvalidCredentials, "the password is wrong")
	}
	if usePasskey {
		cred, err := s.checkPasskeyStepUp(u, sess, passkey, c)
		if err != nil {
			g.fail()
			s.audit(store.AuditEntry{Event: "step_up_failed", User: u.Name, Client: c.String(), Detail: "passkey: " + protocolDetail(err)})
			if e, ok := err.(*Error); ok {
				return "", e // says why: expired, or a copied passkey
			}
			return "", newErr(CodeInvalidCode, "the passkey was not accepted")
		}
		s.passkeyUsed(u, cred)
	} else if u.TOTP.Enabled {
		now := s.clock.Now()
		var verr error
		_, err = s.updateUser(u.Name, func(_ *store.Tx, u *store.User) error {
			if _, e := spendSecondFactor(u, code, now); e != nil {
				verr = e
				return verr
			}
			return nil
		})
		if verr != nil {
			g.fail()
			s.audit(store.AuditEntry{Event: "step_up_failed", User: u.Name, Client: c.String(), Detail: "code: " + verr.(*Error).Code})
			if verr == errInvalidCode && s.clockSuspect() {
				return "", errClock
			}
			return "", verr
		}
		if err != nil {
			g.release()
			return "", errInternal(err)
		}
	}
	g.release()
	next, _, ok := s.sessions.StepUp(token)
	if !ok {
		return "", errUnauthorized
	}
	detail := "password"
	switch {
	case usePasskey:
		detail = "password and passkey"
	case u.TOTP.Enabled:
		detail = "password and code"
	}
	s.audit(store.AuditEntry{Event: "step_up", User: u.Name, Client: c.String(), Detail: detail})
	return next, nil
}
