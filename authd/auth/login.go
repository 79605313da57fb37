package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/session"
	"github.com/rknas/firmware/authd/store"
	"github.com/rknas/firmware/authd/twofa"
)

// Login statuses.
const (
	StatusOK                     = "ok"
	StatusOTPRequired            = "otp_required"
	StatusEnrollRequired         = "enroll_required"
	StatusPasswordChangeRequired = "password_change_required"
)

// Methods of the code step.
const (
	MethodTOTP     = "totp"
	MethodRecovery = "recovery"
	// MethodPasskey is a passkey (WebAuthn) at the code step.
	MethodPasskey = "passkey"
	MethodEmail   = "email"
)

// LoginResult is the outcome of a login step.
type LoginResult struct {
	Status    string
	Challenge string
	Methods   []string
	// SessionToken is set when a session was created.
	SessionToken string
	Session      session.Session
	// DeviceToken is set when the device was trusted at this step.
	DeviceToken string
	// DeviceUsed tells that a trusted device skipped the code step.
	DeviceUsed bool
}

// accountLimit returns the throttle of a username: the account's, or for
// names that do not exist a separate one, so spraying made-up names cannot
// evict a real account's counter. Both answer the same, so a lockout does
// not tell whether the name exists.
func (s *Service) accountLimit(name string, exists bool) limit {
	if exists {
		return s.account(name)
	}
	return limit{r: s.unknown, key: name, kind: BlockAccount}
}

// Login is the password step. deviceToken is the trusted-device cookie, if
// the browser sent one.
func (s *Service) Login(ctx context.Context, username, password string, c Client, deviceToken string) (LoginResult, error) {
	if username == "" || len(username) > account.MaxNameLen || !utf8.ValidString(username) {
		// No account can have such a name, so there is nothing to hide
		// and no hash to run: a hash here, before any throttle, let one
		// address keep every hash slot busy. It counts as the address's
		// failure like any other wrong login.
		g, err := s.begin(c, s.client(c))
		if err != nil {
			return LoginResult{}, err
		}
		g.fail()
		return LoginResult{}, errInvalidCredentials
	}
	if len(password) > 4*account.MaxPasswordLen {
		return LoginResult{}, errBadRequest("password: longer than %d characters", account.MaxPasswordLen)
	}
	// Read before the account: a change that ends the account's sessions
	// while this login checks the old password moves it on, and the
	// session this login would make is refused (session.ErrStale).
	gen := s.sessions.Generation(username)
	u, err := s.user(username)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return LoginResult{}, errInternal(err)
	}
	if s.testHookAccountRead != nil {
		s.testHookAccountRead()
	}
	device, deviceOK := s.trustedDevice(u, exists, deviceToken)
	limits := []limit{s.client(c)}
	// A trusted device has passed the second factor before, and an
	// allow-listed address is the owner's own network: neither is held by
	// the account-wide cap, so guessing from elsewhere cannot lock the
	// owner out.
	if !deviceOK && !s.allowListed(c.Addr) {
		limits = append(limits, s.accountLimit(username, exists))
	}
	g, err := s.begin(c, limits...)
	if err != nil {
		return LoginResult{}, err
	}
	hashCtx := ctx
	if deviceOK || s.allowListed(c.Addr) {
		// The owner's known device or network goes before strangers
		// flooding the hash slots.
		hashCtx = account.Urgent(ctx)
	}
	ok, err := s.hasher.Verify(hashCtx, password, u.PasswordHash)
	if err != nil {
		g.release()
		if errors.Is(err, account.ErrBusy) {
			return LoginResult{}, errBusy()
		}
		return LoginResult{}, errInternal(err)
	}
	if !ok || u.Disabled {
		g.fail()
		detail, who := "wrong password", username
		if !exists {
			detail, who = "no such account", s.unknownName(username)
		} else if u.Disabled && ok {
			detail = "account disabled"
		}
		s.audit(store.AuditEntry{Event: "login_failed", User: who, Client: c.String(), Detail: detail})
		return LoginResult{}, errInvalidCredentials
	}
	g.release()
	if s.hasher.Params() != (account.Params{}) && account.NeedsRehash(u.PasswordHash, s.hasher.Params()) {
		s.rehash(ctx, u.Name, password)
	}
	if u.HasSecondFactor() {
		if deviceOK {
			s.touchDevice(device, c)
			res, err := s.finish(u, c, gen, errInvalidCredentials)
			res.DeviceUsed = true
			return res, err
		}
		ch, err := s.sessions.NewChallenge(u.Name, c.Key(), gen)
		if errors.Is(err, session.ErrStale) {
			s.staleLogin(u.Name, c)
			return LoginResult{}, errInvalidCredentials
		}
		if err != nil {
			return LoginResult{}, errBusy()
		}
		var methods []string
		if u.TOTP.Enabled {
			methods = append(methods, MethodTOTP, MethodRecovery)
		}
		if len(u.Passkeys) > 0 {
			methods = append(methods, MethodPasskey)
		}
		if u.SecurityEmailVerified {
			methods = append(methods, MethodEmail)
		}
		s.audit(store.AuditEntry{Event: "login_password_ok", User: u.Name, Client: c.String(), Detail: "code required"})
		return LoginResult{Status: StatusOTPRequired, Challenge: ch, Methods: methods}, nil
	}
	return s.finish(u, c, gen, errInvalidCredentials)
}

// spendSecondFactor checks code, a TOTP code or a recovery code, against
// u's second factor and spends it in u (a TOTP step is marked used, a
// recovery code removed); the caller stores u. It returns the method, and
// errCodeReused or errInvalidCode when the code is not good.
func spendSecondFactor(u *store.User, code string, now time.Time) (string, *Error) {
	if !u.TOTP.Enabled {
		// No authenticator app, so no code is good: an account whose second
		// factor is a passkey alone has no key, and a code made with an
		// empty key, which anyone can make, must not stand in for the
		// passkey; nor may codes left from an app that was turned off.
		return methodCode, errInvalidCode
	}
	if twofa.LooksLikeTOTP(code) {
		step, err := twofa.Verify(u.TOTP.Secret, code, now, u.TOTP.LastStep)
		switch {
		case errors.Is(err, twofa.ErrCodeReused):
			return MethodTOTP, errCodeReused
		case err != nil:
			return MethodTOTP, errInvalidCode
		}
		u.TOTP.LastStep = step
		return MethodTOTP, nil
	}
	i := twofa.MatchRecoveryCode(u.TOTP.RecoveryCodes, code)
	if i < 0 {
		return MethodRecovery, errInvalidCode
	}
	u.TOTP.RecoveryCodes = append(u.TOTP.RecoveryCodes[:i:i], u.TOTP.RecoveryCodes[i+1:]...)
	return MethodRecovery, nil
}

// rehash upgrades a stored hash to the current parameters after a good
// login; failure only costs the upgrade.
func (s *Service) rehash(ctx context.Context, name, password string) {
	h, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return
	}
	if _, err := s.updateUser(name, func(_ *store.Tx, u *store.User) error { u.PasswordHash = h; return nil }); err != nil {
		s.log.Warn("password rehash failed", "user", name, "err", err)
	}
}

// finish creates the session a login ends in. gen is the account's session
// generation read before the account was; if the account's sessions were
// ended since, the login ends with stale instead (the password or second
// factor it checked may be gone).
func (s *Service) finish(u store.User, c Client, gen uint64, stale *Error) (LoginResult, error) {
	kind, status, err := s.restriction(u)
	if err != nil {
		return LoginResult{}, err
	}
	token, sess, err := s.sessions.Create(u.Name, kind, c.String(), c.UserAgent, gen)
	if errors.Is(err, session.ErrStale) {
		s.staleLogin(u.Name, c)
		return LoginResult{}, stale
	}
	if err != nil {
		return LoginResult{}, errInternal(err)
	}
	// Only the account's failures made from this client are forgiven: the
	// ones from elsewhere stay (guessing spread over many addresses gets no
	// fresh allowance at each of the owner's logins), and so does the
	// client's own count, or one user could fail without end between
	// logins of their own.
	s.accounts.SucceedFrom(u.Name, c.Key())
	s.auditNow(store.AuditEntry{Event: "login", User: u.Name, Client: c.String(), Detail: status})
	return LoginResult{Status: status, SessionToken: token, Session: sess}, nil
}

// LoginOTP is the code step: a TOTP code, a recovery code or an emailed
// emergency code for the challenge.
func (s *Service) LoginOTP(ctx context.Context, challenge, code string, trust bool, deviceName string, c Client) (LoginResult, error) {
	if len(code) > 64 {
		return LoginResult{}, errBadRequest("code: longer than 64 characters")
	}
	if len(deviceName) > 64 || !utf8.ValidString(deviceName) {
		return LoginResult{}, errBadRequest("device_name: at most 64 characters of text")
	}
	ch, end, err := s.beginCode(challenge, c)
	if err != nil {
		return LoginResult{}, err
	}
	wrong := false
	defer func() { end(wrong) }()
	now := s.clock.Now()
	method := ""
	var verr error
	var u store.User
	err = s.store.Update(func(tx *store.Tx) error {
		var err error
		u, err = tx.User(ch.User)
		if err != nil {
			return err
		}
		if u.Disabled || !u.HasSecondFactor() {
			verr = errChallengeExpired
			return nil
		}
		switch {
		case ch.EmergencyHash != "" && looksLikeEmergency(code):
			method = MethodEmail
			if now.After(ch.EmergencyUntil) || subtle.ConstantTimeCompare([]byte(hashEmergency(code)), []byte(ch.EmergencyHash)) != 1 {
				verr = errInvalidCode
			}
		default:
			var e *Error
			if method, e = spendSecondFactor(&u, code, now); e != nil {
				verr = e
				return nil
			}
			return tx.PutUser(u)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return LoginResult{}, errChallengeExpired
		}
		return LoginResult{}, errInternal(err)
	}
	if verr != nil {
		if verr == errChallengeExpired {
			return LoginResult{}, verr
		}
		wrong = true
		detail := method + ": " + verr.(*Error).Code
		if verr == errInvalidCode && method == MethodTOTP && s.clockSuspect() {
			s.audit(store.AuditEntry{Event: "login_code_failed", User: u.Name, Client: c.String(), Detail: detail + "; clock not synchronized"})
			return LoginResult{}, errClock
		}
		s.audit(store.AuditEntry{Event: "login_code_failed", User: u.Name, Client: c.String(), Detail: detail})
		return LoginResult{}, verr
	}
	if !s.sessions.Consume(challenge) {
		return LoginResult{}, errChallengeExpired
	}
	switch method {
	case MethodRecovery:
		left := strconv.Itoa(len(u.TOTP.RecoveryCodes))
		s.audit(store.AuditEntry{Event: "recovery_code_used", User: u.Name, Client: c.String(), Detail: left + " left"})
		s.notify(u, "recovery_code_used", map[string]string{"client": c.String(), "left": left})
	case MethodEmail:
		s.audit(store.AuditEntry{Event: "emergency_code_used", User: u.Name, Client: c.String()})
		s.notify(u, "emergency_code_used", map[string]string{"client": c.String()})
	}
	var deviceToken string
	if trust {
		deviceToken, err = s.trustDevice(u, deviceName, c)
		if err != nil {
			return LoginResult{}, err
		}
	}
	res, err := s.finish(u, c, ch.Gen, errChallengeExpired)
	res.DeviceToken = deviceToken
	return res, err
}

// staleLogin records a login refused because the account's sessions were
// ended while it ran (a password change, 2FA turned on, a role change).
func (s *Service) staleLogin(user string, c Client) {
	s.audit(store.AuditEntry{Event: "login_failed", User: user, Client: c.String(), Detail: "the account changed during the login"})
}

// methodCode names, in the audit log, a code given to an account that
// takes none (its second factor is a passkey alone).
const methodCode = "code"

// looksLikeEmergency tells an 8-digit emergency code from the 6-digit TOTP
// and the lettered recovery codes.
func looksLikeEmergency(code string) bool {
	code = strings.ReplaceAll(strings.ReplaceAll(code, " ", ""), "-", "")
	if len(code) != 8 {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// hashEmergency returns the stored form of an emergency code.
func hashEmergency(code string) string {
	code = strings.ReplaceAll(strings.ReplaceAll(code, " ", ""), "-", "")
	return session.HashToken("emergency:" + code)
}

// Authenticate returns the session of token and its account. A session
// whose account is gone or disabled ends.
func (s *Service) Authenticate(token string) (session.Session, store.User, error) {
	sess, ok := s.sessions.Lookup(token)
	if !ok {
		return sess, store.User{}, errUnauthorized
	}
	u, err := s.user(sess.User)
	if err != nil || u.Disabled {
		s.sessions.Delete(token)
		return sess, u, errUnauthorized
	}
	return sess, u, nil
}

// Logout ends the session of token.
func (s *Service) Logout(token string, c Client) {
	if sess, ok := s.sessions.Lookup(token); ok {
		s.audit(store.AuditEntry{Event: "logout", User: sess.User, Client: c.String()})
	}
	s.sessions.Delete(token)
}
