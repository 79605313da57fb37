package auth

import (
	"errors"
	"time"

	"github.com/rknas/firmware/authd/regulate"
	"github.com/rknas/firmware/authd/session"
	"github.com/rknas/firmware/authd/store"
)

// Kinds of ban: what a lockout error names, what is kept across restarts
// and listed for admins.
const (
	BlockClient  = store.BanClient  // a client address (IPv6 from beyond a router: its /64)
	BlockAccount = store.BanAccount // an account, whatever the address
)

// limit is one throttle a guarded operation counts against. kind is the
// ban it leads to (BlockClient or BlockAccount); kept says whether that ban
// is kept across restarts, listed and announced (not for made-up names or
// allow-listed addresses).
type limit struct {
	r    *regulate.Regulator
	key  string
	kind string
	kept bool
}

// gate is an attempt reserved on several throttles at once. Every throttled
// operation begins one before its work (a hash, a code check) and ends it
// with fail or release, so requests sent at once are counted as they start,
// not only once they have been judged.
type gate struct {
	s        *Service
	limits   []limit
	attempts []regulate.Attempt
	client   Client
}

// begin reserves an attempt on every limit; when one refuses, those already
// reserved are released and the error says what is locked and how long to
// wait.
func (s *Service) begin(c Client, limits ...limit) (*gate, error) {
	g := &gate{s: s, limits: limits, attempts: make([]regulate.Attempt, 0, len(limits)), client: c}
	for _, l := range limits {
		a, wait := l.r.Begin(l.key)
		if wait > 0 {
			g.release()
			return nil, errLocked(l.kind, wait)
		}
		g.attempts = append(g.attempts, a)
	}
	return g, nil
}

// fail ends the attempt as a failure on every throttle; a ban it brings on
// is kept and announced.
func (g *gate) fail() {
	for i, a := range g.attempts {
		if ban := a.FailFrom(g.client.Key()); ban > 0 && g.limits[i].kept {
			g.s.banned(g.limits[i], g.client, ban)
		}
	}
}

// release ends the attempt without a failure.
func (g *gate) release() {
	for _, a := range g.attempts {
		a.Release()
	}
}

// client is the per-address throttle of c: the shared one, or for an
// address on the allow-list a mild one of its own that never bans for
// long and is not kept.
func (s *Service) client(c Client) limit {
	if s.allowListed(c.Addr) {
		return limit{r: s.allowed, key: c.Key(), kind: BlockClient}
	}
	return limit{r: s.clients, key: c.Key(), kind: BlockClient, kept: true}
}

// guard returns the throttles of a step of the account user taken by c:
// the client's and the account's. An allow-listed address is not held by
// the account-wide cap, so guessing from elsewhere cannot lock the owner
// out at home.
func (s *Service) guard(c Client, user string) []limit {
	if s.allowListed(c.Addr) {
		return []limit{s.client(c)}
	}
	return []limit{s.client(c), s.account(user)}
}

func (s *Service) account(name string) limit {
	return limit{r: s.accounts, key: name, kind: BlockAccount, kept: true}
}

// beginCode reserves a code check on a login challenge (at most
// session.MaxCodeTries wrong codes per challenge, checks in flight counted)
// and on the client and the account.
func (s *Service) beginCode(challenge string, c Client) (session.Challenge, func(wrong bool), error) {
	ch, end, err := s.sessions.BeginCode(challenge, c.Key())
	switch {
	case errors.Is(err, session.ErrTooManyCodes):
		return ch, nil, errLocked("", regulate.InFlightWait)
	case err != nil:
		return ch, nil, errChallengeExpired
	}
	g, err := s.begin(c, s.guard(c, ch.User)...)
	if err != nil {
		end(false)
		return ch, nil, err
	}
	return ch, func(wrong bool) {
		end(wrong)
		if wrong {
			g.fail()
		} else {
			g.release()
		}
	}, nil
}

// stepUpTTL is how long a step-up (the password, and a code, given again)
// lets a session make sensitive changes.
const stepUpTTL = 5 * time.Minute
