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
// change, throttled like a login.
func (s *Service) checkPassword(ctx context.Context, u store.User, password string, c Client) error {
	if wait := max(s.clients.Check(c.Key()), s.accounts.Check(u.Name)); wait > 0 {
		return errLocked(wait)
	}
	ok, err := s.hasher.Verify(ctx, password, u.PasswordHash)
	if errors.Is(err, account.ErrBusy) {
		return errBusy()
	}
	if err != nil {
		return errInternal(err)
	}
	if !ok {
		s.clients.Fail(c.Key())
		s.accounts.Fail(u.Name)
		s.audit(store.AuditEntry{Event: "password_check_failed", User: u.Name, Client: c.String()})
		return newErr(CodeInvalidCredentials, "the current password is wrong")
	}
	return nil
}

// ChangePassword sets a new password for the session's account, ends its
// other sessions, and lifts a password_change session to what comes next.
func (s *Service) ChangePassword(ctx context.Context, token string, sess session.Session, current, next string, c Client) (string, error) {
	u, err := s.User(sess.User)
	if err != nil {
		return "", err
	}
	if err := s.checkPassword(ctx, u, current, c); err != nil {
		return "", err
	}
	if err := account.CheckNewPassword(next, u.Name, s.cfg.DefaultPassword); err != nil {
		return "", errBadRequest("new_password: %s", err.Error())
	}
	hash, err := s.hasher.Hash(ctx, next)
	if errors.Is(err, account.ErrBusy) {
		return "", errBusy()
	}
	if err != nil {
		return "", errInternal(err)
	}
	now := s.clock.Now()
	u, err = s.updateUser(u.Name, func(tx *store.Tx, u *store.User) error {
		u.PasswordHash, u.MustChangePassword, u.PasswordChanged = hash, false, now
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: "password_changed", User: u.Name, Client: c.String()})
	})
	if err != nil {
		return "", errInternal(err)
	}
	s.sessions.RevokeUser(u.Name, token)
	status, err := s.nextKind(u, token)
	return status, err
}

// nextKind moves a restricted session on once its condition is met, and
// returns the resulting login status.
func (s *Service) nextKind(u store.User, token string) (string, error) {
	kind, status, err := s.restriction(u)
	if err != nil {
		return "", err
	}
	s.sessions.SetKind(token, kind)
	return status, nil
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
	case policy.Requires(u) && !u.TOTP.Enabled:
		return session.Enroll, StatusEnrollRequired, nil
	}
	return session.Full, StatusOK, nil
}

// policy reads the mandatory-2FA policy.
func (s *Service) policy() (store.Policy, error) {
	var p store.Policy
	err := s.store.View(func(tx *store.Tx) error {
		var err error
		p, err = tx.Policy()
		return err
	})
	return p, err
}

// Enroll starts an enrolment: a new key, pending until a code confirms it.
func (s *Service) Enroll(ctx context.Context, user string) (twofa.Enrollment, error) {
	u, err := s.User(user)
	if err != nil {
		return twofa.Enrollment{}, err
	}
	if u.TOTP.Enabled {
		return twofa.Enrollment{}, newErr(CodeConflict, "two-factor authentication is already on; turn it off first to enrol a new authenticator")
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
// account's other sessions and returns fresh recovery codes.
func (s *Service) VerifyEnroll(ctx context.Context, token string, user, code string, c Client) ([]string, string, error) {
	if wait := s.clients.Check(c.Key()); wait > 0 {
		return nil, "", errLocked(wait)
	}
	codes, hashes, err := twofa.NewRecoveryCodes()
	if err != nil {
		return nil, "", errInternal(err)
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
	if verr != nil {
		if verr == errInvalidCode {
			s.clients.Fail(c.Key())
			if s.clockSuspect() {
				return nil, "", errClock
			}
		}
		return nil, "", verr
	}
	if err != nil {
		return nil, "", errInternal(err)
	}
	s.sessions.RevokeUser(u.Name, token)
	status, err := s.nextKind(u, token)
	s.notify(u, "2fa_enabled", map[string]string{"client": c.String()})
	return codes, status, err
}

// Disable2FA turns off the account's own 2FA; it needs the password and a
// current code (or a recovery code).
func (s *Service) Disable2FA(ctx context.Context, token string, user, password, code string, c Client) (string, error) {
	u, err := s.User(user)
	if err != nil {
		return "", err
	}
	if !u.TOTP.Enabled {
		return "", newErr(CodeConflict, "two-factor authentication is not on")
	}
	if err := s.checkPassword(ctx, u, password, c); err != nil {
		return "", err
	}
	now := s.clock.Now()
	var verr error
	u, err = s.updateUser(user, func(tx *store.Tx, u *store.User) error {
		if twofa.LooksLikeTOTP(code) {
			_, err := twofa.Verify(u.TOTP.Secret, code, now, u.TOTP.LastStep)
			if errors.Is(err, twofa.ErrCodeReused) {
				verr = errCodeReused
			} else if err != nil {
				verr = errInvalidCode
			}
		} else if twofa.MatchRecoveryCode(u.TOTP.RecoveryCodes, code) < 0 {
			verr = errInvalidCode
		}
		if verr != nil {
			return verr
		}
		u.TOTP = store.TOTP{}
		if _, err := tx.DeleteDevices(u.Name); err != nil {
			return err
		}
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: "2fa_disabled", User: u.Name, Client: c.String(), Detail: "by the account itself"})
	})
	if verr != nil {
		s.clients.Fail(c.Key())
		s.accounts.Fail(user)
		if verr == errInvalidCode && s.clockSuspect() {
			return "", errClock
		}
		return "", verr
	}
	if err != nil {
		return "", errInternal(err)
	}
	s.sessions.RevokeUser(u.Name, token)
	s.notify(u, "2fa_disabled", map[string]string{"client": c.String(), "by": u.Name})
	return s.nextKind(u, token)
}

// RegenerateRecoveryCodes voids the old recovery codes and returns new ones;
// the account's other sessions end. It needs the password again, so a
// stolen session cannot mint codes of its own.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, token, user, password string, c Client) ([]string, error) {
	u, err := s.User(user)
	if err != nil {
		return nil, err
	}
	if err := s.checkPassword(ctx, u, password, c); err != nil {
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
