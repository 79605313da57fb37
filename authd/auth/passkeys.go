package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/rknas/firmware/authd/session"
	"github.com/rknas/firmware/authd/store"
)

// MaxPasskeys bounds an account's passkeys.
const MaxPasskeys = 20

// ceremonyTTL is how long a passkey ceremony (the browser asking the
// authenticator) may take.
const ceremonyTTL = 5 * time.Minute

// RP is the relying party a request speaks to: the device's name as the
// browser reached it, and the page's origin. A passkey is bound to the
// name; an address cannot carry one.
type RP struct {
	ID     string // rknas.local
	Origin string // https://rknas.local
}

// PasskeyView is a passkey as listed.
type PasskeyView struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	RPID     string    `json:"rp_id"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
	// Synced says the passkey may be copied to the owner's other devices
	// (a password manager or a platform account backs it up).
	Synced bool `json:"synced"`
}

// Kinds of passkey ceremony.
const (
	ceremonyStepUp       = "step_up"
	ceremonyRegister     = "register"
	ceremonySecondFactor = "second_factor"
	ceremonySignIn       = "sign_in"
)

// maxCeremonies bounds the passkey ceremonies in progress on the device;
// maxCeremoniesPerOwner those of one owner: the client address that asks
// to sign in with a passkey alone (anyone may), or the account of the
// others. An owner's oldest ceremony gives way to its next, so one address
// asking again and again replaces its own and leaves the room to others.
// Sign-ins with a passkey alone, which anyone may begin, fill at most
// maxSignInCeremonies, so addresses enough to fill the table (250 at 4
// each) still leave room for the ceremonies of accounts: an owner who gave
// the password, or is signed in, can always go on with a passkey.
const (
	maxCeremonies         = 1000
	maxCeremoniesPerOwner = 4
	maxSignInCeremonies   = maxCeremonies / 2
)

type ceremony struct {
	// owner is "client " and the client's throttling key for a sign-in
	// with a passkey alone, "account " and the account's name otherwise.
	owner     string
	kind      string
	user      string // register, second_factor
	sessionID string // register: the session that began it
	challenge string // second_factor: the login challenge
	rp        RP
	data      webauthn.SessionData
	created   time.Time
	expires   time.Time
}

// ceremonies holds the ceremonies in progress, each used once.
type ceremonies struct {
	mu sync.Mutex
	m  map[string]*ceremony
}

func (cs *ceremonies) put(now time.Time, c *ceremony) (string, error) {
	id, err := session.NewToken()
	if err != nil {
		return "", errInternal(err)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.m == nil {
		cs.m = map[string]*ceremony{}
	}
	mine, oldest, signIns := 0, "", 0
	for k, v := range cs.m {
		if now.After(v.expires) {
			delete(cs.m, k)
			continue
		}
		if v.kind == ceremonySignIn {
			signIns++
		}
		if v.owner == c.owner {
			mine++
			if oldest == "" || v.created.Before(cs.m[oldest].created) {
				oldest = k
			}
		}
	}
	if mine >= maxCeremoniesPerOwner {
		if cs.m[oldest].kind == ceremonySignIn {
			signIns--
		}
		delete(cs.m, oldest)
	}
	if c.kind == ceremonySignIn && signIns >= maxSignInCeremonies {
		for k, v := range cs.m {
			if v.kind == ceremonySignIn && now.Sub(v.created) >= ceremonyTTL/2 {
				delete(cs.m, k)
				signIns--
			}
		}
		if signIns >= maxSignInCeremonies {
			return "", errBusy()
		}
	}
	if len(cs.m) >= maxCeremonies {
		// Many owners at once: those that have waited half their time
		// give way, as login challenges do.
		for k, v := range cs.m {
			if now.Sub(v.created) >= ceremonyTTL/2 {
				delete(cs.m, k)
			}
		}
		if len(cs.m) >= maxCeremonies {
			return "", errBusy()
		}
	}
	c.created, c.expires = now, now.Add(ceremonyTTL)
	cs.m[id] = c
	return id, nil
}

func (cs *ceremonies) take(now time.Time, id string) (*ceremony, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c, ok := cs.m[id]
	delete(cs.m, id)
	if !ok || now.After(c.expires) {
		return nil, false
	}
	return c, true
}

// relyingParty is the WebAuthn configuration for rp.
func (s *Service) relyingParty(rp RP) (*webauthn.WebAuthn, error) {
	if rp.ID == "" {
		return nil, newErr(CodeBadRequest, "passkeys work under the device's name, not its address: open the page by its name")
	}
	w, err := webauthn.New(&webauthn.Config{RPID: rp.ID, RPDisplayName: s.cfg.DeviceName, RPOrigins: []string{rp.Origin}})
	if err != nil {
		return nil, errBadRequest("passkeys: %v", err)
	}
	return w, nil
}

// waUser is an account as the WebAuthn library sees it: its passkeys
// made under rpID.
type waUser struct {
	u    store.User
	rpID string
}

func (w waUser) WebAuthnID() []byte          { return w.u.WebAuthnID }
func (w waUser) WebAuthnName() string        { return w.u.Name }
func (w waUser) WebAuthnDisplayName() string { return w.u.Name }
func (w waUser) WebAuthnCredentials() []webauthn.Credential {
	var out []webauthn.Credential
	for _, p := range w.u.Passkeys {
		if p.RPID != w.rpID {
			continue
		}
		var c webauthn.Credential
		if json.Unmarshal(p.Credential, &c) == nil {
			// The library sets the warning when an answer's counter is
			// not above the stored one; cleared here, it speaks of the
			// answer being checked alone (see clonedPasskey).
			c.Authenticator.CloneWarning = false
			out = append(out, c)
		}
	}
	return out
}

func passkeyID(raw []byte) string { return base64.RawURLEncoding.EncodeToString(raw) }

func passkeyViews(u store.User) []PasskeyView {
	out := []PasskeyView{}
	for _, p := range u.Passkeys {
		var c webauthn.Credential
		_ = json.Unmarshal(p.Credential, &c)
		out = append(out, PasskeyView{ID: passkeyID(p.ID), Name: p.Name, RPID: p.RPID, Created: p.Created, LastUsed: p.LastUsed, Synced: c.Flags.BackupEligible})
	}
	return out
}

// Passkeys lists user's passkeys, and whether a passkey alone signs in.
func (s *Service) Passkeys(user string) ([]PasskeyView, bool, error) {
	u, err := s.User(user)
	if err != nil {
		return nil, false, err
	}
	return passkeyViews(u), u.PasskeySignIn, nil
}

// BeginPasskeyRegistration starts adding a passkey to the session's
// account and returns the options for navigator.credentials.create and the
// ceremony's ID. A full session gives the password (or has stepped up); an
// enrolment session, which just gave it, need not.
func (s *Service) BeginPasskeyRegistration(ctx context.Context, sess session.Session, password string, rp RP, c Client) (any, string, error) {
	w, err := s.relyingParty(rp)
	if err != nil {
		return nil, "", err
	}
	u, err := s.User(sess.User)
	if err != nil {
		return nil, "", err
	}
	if sess.Kind == session.Full {
		if err := s.requireFactorStepUp(sess, u); err != nil {
			return nil, "", err
		}
	}
	if sess.Kind == session.Full && !s.Actor(sess).SteppedUp {
		if password == "" {
			return nil, "", newErr(CodeInvalidCredentials, "password: give the account's password to add a passkey")
		}
		if err := s.checkPassword(ctx, u, password, c); err != nil {
			return nil, "", err
		}
	}
	if len(u.Passkeys) >= MaxPasskeys {
		return nil, "", newErr(CodeConflict, "the account has 20 passkeys already: remove one first")
	}
	if len(u.WebAuthnID) == 0 {
		handle := make([]byte, 32)
		if _, err := rand.Read(handle); err != nil {
			return nil, "", errInternal(err)
		}
		if u, err = s.updateUser(u.Name, func(_ *store.Tx, u *store.User) error {
			if len(u.WebAuthnID) == 0 {
				u.WebAuthnID = handle
			}
			return nil
		}); err != nil {
			return nil, "", errInternal(err)
		}
	}
	wu := waUser{u: u, rpID: rp.ID}
	var exclude []protocol.CredentialDescriptor
	for _, cr := range wu.WebAuthnCredentials() {
		exclude = append(exclude, cr.Descriptor())
	}
	creation, data, err := w.BeginRegistration(wu, webauthn.WithExclusions(exclude),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementPreferred, UserVerification: protocol.VerificationPreferred}))
	if err != nil {
		return nil, "", errInternal(err)
	}
	id, err := s.passkeyCeremonies.put(s.clock.Now(), &ceremony{owner: "account " + u.Name, kind: ceremonyRegister, user: u.Name, sessionID: sess.ID, rp: rp, data: *data})
	if err != nil {
		return nil, "", err
	}
	return creation.Response, id, nil
}

// FinishPasskeyRegistration checks the authenticator's answer and keeps
// the passkey. A first second factor is 2FA turned on: the account's other
// sessions end, and this one moves on (an enrolment session to a full one)
// under a new token; status and token say so ("" when unchanged).
func (s *Service) FinishPasskeyRegistration(token string, sess session.Session, ceremonyID, name string, credential []byte, rp RP, c Client) (PasskeyView, string, string, error) {
	cer, ok := s.passkeyCeremonies.take(s.clock.Now(), ceremonyID)
	if !ok || cer.kind != ceremonyRegister || cer.user != sess.User || cer.sessionID != sess.ID || cer.rp != rp {
		return PasskeyView{}, "", "", newErr(CodeChallengeExpired, "the passkey setup is unknown or took longer than 5 minutes: start again")
	}
	name = strings.TrimSpace(name)
	if len([]rune(name)) > 64 || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return PasskeyView{}, "", "", errBadRequest("name: at most 64 characters, no control characters")
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(credential)
	if err != nil {
		return PasskeyView{}, "", "", errBadRequest("credential: %v", err)
	}
	w, err := s.relyingParty(rp)
	if err != nil {
		return PasskeyView{}, "", "", err
	}
	u, err := s.User(sess.User)
	if err != nil {
		return PasskeyView{}, "", "", err
	}
	cred, err := w.CreateCredential(waUser{u: u, rpID: rp.ID}, cer.data, parsed)
	if err != nil {
		return PasskeyView{}, "", "", newErr(CodeInvalidCode, "the passkey could not be verified: "+protocolDetail(err))
	}
	raw, err := json.Marshal(cred)
	if err != nil {
		return PasskeyView{}, "", "", errInternal(err)
	}
	now := s.clock.Now().UTC()
	first := !u.HasSecondFactor()
	u, err = s.updateUser(u.Name, func(tx *store.Tx, u *store.User) error {
		if len(u.Passkeys) >= MaxPasskeys {
			return newErr(CodeConflict, "the account has 20 passkeys already: remove one first")
		}
		for _, p := range u.Passkeys {
			if bytes.Equal(p.ID, cred.ID) {
				return newErr(CodeConflict, "this passkey is on the account already")
			}
		}
		if name == "" {
			name = "Passkey " + itoa(len(u.Passkeys)+1)
		}
		u.Passkeys = append(u.Passkeys, store.Passkey{ID: cred.ID, Name: name, RPID: rp.ID, Created: now, Credential: raw})
		detail := name + " for " + rp.ID
		if err := tx.AppendAudit(store.AuditEntry{Time: now, Event: "passkey_added", User: u.Name, Client: c.String(), Detail: detail}); err != nil {
			return err
		}
		if first {
			return tx.AppendAudit(store.AuditEntry{Time: now, Event: "2fa_enabled", User: u.Name, Client: c.String(), Detail: "passkey"})
		}
		return nil
	})
	if err != nil {
		return PasskeyView{}, "", "", asErr(err)
	}
	s.notify(u, "passkey_added", map[string]string{"client": c.String(), "name": name})
	views := passkeyViews(u)
	view := views[len(views)-1]
	if !first && sess.Kind == session.Full {
		return view, "", "", nil
	}
	s.sessions.RevokeUser(u.Name, token)
	status, next, err := s.nextKind(u, token)
	return view, status, next, err
}

// RenamePasskey names one of user's passkeys.
func (s *Service) RenamePasskey(user, id, name string) error {
	name = strings.TrimSpace(name)
	if name == "" || len([]rune(name)) > 64 || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return errBadRequest("name: 1 to 64 characters, no control characters")
	}
	found := false
	_, err := s.updateUser(user, func(_ *store.Tx, u *store.User) error {
		for i := range u.Passkeys {
			if passkeyID(u.Passkeys[i].ID) == id {
				u.Passkeys[i].Name, found = name, true
			}
		}
		return nil
	})
	if err != nil {
		return asErr(err)
	}
	if !found {
		return newErr(CodeNotFound, "no such passkey")
	}
	return nil
}

// RemovePasskey removes one of the session's account's passkeys; it takes
// the password. The last second factor going is 2FA turned off: the other
// sessions and the trusted devices end and the session (token) goes on
// under a new token, of the kind the policy now allows, as with DELETE
// /me/2fa; then it returns the status and that token, else "" for both.
func (s *Service) RemovePasskey(ctx context.Context, token string, sess session.Session, id, password string, c Client) (string, string, error) {
	u, err := s.User(sess.User)
	if err != nil {
		return "", "", err
	}
	if err := s.checkFactorChange(ctx, sess, u, password, c); err != nil {
		return "", "", err
	}
	var removed string
	now := s.clock.Now()
	u, err = s.updateUser(u.Name, func(tx *store.Tx, u *store.User) error {
		for i, p := range u.Passkeys {
			if passkeyID(p.ID) == id {
				removed = p.Name
				u.Passkeys = append(u.Passkeys[:i:i], u.Passkeys[i+1:]...)
				break
			}
		}
		if removed == "" {
			return newErr(CodeNotFound, "no such passkey")
		}
		if len(u.Passkeys) == 0 {
			u.PasskeySignIn = false
		}
		if !u.HasSecondFactor() {
			if _, err := tx.DeleteDevices(u.Name); err != nil {
				return err
			}
			if err := tx.AppendAudit(store.AuditEntry{Time: now, Event: "2fa_disabled", User: u.Name, Client: c.String(), Detail: "last passkey removed"}); err != nil {
				return err
			}
		}
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: "passkey_removed", User: u.Name, Client: c.String(), Detail: removed})
	})
	if err != nil {
		return "", "", asErr(err)
	}
	s.notify(u, "passkey_removed", map[string]string{"client": c.String(), "name": removed})
	if u.HasSecondFactor() {
		return "", "", nil
	}
	s.sessions.RevokeUser(u.Name, token)
	return s.nextKind(u, token)
}

// SetPasskeySignIn turns signing in with a passkey alone on or off for the
// session's account; it takes the password.
func (s *Service) SetPasskeySignIn(ctx context.Context, sess session.Session, enabled bool, password string, c Client) error {
	u, err := s.User(sess.User)
	if err != nil {
		return err
	}
	if err := s.checkPassword(ctx, u, password, c); err != nil {
		return err
	}
	if enabled && len(u.Passkeys) == 0 {
		return newErr(CodeConflict, "add a passkey first")
	}
	_, err = s.updateUser(u.Name, func(tx *store.Tx, u *store.User) error {
		u.PasskeySignIn = enabled
		return tx.AppendAudit(store.AuditEntry{Time: s.clock.Now(), Event: "passkey_sign_in_changed", User: u.Name, Client: c.String(), Detail: boolText(enabled)})
	})
	return asErr(err)
}

// PasskeySignInAllowed reports the policy switch for signing in with a
// passkey alone.
func (s *Service) PasskeySignInAllowed() bool {
	p, err := s.policy()
	return err == nil && p.PasskeySignIn
}

// BeginPasskeyLogin starts a passkey assertion: the second factor of the
// login challenge, or, with no challenge, signing in with a passkey alone
// (the policy must allow it).
func (s *Service) BeginPasskeyLogin(challenge string, rp RP, c Client) (any, string, error) {
	w, err := s.relyingParty(rp)
	if err != nil {
		return nil, "", err
	}
	cl := s.client(c)
	if wait := cl.r.Check(cl.key); wait > 0 {
		return nil, "", errLocked(cl.kind, wait)
	}
	now := s.clock.Now()
	if challenge == "" {
		if !s.PasskeySignInAllowed() {
			return nil, "", newErr(CodeForbidden, "signing in with a passkey alone is off on this device: an administrator turns it on in the 2FA policy")
		}
		assertion, data, err := w.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
		if err != nil {
			return nil, "", errInternal(err)
		}
		id, err := s.passkeyCeremonies.put(now, &ceremony{owner: "client " + c.Key(), kind: ceremonySignIn, rp: rp, data: *data})
		return assertionOptions(assertion), id, err
	}
	ch, err := s.sessions.Challenge(challenge, c.Key())
	if err != nil {
		return nil, "", errChallengeExpired
	}
	u, err := s.user(ch.User)
	if err != nil {
		return nil, "", errChallengeExpired
	}
	return s.beginAssertion(w, u, &ceremony{kind: ceremonySecondFactor, user: u.Name, challenge: challenge, rp: rp},
		": use another way, or open the page by the name the passkey was made under")
}

// beginAssertion asks for one of u's passkeys made under cer.rp, and keeps
// cer, with the library's session data, for the answer. hint ends the
// message when u has none there.
func (s *Service) beginAssertion(w *webauthn.WebAuthn, u store.User, cer *ceremony, hint string) (any, string, error) {
	wu := waUser{u: u, rpID: cer.rp.ID}
	if len(wu.WebAuthnCredentials()) == 0 {
		return nil, "", newErr(CodeConflict, "this account has no passkey for "+cer.rp.ID+hint)
	}
	assertion, data, err := w.BeginLogin(wu, webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return nil, "", errInternal(err)
	}
	cer.data, cer.owner = *data, "account "+u.Name
	id, err := s.passkeyCeremonies.put(s.clock.Now(), cer)
	return assertionOptions(assertion), id, err
}

// PasskeyAnswer is a browser's answer to a passkey ceremony.
type PasskeyAnswer struct {
	Ceremony   string
	Credential []byte
	RP         RP
}

// BeginPasskeyStepUp starts a passkey assertion that confirms a step-up of
// the session, in place of a code.
func (s *Service) BeginPasskeyStepUp(sess session.Session, rp RP) (any, string, error) {
	w, err := s.relyingParty(rp)
	if err != nil {
		return nil, "", err
	}
	u, err := s.User(sess.User)
	if err != nil {
		return nil, "", err
	}
	return s.beginAssertion(w, u, &ceremony{kind: ceremonyStepUp, user: u.Name, sessionID: sess.ID, rp: rp}, "")
}

// checkPasskeyStepUp verifies a passkey answer for a step-up of sess.
func (s *Service) checkPasskeyStepUp(u store.User, sess session.Session, a *PasskeyAnswer, c Client) (*webauthn.Credential, error) {
	cer, ok := s.passkeyCeremonies.take(s.clock.Now(), a.Ceremony)
	if !ok || cer.kind != ceremonyStepUp || cer.user != u.Name || cer.sessionID != sess.ID || cer.rp != a.RP {
		return nil, newErr(CodeChallengeExpired, "the passkey confirmation is unknown or took longer than 5 minutes: start again")
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(a.Credential)
	if err != nil {
		return nil, err
	}
	w, err := s.relyingParty(a.RP)
	if err != nil {
		return nil, err
	}
	cred, err := w.ValidateLogin(waUser{u: u, rpID: a.RP.ID}, cer.data, parsed)
	if err != nil {
		return nil, err
	}
	return cred, s.clonedPasskey(u, cred, c)
}

func assertionOptions(a *protocol.CredentialAssertion) any {
	if a == nil {
		return nil
	}
	return a.Response
}

// FinishPasskeyLogin checks the authenticator's answer and ends the login
// like the code step does. A wrong answer counts like a wrong code.
func (s *Service) FinishPasskeyLogin(ceremonyID string, credential []byte, trust bool, deviceName string, rp RP, c Client) (LoginResult, error) {
	if len(deviceName) > 64 {
		return LoginResult{}, errBadRequest("device_name: at most 64 characters of text")
	}
	cer, ok := s.passkeyCeremonies.take(s.clock.Now(), ceremonyID)
	if !ok || (cer.kind != ceremonySecondFactor && cer.kind != ceremonySignIn) || cer.rp != rp {
		return LoginResult{}, errChallengeExpired
	}
	parsed, perr := protocol.ParseCredentialRequestResponseBytes(credential)
	w, err := s.relyingParty(rp)
	if err != nil {
		return LoginResult{}, err
	}
	if cer.kind == ceremonySignIn {
		return s.finishPasskeySignIn(w, cer, parsed, perr, c)
	}
	ch, end, err := s.beginCode(cer.challenge, c)
	if err != nil {
		return LoginResult{}, err
	}
	u, err := s.user(cer.user)
	if err != nil || u.Disabled {
		end(false)
		return LoginResult{}, errChallengeExpired
	}
	var cred *webauthn.Credential
	if perr == nil {
		cred, err = w.ValidateLogin(waUser{u: u, rpID: rp.ID}, cer.data, parsed)
	}
	if perr != nil || err != nil {
		end(true)
		s.audit(store.AuditEntry{Event: "login_code_failed", User: u.Name, Client: c.String(), Detail: "passkey: " + protocolDetail(firstErr(perr, err))})
		return LoginResult{}, newErr(CodeInvalidCode, "the passkey was not accepted")
	}
	if err := s.clonedPasskey(u, cred, c); err != nil {
		end(true)
		return LoginResult{}, err
	}
	end(false)
	if !s.sessions.Consume(cer.challenge) {
		return LoginResult{}, errChallengeExpired
	}
	u = s.passkeyUsed(u, cred)
	var deviceToken string
	if trust {
		if deviceToken, err = s.trustDevice(u, deviceName, c); err != nil {
			return LoginResult{}, err
		}
	}
	res, err := s.finish(u, c, ch.Gen, errChallengeExpired)
	res.DeviceToken = deviceToken
	return res, err
}

// finishPasskeySignIn ends a sign-in with a passkey alone: the passkey
// names its account, which must have chosen this way in, under a policy
// that allows it.
func (s *Service) finishPasskeySignIn(w *webauthn.WebAuthn, cer *ceremony, parsed *protocol.ParsedCredentialAssertionData, perr error, c Client) (LoginResult, error) {
	g, err := s.begin(c, s.client(c))
	if err != nil {
		return LoginResult{}, err
	}
	var found store.User
	var gen uint64
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		users, err := s.Users()
		if err != nil {
			return nil, err
		}
		for _, v := range users {
			g := s.sessions.Generation(v.Name) // before the account: see Login
			u, err := s.user(v.Name)
			if err == nil && len(u.WebAuthnID) > 0 && bytes.Equal(u.WebAuthnID, userHandle) {
				found, gen = u, g
				return waUser{u: u, rpID: cer.rp.ID}, nil
			}
		}
		return nil, newErr(CodeInvalidCode, "no account has this passkey")
	}
	var cred *webauthn.Credential
	if perr == nil {
		_, cred, err = w.ValidatePasskeyLogin(handler, cer.data, parsed)
	}
	if perr != nil || err != nil || found.Disabled || !found.PasskeySignIn || !s.PasskeySignInAllowed() {
		g.fail()
		s.audit(store.AuditEntry{Event: "login_failed", User: found.Name, Client: c.String(), Detail: "passkey sign-in: " + protocolDetail(firstErr(perr, err))})
		return LoginResult{}, newErr(CodeInvalidCredentials, "the passkey does not sign in here: use the password, or turn on passkey sign-in on the account page")
	}
	if err := s.clonedPasskey(found, cred, c); err != nil {
		g.fail()
		return LoginResult{}, err
	}
	g.release()
	found = s.passkeyUsed(found, cred)
	return s.finish(found, c, gen, errInvalidCredentials)
}

// clonedPasskey refuses an answer whose signature counter is not above the
// one the passkey gave last time (the WebAuthn library's clone warning):
// two authenticators hold the key, and the one answering may be a copy.
// Passkeys that keep no counter (all zeros, as synced ones do) pass.
func (s *Service) clonedPasskey(u store.User, cred *webauthn.Credential, c Client) error {
	if cred == nil || !cred.Authenticator.CloneWarning {
		return nil
	}
	name := ""
	for _, p := range u.Passkeys {
		if bytes.Equal(p.ID, cred.ID) {
			name = p.Name
		}
	}
	s.audit(store.AuditEntry{Event: "passkey_clone_suspected", User: u.Name, Client: c.String(),
		Detail: name + ": the counter is not above " + strconv.FormatUint(uint64(cred.Authenticator.SignCount), 10) + ", the last one seen"})
	return newErr(CodePasskeyCopied, "this passkey's signature counter went backwards, so a copy of it may exist: sign in another way and remove the passkey")
}

// passkeyUsed records the passkey's new sign counter and last use.
func (s *Service) passkeyUsed(u store.User, cred *webauthn.Credential) store.User {
	raw, err := json.Marshal(cred)
	if err != nil {
		return u
	}
	now := s.clock.Now().UTC()
	nu, err := s.updateUser(u.Name, func(_ *store.Tx, u *store.User) error {
		for i := range u.Passkeys {
			if bytes.Equal(u.Passkeys[i].ID, cred.ID) {
				u.Passkeys[i].Credential, u.Passkeys[i].LastUsed = raw, now
			}
		}
		return nil
	})
	if err != nil {
		s.log.Error("recording a passkey's use failed", "user", u.Name, "err", err)
		return u
	}
	return nu
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// protocolDetail is the WebAuthn library's reason, for logs and messages.
func protocolDetail(err error) string {
	if err == nil {
		return ""
	}
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Details != "" {
		return pe.Details
	}
	return err.Error()
}

func itoa(n int) string { return strconv.Itoa(n) }

func boolText(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
