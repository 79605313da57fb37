package store

import (
	"slices"
	"time"
)

// Roles of an account.
const (
	RoleAdmin = "admin"
	RoleUser  = "user"
)

// AdminName is the built-in administrator, the account the physical reset
// gives back.
const AdminName = "admin"

// User is an account.
type User struct {
	Name         string   `json:"name"`
	Role         string   `json:"role"`
	Groups       []string `json:"groups,omitempty"`
	PasswordHash string   `json:"password_hash"`
	// MustChangePassword limits logins to setting a new password: set for
	// the default password and for passwords an admin set.
	MustChangePassword bool      `json:"must_change_password,omitempty"`
	Disabled           bool      `json:"disabled,omitempty"`
	Created            time.Time `json:"created"`
	PasswordChanged    time.Time `json:"password_changed"`

	TOTP TOTP `json:"totp"`
	// Passkeys are the account's WebAuthn credentials; each is a second
	// factor, like the TOTP authenticator.
	Passkeys []Passkey `json:"passkeys,omitempty"`
	// WebAuthnID is the random user handle the passkeys are made for.
	WebAuthnID []byte `json:"webauthn_id,omitempty"`
	// PasskeySignIn lets a passkey alone sign in, without the password,
	// where the policy allows it.
	PasskeySignIn bool `json:"passkey_sign_in,omitempty"`

	SecurityEmail         string `json:"security_email,omitempty"`
	SecurityEmailVerified bool   `json:"security_email_verified,omitempty"`
	// EmailPending is an address waiting for its verification code, whose
	// hash, expiry and wrong tries follow.
	EmailPending     string    `json:"email_pending,omitempty"`
	EmailCodeHash    string    `json:"email_code_hash,omitempty"`
	EmailCodeExpires time.Time `json:"email_code_expires,omitzero"`
	EmailCodeTries   int       `json:"email_code_tries,omitempty"`
	// MailsSent are the times codes were mailed for this account in the
	// last day (verification and emergency), to cap them.
	MailsSent []time.Time `json:"mails_sent,omitempty"`
	// EmergencySent are the times emergency codes were mailed in the last
	// day.
	EmergencySent []time.Time `json:"emergency_sent,omitempty"`
}

// HasSecondFactor reports whether signing in takes more than the password:
// a TOTP authenticator or a passkey.
func (u User) HasSecondFactor() bool { return u.TOTP.Enabled || len(u.Passkeys) > 0 }

// Passkey is a WebAuthn credential of an account.
type Passkey struct {
	// ID is the credential ID the authenticator gave.
	ID   []byte `json:"id"`
	Name string `json:"name"`
	// RPID is the name of the device the passkey was made under
	// (rknas.local): a browser offers it only there.
	RPID     string    `json:"rp_id"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
	// Credential is the WebAuthn library's record of it (public key, sign
	// counter, flags), as JSON.
	Credential []byte `json:"credential"`
}

// TOTP is an account's authenticator state.
type TOTP struct {
	Enabled bool `json:"enabled,omitempty"`
	// Secret is the base32 key of the enrolled authenticator.
	Secret string `json:"secret,omitempty"`
	// LastStep is the newest RFC 6238 time step accepted; a step at or
	// before it is never accepted again.
	LastStep int64 `json:"last_step,omitempty"`
	// PendingSecret is a key handed out by enrolment and not yet
	// confirmed by a correct code.
	PendingSecret  string    `json:"pending_secret,omitempty"`
	PendingCreated time.Time `json:"pending_created,omitzero"`
	// RecoveryCodes are SHA-256 hashes (hex) of the unused recovery codes.
	RecoveryCodes []string  `json:"recovery_codes,omitempty"`
	EnabledAt     time.Time `json:"enabled_at,omitzero"`
}

// IsAdmin tells whether the account has the admin role.
func (u User) IsAdmin() bool { return u.Role == RoleAdmin }

// DropSecurityEmail forgets the account's security email and any
// verification pending, as the resets do: an address someone else set
// while holding the account must not receive its emergency codes.
func (u *User) DropSecurityEmail() {
	u.SecurityEmail, u.SecurityEmailVerified = "", false
	u.EmailPending, u.EmailCodeHash, u.EmailCodeExpires, u.EmailCodeTries = "", "", time.Time{}, 0
}

// InGroup tells whether the account is a member of group.
func (u User) InGroup(group string) bool {
	for _, g := range u.Groups {
		if g == group {
			return true
		}
	}
	return false
}

// Group is a named set of accounts (membership is kept on the accounts).
type Group struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// Device is a trusted device: a browser that may skip the code step for one
// account until it expires.
type Device struct {
	// TokenHash is the hex SHA-256 of the device cookie; the cookie itself
	// is never stored.
	TokenHash string    `json:"token_hash"`
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	LastUsed  time.Time `json:"last_used"`
	LastAddr  string    `json:"last_addr"`
	Expires   time.Time `json:"expires"`
}

// AppPassword lets a program (a backup tool, a home automation server) use
// the API as its account, within its scopes, without the password or 2FA.
type AppPassword struct {
	// TokenHash is the hex SHA-256 of the token; the token itself is shown
	// once and never stored.
	TokenHash string    `json:"token_hash"`
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Name      string    `json:"name"`
	Scopes    []string  `json:"scopes"`
	Created   time.Time `json:"created"`
	LastUsed  time.Time `json:"last_used,omitzero"`
	LastAddr  string    `json:"last_addr,omitempty"`
	// Role is the account's role when the app password was made. An app
	// password never has more than its account had then: a user's
	// read-only token stays one after the account becomes an admin.
	// Empty in app passwords made before it was recorded.
	Role string `json:"role,omitempty"`
}

// MadeByAdmin tells whether the app password was made while its account
// was an administrator. One made before the role was recorded counts as an
// admin's only if it has the admin scope, which only admins are given.
func (a AppPassword) MadeByAdmin() bool {
	return a.Role == RoleAdmin || a.Role == "" && slices.Contains(a.Scopes, ScopeAdmin)
}

// Scopes of an app password.
const (
	// ScopeRead allows GET requests the account may make, but not of its
	// app passwords.
	ScopeRead = "read"
	// ScopeAdmin allows, for an admin, the administrative changes that
	// need no step-up.
	ScopeAdmin = "admin"
)

// Scopes of the mandatory-2FA policy.
const (
	ScopeNone     = "none"
	ScopeAdmins   = "admins"
	ScopeAll      = "all"
	ScopeSelected = "selected"
)

// Policy says who must use two-factor authentication.
type Policy struct {
	Scope  string   `json:"scope"`
	Users  []string `json:"users"`
	Groups []string `json:"groups"`
	// PasskeySignIn allows accounts that choose it to sign in with a
	// passkey alone.
	PasskeySignIn bool `json:"passkey_sign_in"`
}

// Requires tells whether the policy makes 2FA mandatory for u.
func (p Policy) Requires(u User) bool {
	switch p.Scope {
	case ScopeAll:
		return true
	case ScopeAdmins:
		return u.IsAdmin()
	case ScopeSelected:
		for _, n := range p.Users {
			if n == u.Name {
				return true
			}
		}
		for _, g := range p.Groups {
			if u.InGroup(g) {
				return true
			}
		}
	}
	return false
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID     uint64    `json:"id"`
	Time   time.Time `json:"time"`
	Event  string    `json:"event"`
	User   string    `json:"user,omitempty"`
	Actor  string    `json:"actor,omitempty"`
	Client string    `json:"client,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// String is the entry as one line of text, for consoles and logs.
func (e AuditEntry) String() string {
	line := e.Time.UTC().Format("2006-01-02 15:04:05") + " UTC " + e.Event
	for _, kv := range [][2]string{{"user", e.User}, {"by", e.Actor}, {"from", e.Client}} {
		if kv[1] != "" {
			line += " " + kv[0] + "=" + kv[1]
		}
	}
	if e.Detail != "" {
		line += " (" + e.Detail + ")"
	}
	return line
}
