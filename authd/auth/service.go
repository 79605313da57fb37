// Package auth is authd's login core: the two-step login with passwords,
// TOTP codes, recovery codes and trusted devices, account and group
// management, the mandatory-2FA policy and the audit log, on top of the
// store, with every failure throttled per account and per client.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/regulate"
	"github.com/rknas/firmware/authd/session"
	"github.com/rknas/firmware/authd/store"
)

// Config configures the Service.
type Config struct {
	// DeviceName is the issuer shown in authenticator apps and mails.
	DeviceName string
	// DefaultPassword is the device's own default admin password.
	DefaultPassword string
	// TrustedDeviceTTL is how long "trust this device" lasts.
	TrustedDeviceTTL time.Duration
	// EnrollTTL is how long an enrolment may wait for its first code.
	EnrollTTL time.Duration
	Sessions  session.Config
	Clients   regulate.Limits
	Accounts  regulate.Limits
	// AllowListed throttles each address on the allow-list: never blocked
	// for long, but not free to guess either.
	AllowListed regulate.Limits
}

// DefaultConfig returns the defaults: 30-day trusted devices, 15 minutes to
// confirm an enrolment, and the package defaults of session and regulate.
func DefaultConfig() Config {
	return Config{
		DeviceName:       "NAS",
		TrustedDeviceTTL: 30 * 24 * time.Hour,
		EnrollTTL:        15 * time.Minute,
		Sessions:         session.DefaultConfig,
		Clients:          regulate.ClientLimits,
		Accounts:         regulate.AccountLimits,
		AllowListed:      regulate.AllowListLimits,
	}
}

// Validate names the first bad option.
func (c Config) Validate() error {
	switch {
	case c.DeviceName == "" || len(c.DeviceName) > 64:
		return fmt.Errorf("device name %q: 1 to 64 characters", c.DeviceName)
	case len(c.DefaultPassword) < account.MinPasswordLen:
		return fmt.Errorf("default password: at least %d characters", account.MinPasswordLen)
	case c.TrustedDeviceTTL < time.Hour || c.TrustedDeviceTTL > 365*24*time.Hour:
		return fmt.Errorf("trusted device ttl %v: between 1h and 365 days", c.TrustedDeviceTTL)
	case c.EnrollTTL < time.Minute:
		return fmt.Errorf("enrol ttl %v: at least 1m", c.EnrollTTL)
	}
	return c.Sessions.Validate()
}

// ClockState tells the auth core whether the wall clock can be trusted for
// TOTP. timesync implements it.
type ClockState interface {
	// Synchronized reports a recent good NTP answer.
	Synchronized() bool
	// Trusted reports that the time is at least plausible (restored or
	// set), not 1970 or the build date.
	Trusted() bool
}

// Notifier receives security notices for an account (mail implements it).
type Notifier interface {
	Notify(user store.User, event string, details map[string]string)
}

// Client identifies who is asking.
type Client struct {
	Addr      netip.Addr
	UserAgent string
	// OnLink tells that an IPv6 client is on the device's own link
	// (regulate.OnLink): it is then throttled by its own address, not its
	// /64.
	OnLink bool
}

// Key is the throttling key of the client.
func (c Client) Key() string { return regulate.ClientKey(c.Addr, c.OnLink) }

// String is the address for logs and the audit log.
func (c Client) String() string { return c.Addr.String() }

// Service is the login core. It is safe for concurrent use.
type Service struct {
	// passkeyCeremonies are the passkey registrations and assertions in
	// progress.
	passkeyCeremonies ceremonies
	cfg               Config
	store             *store.Store
	clock             clock.Clock
	hasher            *account.Hasher
	sessions          *session.Manager
	clients           *regulate.Regulator
	accounts          *regulate.Regulator
	// unknown throttles usernames that do not exist, apart from real
	// accounts, so spraying made-up names cannot evict a real account's
	// counter.
	unknown *regulate.Regulator
	// nameKey keys the digest the audit log records for a login name no
	// account has (unknownName); it lives only in this process.
	nameKey [32]byte
	// allowed throttles each allow-listed address on its own, mildly.
	allowed     *regulate.Regulator
	allow       atomic.Pointer[[]netip.Prefix]
	blockAlerts blockAlerts
	log         *slog.Logger
	// testHookAccountRead, if set, runs when a login has read the account
	// and not yet checked the password: tests change the account there.
	testHookAccountRead func()

	clockState ClockState
	notifier   Notifier
	mailer     CodeMailer
}

// Deps are the Service's collaborators.
type Deps struct {
	Store  *store.Store
	Clock  clock.Clock
	Hasher *account.Hasher
	Log    *slog.Logger
}

// New returns a Service and makes sure the built-in admin exists.
func New(ctx context.Context, cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	sm, err := session.NewManager(d.Clock, cfg.Sessions)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg: cfg, store: d.Store, clock: d.Clock, hasher: d.Hasher, sessions: sm, log: d.Log,
		clients:  regulate.New(d.Clock, cfg.Clients),
		accounts: regulate.New(d.Clock, cfg.Accounts),
		unknown:  regulate.New(d.Clock, cfg.Accounts),
		allowed:  regulate.New(d.Clock, cfg.AllowListed),
	}
	if _, err := rand.Read(s.nameKey[:]); err != nil {
		return nil, fmt.Errorf("auth: key for unknown names: %w", err)
	}
	if err := s.bootstrap(ctx); err != nil {
		return nil, err
	}
	if err := s.loadBlocking(); err != nil {
		return nil, err
	}
	return s, nil
}

// SetClockState connects the clock's state (nil: always synchronized).
func (s *Service) SetClockState(c ClockState) { s.clockState = c }

// SetNotifier connects security notices (nil: none).
func (s *Service) SetNotifier(n Notifier) { s.notifier = n }

// Sessions exposes the session manager (for the API's middleware).
func (s *Service) Sessions() *session.Manager { return s.sessions }

// Store exposes the database to packages that own other state in it.
func (s *Service) Store() *store.Store { return s.store }

// DeviceName returns the configured device name.
func (s *Service) DeviceName() string { return s.cfg.DeviceName }

func (s *Service) bootstrap(ctx context.Context) error {
	exists := false
	err := s.store.View(func(tx *store.Tx) error {
		_, err := tx.User(store.AdminName)
		if err == nil {
			exists = true
			return nil
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("auth: read admin: %w", err)
	}
	if exists {
		return nil
	}
	hash, err := s.hasher.Hash(ctx, s.cfg.DefaultPassword)
	if err != nil {
		return fmt.Errorf("auth: hash default password: %w", err)
	}
	now := s.clock.Now()
	return s.store.Update(func(tx *store.Tx) error {
		err := tx.CreateUser(store.User{Name: store.AdminName, Role: store.RoleAdmin, PasswordHash: hash,
			MustChangePassword: true, Created: now, PasswordChanged: now})
		if err != nil && !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("auth: create admin: %w", err)
		}
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: "admin_created", User: store.AdminName, Detail: "built-in admin with the device's default password"})
	})
}

// audit appends an entry in its own transaction; a failure is logged, not
// returned, so an audit problem never decides a login.
func (s *Service) audit(e store.AuditEntry) {
	e.Time = s.clock.Now()
	if err := s.store.Batch(func(tx *store.Tx) error { return tx.AppendAudit(e) }); err != nil {
		s.log.Error("audit write failed", "event", e.Event, "err", err)
	}
}

// auditNow is audit for an event that came after an argon2 check (a
// login): such events are at most the hashing cap at once, so there is
// nothing to gather into a batch, and waiting for one (the store's batch
// delay) would add to every login.
func (s *Service) auditNow(e store.AuditEntry) {
	e.Time = s.clock.Now()
	if err := s.store.Update(func(tx *store.Tx) error { return tx.AppendAudit(e) }); err != nil {
		s.log.Error("audit write failed", "event", e.Event, "err", err)
	}
}

// defaultPasswordFor is the password name's new password must not be: the
// device's default for the built-in admin, which a RESET gives it and which
// it must leave at its next login; none for other accounts. Refusing the
// default for every account let any signed-in user, or a program with an
// admin app password, test guesses at it with no throttle: a refusal named
// the right one.
func (s *Service) defaultPasswordFor(name string) string {
	if name == store.AdminName {
		return s.cfg.DefaultPassword
	}
	return ""
}

// unknownName is what the audit log records for a login name no account
// has. A user who typed the password into the name field would otherwise
// leave it there for every admin to read, in the CSV export too. The digest,
// keyed with a key that never leaves this process, still shows an admin
// that the same name came back, and tells nothing of what it was. The
// parentheses keep it from reading as an account's name, which cannot hold
// them.
func (s *Service) unknownName(name string) string {
	m := hmac.New(sha256.New, s.nameKey[:])
	m.Write([]byte(name))
	return "(unknown name " + hex.EncodeToString(m.Sum(nil)[:4]) + ")"
}

func (s *Service) notify(u store.User, event string, details map[string]string) {
	if s.notifier != nil && u.SecurityEmailVerified {
		s.notifier.Notify(u, event, details)
	}
}

// clockSuspect reports that a failed code may be the clock's fault.
func (s *Service) clockSuspect() bool {
	return s.clockState != nil && !s.clockState.Synchronized()
}

// Now is the time as the service reads it, the time TOTP codes are checked
// against.
func (s *Service) Now() time.Time { return s.clock.Now() }

// ClockStatus says how far the clock is to be believed: "synchronized",
// "estimated" (plausible, not confirmed by NTP) or "untrusted"; "" when no
// clock state is connected.
func (s *Service) ClockStatus() string {
	switch {
	case s.clockState == nil:
		return ""
	case s.clockState.Synchronized():
		return "synchronized"
	case s.clockState.Trusted():
		return "estimated"
	}
	return "untrusted"
}

// ClockTrusted reports whether the time is plausible (for enrolment).
func (s *Service) ClockTrusted() bool {
	return s.clockState == nil || s.clockState.Trusted()
}

// user reads one account.
func (s *Service) user(name string) (store.User, error) { return s.store.User(name) }

// User returns the account called name.
func (s *Service) User(name string) (store.User, error) {
	u, err := s.user(name)
	if errors.Is(err, store.ErrNotFound) {
		return u, newErr(CodeNotFound, "no such account")
	}
	if err != nil {
		return u, errInternal(err)
	}
	return u, nil
}

// updateUser runs fn on the account in one transaction.
func (s *Service) updateUser(name string, fn func(tx *store.Tx, u *store.User) error) (store.User, error) {
	var out store.User
	err := s.store.Update(func(tx *store.Tx) error {
		u, err := tx.User(name)
		if err != nil {
			return err
		}
		if err := fn(tx, &u); err != nil {
			return err
		}
		out = u
		return tx.PutUser(u)
	})
	return out, err
}

// AuditLog returns up to limit entries older than before (0: newest).
func (s *Service) AuditLog(limit int, before uint64) ([]store.AuditEntry, error) {
	return s.AuditLogMatching(limit, before, store.AuditFilter{})
}

// AuditLogMatching is AuditLog of the entries f selects.
func (s *Service) AuditLogMatching(limit int, before uint64, f store.AuditFilter) ([]store.AuditEntry, error) {
	var out []store.AuditEntry
	err := s.store.View(func(tx *store.Tx) error {
		var err error
		out, err = tx.AuditMatching(limit, before, f)
		return err
	})
	if err != nil {
		return nil, errInternal(err)
	}
	return out, nil
}

// AdminReset drops what memory holds about the built-in admin after a
// physical reset: every admin account's sessions and pending logins end
// (an attacker's admin account must not take the built-in admin back), and
// the admin's failure counters are cleared, so the owner standing at the
// device gets straight in. It also sends the reset's notice to noticeTo,
// the admin's security email until the reset removed it.
func (s *Service) AdminReset(source, noticeTo string) {
	s.sessions.RevokeUser(store.AdminName, "")
	if users, err := s.Users(); err == nil {
		for _, u := range users {
			if u.Role == store.RoleAdmin {
				s.sessions.RevokeUser(u.Name, "")
			}
		}
	} else {
		s.log.Error("physical reset: list admins to end their sessions", "err", err)
	}
	s.accounts.Reset(store.AdminName)
	s.forgetKept(BlockAccount, store.AdminName)
	if u, err := s.user(store.AdminName); err == nil && noticeTo != "" {
		u.SecurityEmail, u.SecurityEmailVerified = noticeTo, true
		s.notify(u, "physical_reset", map[string]string{"source": source})
	}
}

// Audit records an event from another package (recovery, time, mail).
func (s *Service) Audit(e store.AuditEntry) { s.audit(e) }
