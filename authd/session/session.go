// Package session keeps login sessions and the short-lived challenges of the
// two-step login in memory, with idle and absolute expiry measured on the
// monotonic clock so a step of the wall clock neither extends nor cuts them.
//
// Sessions live in memory on purpose: a reboot of the NAS logs everybody out,
// and no session token is ever written to the state partition.
package session

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/rknas/firmware/authd/clock"
)

// Kind says what a session may do.
type Kind string

// Session kinds.
const (
	// Full sessions may use the whole API their role allows.
	Full Kind = "full"
	// PasswordChange sessions may only set a new password.
	PasswordChange Kind = "password_change"
	// Enroll sessions may only enrol an authenticator.
	Enroll Kind = "enroll"
)

// Session is a logged-in client.
type Session struct {
	// ID is a public identifier (not the token) for listing and logs.
	ID        string
	User      string
	Kind      Kind
	Created   time.Time
	LastSeen  time.Time
	Client    string
	UserAgent string
	// SteppedUp is when the account's password (and code) was last given
	// again in this session, for sensitive changes; zero if never.
	SteppedUp time.Time
}

// SteppedUpWithin reports whether the session stepped up at most d before now.
// With the system clock both times carry Go's monotonic reading, so the
// difference is time that really passed: setting the wall clock back does
// not make an old step-up fresh again (and forward does not end one).
func (s Session) SteppedUpWithin(now time.Time, d time.Duration) bool {
	return !s.SteppedUp.IsZero() && now.Sub(s.SteppedUp) <= d && !now.Before(s.SteppedUp)
}

// Config sets expiry and bounds.
type Config struct {
	Idle     time.Duration
	Absolute time.Duration
	// ChallengeTTL is how long the code step may follow the password.
	ChallengeTTL time.Duration
	// MaxPerUser bounds sessions (and separately challenges) per account:
	// the oldest goes first.
	MaxPerUser int
	// MaxTotal bounds all sessions (and separately all challenges).
	MaxTotal int
}

// DefaultConfig: 30 minutes idle, 12 hours at most, 5 minutes for the code.
var DefaultConfig = Config{Idle: 30 * time.Minute, Absolute: 12 * time.Hour, ChallengeTTL: 5 * time.Minute, MaxPerUser: 32, MaxTotal: 20000}

// Validate names the first bad option.
func (c Config) Validate() error {
	switch {
	case c.Idle < time.Minute:
		return fmt.Errorf("session idle timeout %v: at least 1m", c.Idle)
	case c.Absolute < c.Idle:
		return fmt.Errorf("session absolute timeout %v: at least the idle timeout %v", c.Absolute, c.Idle)
	case c.ChallengeTTL < 30*time.Second || c.ChallengeTTL > 30*time.Minute:
		return fmt.Errorf("challenge ttl %v: between 30s and 30m", c.ChallengeTTL)
	case c.MaxPerUser < 1 || c.MaxTotal < c.MaxPerUser:
		return fmt.Errorf("session bounds %d per user, %d total: need 1 <= per user <= total", c.MaxPerUser, c.MaxTotal)
	}
	return nil
}

// ErrChallenge means the challenge is unknown, expired, used, or belongs to
// another client.
var ErrChallenge = errors.New("session: challenge expired or invalid")

type tokenHash [32]byte

// hashToken hashes a token from a stack copy when it fits (a session token
// is 43 bytes): every session-checked request hashes one.
func hashToken(token string) tokenHash {
	var buf [64]byte
	if len(token) <= len(buf) {
		return sha256.Sum256(append(buf[:0], token...))
	}
	return sha256.Sum256([]byte(token))
}

// NewToken returns 256 random bits, base64url encoded.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("session: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken returns the hex SHA-256 of a token, the form stored for
// long-lived tokens (trusted devices).
func HashToken(token string) string {
	h := hashToken(token)
	return hex.EncodeToString(h[:])
}

// Challenge is the pending second step of a login.
type Challenge struct {
	User    string
	Client  string
	Created time.Time
	// Gen is the account's Generation the password step read.
	Gen uint64
	// Emergency holds the hash of an emailed emergency code for this
	// challenge, if one was sent.
	EmergencyHash  string
	EmergencyUntil time.Time
	// failures counts wrong codes, inFlight codes being checked.
	failures, inFlight int
}

// MaxCodeTries is how many wrong codes void a challenge: the owner types a
// code a few times at most; a guesser must start again from the password.
const MaxCodeTries = 5

// ErrTooManyCodes means a challenge's codes in flight and wrong codes
// already reach MaxCodeTries.
var ErrTooManyCodes = errors.New("session: too many codes for this login")

// Manager holds sessions and challenges. It is safe for concurrent use.
type Manager struct {
	mu         sync.Mutex
	clock      clock.Clock
	cfg        Config
	sessions   map[tokenHash]*Session
	challenges map[tokenHash]*Challenge
	// gens counts each account's RevokeUser calls (see Generation).
	gens map[string]uint64
}

// ErrStale says the account's sessions were ended after the login read the
// account: it checked a password or a second factor that may be gone.
var ErrStale = errors.New("session: the account changed during the login")

// NewManager returns an empty Manager.
func NewManager(c clock.Clock, cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return &Manager{clock: c, cfg: cfg, sessions: map[tokenHash]*Session{}, challenges: map[tokenHash]*Challenge{}, gens: map[string]uint64{}}, nil
}

// Config returns the manager's configuration.
func (m *Manager) Config() Config { return m.cfg }

// Generation returns user's session generation, which every RevokeUser
// moves on. A login reads it before it reads the account and gives it to
// NewChallenge and Create, which refuse with ErrStale if it moved since: a
// password change (or any change that ends the account's sessions) made
// while the login checked the old password must not be outlived by the
// session that login makes.
func (m *Manager) Generation(user string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gens[user]
}

// Create starts a session and returns its token; gen is the account's
// Generation read before the account was.
func (m *Manager) Create(user string, kind Kind, client, userAgent string, gen uint64) (string, Session, error) {
	token, err := NewToken()
	if err != nil {
		return "", Session{}, err
	}
	id, err := NewToken()
	if err != nil {
		return "", Session{}, err
	}
	now := m.clock.Now()
	s := &Session{ID: id[:16], User: user, Kind: kind, Created: now, LastSeen: now, Client: client, UserAgent: userAgent}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gens[user] != gen {
		return "", Session{}, ErrStale
	}
	m.expireLocked(now)
	m.boundLocked(user)
	m.sessions[hashToken(token)] = s
	return token, *s, nil
}

func (m *Manager) alive(s *Session, now time.Time) bool {
	return now.Sub(s.LastSeen) < m.cfg.Idle && now.Sub(s.Created) < m.cfg.Absolute
}

// Lookup returns the live session of token and marks it used.
func (m *Manager) Lookup(token string) (Session, bool) {
	if token == "" {
		return Session{}, false
	}
	h := hashToken(token)
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[h]
	if !ok {
		return Session{}, false
	}
	if !m.alive(s, now) {
		delete(m.sessions, h)
		return Session{}, false
	}
	s.LastSeen = now
	return *s, true
}

// Rotate gives the session of token a new token and the kind kind, and ends
// the old token: a session that changes kind (a password change lifts it,
// an enrolment completes) or has its password changed is a new session to
// anyone who held the old token. It keeps its creation time (its absolute
// expiry) and ID.
func (m *Manager) Rotate(token string, kind Kind) (string, Session, bool) {
	return m.rotate(token, func(s *Session) { s.Kind = kind })
}

// StepUp records that the session of token gave the password (and code)
// again now, and rotates its token.
func (m *Manager) StepUp(token string) (string, Session, bool) {
	now := m.clock.Now()
	return m.rotate(token, func(s *Session) { s.SteppedUp = now })
}

func (m *Manager) rotate(token string, change func(*Session)) (string, Session, bool) {
	next, err := NewToken()
	if err != nil {
		return "", Session{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	h := hashToken(token)
	s, ok := m.sessions[h]
	if !ok || !m.alive(s, m.clock.Now()) {
		delete(m.sessions, h)
		return "", Session{}, false
	}
	delete(m.sessions, h)
	change(s)
	m.sessions[hashToken(next)] = s
	return next, *s, true
}

// Delete ends the session of token.
func (m *Manager) Delete(token string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, hashToken(token))
}

// RevokeUser ends every session of user except the one of keepToken ("" for
// none), and every pending challenge of user, and says how many sessions
// ended. It moves the account's Generation on, so a login that read the
// account before cannot start a session after.
func (m *Manager) RevokeUser(user, keepToken string) int {
	keep := hashToken(keepToken)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gens[user]++
	n := 0
	for h, s := range m.sessions {
		if s.User == user && (keepToken == "" || h != keep) {
			delete(m.sessions, h)
			n++
		}
	}
	for h, c := range m.challenges {
		if c.User == user {
			delete(m.challenges, h)
		}
	}
	return n
}

// List returns the live sessions of user, newest first.
func (m *Manager) List(user string) []Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	var out []Session
	for _, s := range m.sessions {
		if s.User == user && m.alive(s, now) {
			out = append(out, *s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// End ends the session of user with the public ID id, and reports whether
// there was one. The ID, not the token, names it: a listing shows IDs, and
// an ID cannot be used to act as the session.
func (m *Manager) End(user, id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for h, s := range m.sessions {
		if s.User == user && s.ID == id {
			delete(m.sessions, h)
			return true
		}
	}
	return false
}

// Count returns the number of live sessions of user ("" for all).
func (m *Manager) Count(user string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	now := m.clock.Now()
	for _, s := range m.sessions {
		if (user == "" || s.User == user) && m.alive(s, now) {
			n++
		}
	}
	return n
}

// expireLocked drops dead sessions and challenges when the maps are large,
// so memory follows use.
func (m *Manager) expireLocked(now time.Time) {
	if len(m.sessions) >= m.cfg.MaxTotal/2 {
		for h, s := range m.sessions {
			if !m.alive(s, now) {
				delete(m.sessions, h)
			}
		}
	}
	if len(m.challenges) >= m.cfg.MaxTotal/2 {
		for h, c := range m.challenges {
			if m.challengeDead(c, now) {
				delete(m.challenges, h)
			}
		}
	}
}

// boundLocked makes room for one more session of user.
func (m *Manager) boundLocked(user string) {
	type item struct {
		h tokenHash
		t time.Time
	}
	var mine, all []item
	for h, s := range m.sessions {
		if s.User == user {
			mine = append(mine, item{h, s.LastSeen})
		}
		if len(m.sessions) >= m.cfg.MaxTotal {
			all = append(all, item{h, s.LastSeen})
		}
	}
	drop := func(items []item, keep int) {
		if len(items) <= keep {
			return
		}
		sort.Slice(items, func(i, j int) bool { return items[i].t.Before(items[j].t) })
		for _, it := range items[:len(items)-keep] {
			delete(m.sessions, it.h)
		}
	}
	drop(mine, m.cfg.MaxPerUser-1)
	drop(all, m.cfg.MaxTotal-1)
}

// NewChallenge records that user passed the password step from client and
// returns the challenge token for the code step; gen is as for Create, and
// the challenge keeps it for the session the code step makes.
func (m *Manager) NewChallenge(user, client string, gen uint64) (string, error) {
	token, err := NewToken()
	if err != nil {
		return "", err
	}
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gens[user] != gen {
		return "", ErrStale
	}
	m.expireLocked(now)
	var oldest tokenHash
	var oldestT time.Time
	mine := 0
	for h, c := range m.challenges {
		if c.User == user {
			mine++
			if oldestT.IsZero() || c.Created.Before(oldestT) {
				oldest, oldestT = h, c.Created
			}
		}
	}
	if mine >= m.cfg.MaxPerUser {
		delete(m.challenges, oldest)
	}
	if len(m.challenges) >= m.cfg.MaxTotal {
		for h, c := range m.challenges {
			if now.Sub(c.Created) >= m.cfg.ChallengeTTL/2 {
				delete(m.challenges, h)
			}
		}
		if len(m.challenges) >= m.cfg.MaxTotal {
			return "", errors.New("session: too many pending logins")
		}
	}
	m.challenges[hashToken(token)] = &Challenge{User: user, Client: client, Created: now, Gen: gen}
	return token, nil
}

// Challenge returns the live challenge of token if it belongs to client.
func (m *Manager) Challenge(token, client string) (Challenge, error) {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	h := hashToken(token)
	c, ok := m.challenges[h]
	if !ok {
		return Challenge{}, ErrChallenge
	}
	if m.challengeDead(c, now) {
		delete(m.challenges, h)
		return Challenge{}, ErrChallenge
	}
	if c.Client != client {
		return Challenge{}, ErrChallenge
	}
	return *c, nil
}

// BeginCode reserves a code check on the challenge of token for client, so
// codes sent at once cannot all be checked: it fails with ErrChallenge when
// the challenge is gone or belongs to another client, and with
// ErrTooManyCodes while its wrong codes and the checks in flight reach
// MaxCodeTries. end(true) records a wrong code (the MaxCodeTries-th voids
// the challenge); end(false) ends the check without one.
func (m *Manager) BeginCode(token, client string) (Challenge, func(wrong bool), error) {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	h := hashToken(token)
	c, ok := m.challenges[h]
	if !ok || c.Client != client {
		return Challenge{}, nil, ErrChallenge
	}
	if m.challengeDead(c, now) {
		delete(m.challenges, h)
		return Challenge{}, nil, ErrChallenge
	}
	if c.failures+c.inFlight >= MaxCodeTries {
		return Challenge{}, nil, ErrTooManyCodes
	}
	c.inFlight++
	var once sync.Once
	end := func(wrong bool) {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			c.inFlight--
			if wrong {
				c.failures++
				if c.failures >= MaxCodeTries {
					delete(m.challenges, h)
				}
			}
		})
	}
	return *c, end, nil
}

// challengeDead tells whether a challenge has expired: after ChallengeTTL,
// or after its emailed emergency code's validity if that is later.
func (m *Manager) challengeDead(c *Challenge, now time.Time) bool {
	return now.Sub(c.Created) >= m.cfg.ChallengeTTL && !now.Before(c.EmergencyUntil)
}

// SetEmergency attaches the hash of an emailed emergency code to the
// challenge of token, valid until until.
func (m *Manager) SetEmergency(token, codeHash string, until time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.challenges[hashToken(token)]
	if ok {
		c.EmergencyHash, c.EmergencyUntil = codeHash, until
	}
	return ok
}

// Consume ends the challenge of token; it reports false if it was already
// gone, so two requests racing with the same challenge cannot both win.
func (m *Manager) Consume(token string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := hashToken(token)
	_, ok := m.challenges[h]
	delete(m.challenges, h)
	return ok
}
