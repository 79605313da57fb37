package store

import "sync"

// readCache keeps decoded accounts and the 2FA policy between writes: every
// session-checked request reads both, and decoding them from JSON was most
// of such a request's cost. Any write transaction empties it, before it
// begins and after it ends, and only read-only transactions use it, so a
// read never sees an entry older than the newest write that had returned
// when the read began.
type readCache struct {
	mu sync.Mutex
	// gen changes at the start and the end of every write transaction; an
	// entry is only stored and only served under the generation its read
	// began in, with no write in progress.
	gen     uint64
	writing int
	users   map[string]User
	policy  *Policy
}

// beginWrite and endWrite bracket every write transaction.
func (c *readCache) beginWrite() {
	c.mu.Lock()
	c.writing++
	c.bumpLocked()
	c.mu.Unlock()
}

func (c *readCache) endWrite() {
	c.mu.Lock()
	c.writing--
	c.bumpLocked()
	c.mu.Unlock()
}

func (c *readCache) bumpLocked() {
	c.gen++
	c.users, c.policy = nil, nil
}

// generation returns the generation a read beginning now belongs to, and
// whether the cache may serve it at all.
func (c *readCache) generation() (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen, c.writing == 0
}

func (c *readCache) user(gen uint64, name string) (User, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.users[name]
	if !ok || gen != c.gen || c.writing != 0 {
		return User{}, false
	}
	return u.clone(), true
}

func (c *readCache) putUser(gen uint64, name string, u User) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.writing != 0 {
		return
	}
	if c.users == nil {
		c.users = map[string]User{}
	}
	c.users[name] = u.clone()
}

func (c *readCache) getPolicy(gen uint64) (Policy, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.policy == nil || gen != c.gen || c.writing != 0 {
		return Policy{}, false
	}
	return c.policy.clone(), true
}

func (c *readCache) putPolicy(gen uint64, p Policy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.writing != 0 {
		return
	}
	cp := p.clone()
	c.policy = &cp
}

// clone returns a copy of u that shares no memory with it: callers change
// the users they read (and write them back), and the cache's copy must not
// change with them.
func (u User) clone() User {
	c := u
	c.Groups = cloneSlice(u.Groups)
	c.WebAuthnID = cloneSlice(u.WebAuthnID)
	c.TOTP.RecoveryCodes = cloneSlice(u.TOTP.RecoveryCodes)
	c.MailsSent = cloneSlice(u.MailsSent)
	c.EmergencySent = cloneSlice(u.EmergencySent)
	if u.Passkeys != nil {
		c.Passkeys = make([]Passkey, len(u.Passkeys))
		for i, p := range u.Passkeys {
			p.ID = cloneSlice(p.ID)
			p.Credential = cloneSlice(p.Credential)
			c.Passkeys[i] = p
		}
	}
	return c
}

func (p Policy) clone() Policy {
	c := p
	c.Users = cloneSlice(p.Users)
	c.Groups = cloneSlice(p.Groups)
	return c
}

// cloneSlice copies s, keeping nil nil (JSON and reflect.DeepEqual tell nil
// from empty).
func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}
