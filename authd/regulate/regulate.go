// Package regulate throttles failed authentication attempts per key (a
// client address or an account) with bounded memory and growing bans for
// repeat offenders.
package regulate

import (
	"container/list"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rknas/firmware/authd/clock"
)

// Limits configure one Regulator.
type Limits struct {
	// MaxFailures failures within Window ban the key.
	MaxFailures int
	Window      time.Duration
	// The first ban lasts BaseBan; each further ban while the key is still
	// remembered as an offender doubles it, up to MaxBan.
	BaseBan time.Duration
	MaxBan  time.Duration
	// Forget is how long a key must stay quiet before its offences are
	// forgotten.
	Forget time.Duration
	// MaxKeys bounds memory. When full, the least recently active key that
	// is not banned is dropped (banned ones only if all are banned).
	MaxKeys int
}

// ClientLimits are the defaults per client address: 5 failures in 5
// minutes, bans from 5 minutes doubling to a day.
var ClientLimits = Limits{MaxFailures: 5, Window: 5 * time.Minute, BaseBan: 5 * time.Minute, MaxBan: 24 * time.Hour, Forget: 24 * time.Hour, MaxKeys: 16384}

// AccountLimits are the defaults per account, across all addresses: they
// bound guesses spread over many addresses to 10 per 15 minutes.
var AccountLimits = Limits{MaxFailures: 10, Window: 15 * time.Minute, BaseBan: 15 * time.Minute, MaxBan: 24 * time.Hour, Forget: 24 * time.Hour, MaxKeys: 16384}

// AllowListLimits are the defaults per address on the owner's allow-list:
// 10 failures in 5 minutes make it wait a minute, never longer, and its
// failures do not count against the account.
var AllowListLimits = Limits{MaxFailures: 10, Window: 5 * time.Minute, BaseBan: time.Minute, MaxBan: time.Minute, Forget: time.Hour, MaxKeys: 4096}

// failure is one failure of a key and who made it: for an account, the
// client's key, so a success forgives that client's failures alone.
type failure struct {
	at   time.Time
	from string
}

type entry struct {
	key         string
	failures    []failure // within Window, oldest first, at most MaxFailures
	inFlight    int       // attempts begun and not yet ended
	bannedUntil time.Time
	offences    int
	last        time.Time
	elem        *list.Element
}

// InFlightWait is the wait given to an attempt refused because the key's
// attempts in flight already use up what its limit allows: they end within
// a password hash or a database commit.
const InFlightWait = time.Second

// Attempt is an attempt in flight for one key, reserved by Begin. End it
// with Fail, FailFrom or Release; the zero Attempt (a refused one) does
// nothing.
type Attempt struct {
	r   *Regulator
	key string
}

// Begin reserves an attempt for key before its work (a password hash, a
// code check) is done, so attempts sent at once cannot all be judged: it is
// refused with the wait while key is banned, or while key's recent
// failures and its attempts in flight already reach the limit. The
// attempt counts against the limit until it ends.
func (r *Regulator) Begin(key string) (Attempt, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now()
	e := r.touch(key, now)
	if wait := e.bannedUntil.Sub(now); wait > 0 {
		return Attempt{}, wait
	}
	e.failures = prune(e.failures, now.Add(-r.limits.Window))
	if len(e.failures)+e.inFlight >= r.limits.MaxFailures {
		return Attempt{}, InFlightWait
	}
	e.inFlight++
	return Attempt{r: r, key: key}, 0
}

// Fail ends the attempt as a failure and returns the ban the key now
// carries (0 if none).
func (a Attempt) Fail() time.Duration { return a.FailFrom("") }

// FailFrom is Fail for a failure made by from (a client's key).
func (a Attempt) FailFrom(from string) time.Duration {
	if a.r == nil {
		return 0
	}
	a.r.end(a.key)
	return a.r.FailFrom(a.key, from)
}

// Release ends the attempt without a verdict: it succeeded, or could not be
// judged (the server was busy).
func (a Attempt) Release() {
	if a.r != nil {
		a.r.end(a.key)
	}
}

func (r *Regulator) end(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.entries[key]; ok && e.inFlight > 0 {
		e.inFlight--
	}
}

// Regulator counts failures per key. It is safe for concurrent use.
type Regulator struct {
	mu      sync.Mutex
	clock   clock.Clock
	limits  Limits
	entries map[string]*entry
	lru     *list.List // front = most recently active
}

// New returns a Regulator with the given limits.
func New(c clock.Clock, l Limits) *Regulator {
	return &Regulator{clock: c, limits: l, entries: make(map[string]*entry), lru: list.New()}
}

// Check returns how long key must wait before trying again (0 if it may
// try now).
func (r *Regulator) Check(key string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[key]
	if !ok {
		return 0
	}
	now := r.clock.Now()
	if wait := e.bannedUntil.Sub(now); wait > 0 {
		return wait
	}
	return 0
}

// Fail records a failure for key and returns the ban it now carries (0 if
// none).
func (r *Regulator) Fail(key string) time.Duration { return r.FailFrom(key, "") }

// FailFrom is Fail for a failure made by from (a client's key).
func (r *Regulator) FailFrom(key, from string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now()
	e := r.touch(key, now)
	if e.bannedUntil.After(now) {
		// Failures while banned do not count again: the ban already
		// answers them, and a client hammering during a ban must not
		// make the owner's own wait endless.
		return e.bannedUntil.Sub(now)
	}
	e.failures = append(prune(e.failures, now.Add(-r.limits.Window)), failure{at: now, from: from})
	if len(e.failures) < r.limits.MaxFailures {
		return 0
	}
	ban := r.limits.BaseBan << min(e.offences, 30)
	if ban > r.limits.MaxBan || ban <= 0 {
		ban = r.limits.MaxBan
	}
	e.offences++
	e.failures = e.failures[:0]
	e.bannedUntil = now.Add(ban)
	return ban
}

// SucceedFrom forgets key's recent failures made by from, after a
// complete successful login by from (of the account key, with the client's
// key as from: a user's own mistyped passwords are forgiven, while failures
// from other addresses stay, or an attacker spread over many addresses
// would get a fresh allowance at each of the owner's logins; a client's own
// failures stay too, or one user could fail without end between logins of
// their own). Offences, and a running ban, stay.
func (r *Regulator) SucceedFrom(key, from string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.entries[key]; ok {
		kept := e.failures[:0]
		for _, f := range e.failures {
			if f.from != from {
				kept = append(kept, f)
			}
		}
		e.failures = kept
	}
}

// Reset forgets everything about key (the physical reset unlocks the
// admin account).
func (r *Regulator) Reset(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.entries[key]; ok {
		r.lru.Remove(e.elem)
		delete(r.entries, key)
	}
}

// Ban is a key's running ban, as kept across restarts.
type Ban struct {
	Key   string
	Until time.Time
	// Offences counts the bans while the key was remembered as an
	// offender; the next ban is twice as long.
	Offences int
}

// Ban returns key's running ban, if it has one.
func (r *Regulator) Ban(key string) (Ban, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[key]
	if !ok || !e.bannedUntil.After(r.clock.Now()) {
		return Ban{}, false
	}
	return Ban{Key: key, Until: e.bannedUntil, Offences: e.offences}, true
}

// Bans returns every running ban, the longest first.
func (r *Regulator) Bans() []Ban {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now()
	var out []Ban
	for _, e := range r.entries {
		if e.bannedUntil.After(now) {
			out = append(out, Ban{Key: e.key, Until: e.bannedUntil, Offences: e.offences})
		}
	}
	slices.SortFunc(out, func(a, b Ban) int {
		if c := b.Until.Compare(a.Until); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}

// Restore puts back a ban kept from before a restart. A ban already over
// is ignored; a key that has a longer ban keeps it.
func (r *Regulator) Restore(b Ban) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now()
	if !b.Until.After(now) {
		return
	}
	e := r.touch(b.Key, now)
	if b.Until.After(e.bannedUntil) {
		e.bannedUntil = b.Until
	}
	e.offences = max(e.offences, b.Offences)
}

// Len returns the number of keys remembered.
func (r *Regulator) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

func prune(fs []failure, cutoff time.Time) []failure {
	i := 0
	for i < len(fs) && !fs[i].at.After(cutoff) {
		i++
	}
	return append(fs[:0], fs[i:]...)
}

// touch returns key's entry, made if need be, as the most recently active.
func (r *Regulator) touch(key string, now time.Time) *entry {
	e := r.get(key, now)
	e.last = now
	r.lru.MoveToFront(e.elem)
	return e
}

func (r *Regulator) get(key string, now time.Time) *entry {
	if e, ok := r.entries[key]; ok {
		if now.Sub(e.last) > r.limits.Forget && !e.bannedUntil.After(now) {
			e.offences = 0
			e.failures = e.failures[:0]
		}
		return e
	}
	r.expire(now)
	if len(r.entries) >= r.limits.MaxKeys {
		r.evict(now)
	}
	e := &entry{key: key, failures: make([]failure, 0, r.limits.MaxFailures)}
	e.elem = r.lru.PushFront(e)
	r.entries[key] = e
	return e
}

// expire drops a few of the least recently active keys that have nothing
// left to remember, so memory follows the attack, not its peak.
func (r *Regulator) expire(now time.Time) {
	for i := 0; i < 4; i++ {
		back := r.lru.Back()
		if back == nil {
			return
		}
		e := back.Value.(*entry)
		if now.Sub(e.last) <= r.limits.Forget || e.bannedUntil.After(now) || e.inFlight > 0 {
			return
		}
		r.lru.Remove(back)
		delete(r.entries, e.key)
	}
}

// evict drops the least recently active key that is neither banned nor
// has attempts in flight, looking at a bounded number from the back;
// failing that, the oldest one without attempts in flight (whose count
// must not be lost).
func (r *Regulator) evict(now time.Time) {
	var victim, idle *list.Element
	el := r.lru.Back()
	for i := 0; el != nil && i < 64; i, el = i+1, el.Prev() {
		e := el.Value.(*entry)
		if e.inFlight > 0 {
			continue
		}
		if idle == nil {
			idle = el
		}
		if !e.bannedUntil.After(now) {
			victim = el
			break
		}
	}
	if victim == nil {
		victim = idle
	}
	if victim == nil {
		return
	}
	e := victim.Value.(*entry)
	r.lru.Remove(victim)
	delete(r.entries, e.key)
}

// ClientKey returns the throttling key of a client address: the address
// itself for IPv4, and for an IPv6 client on the device's own link (see
// OnLink), where every host has its addresses in one shared /64 and
// counting the /64 let one neighbour's failures block all of them; the /64
// of an IPv6 client from beyond a router, whose site usually owns a whole
// /64 and could rotate through it.
func ClientKey(addr netip.Addr, onLink bool) string {
	addr = addr.Unmap().WithZone("")
	if addr.Is6() && !onLink {
		p, err := addr.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return addr.String()
}

// OnLink reports whether the IPv6 peer is on the device's own link as seen
// from local, the device's address it reached: a link-local peer, or one in
// local's /64.
func OnLink(peer, local netip.Addr) bool {
	peer, local = peer.Unmap(), local.Unmap()
	if !peer.Is6() || !local.Is6() {
		return false
	}
	if peer.IsLinkLocalUnicast() {
		return true
	}
	p, err := local.Prefix(64)
	return err == nil && p.Contains(peer)
}
