// Package account holds the rules for accounts: argon2id password hashing in
// PHC format under a concurrency cap, the password policy and name rules.
package account

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id parameters.
//
// The defaults are chosen for a Cortex-A55 class board (RK3566/RK3568, four
// cores at about 2 GHz, 2 to 8 GiB of LPDDR4): 2 passes over 32 MiB with 2
// lanes. argon2id's cost is memory bandwidth; a Cortex-A55 moves memory about
// four to six times slower than the x86 development machines, where these
// parameters take 50 to 90 ms, so a hash costs about 0.25 to 0.45 s on the
// board, the budget for an interactive login. 32 MiB keeps the
// concurrency cap (see Hasher) meaningful on a 2 GiB board and stays above
// OWASP's minimum (19 MiB, t=2). Two lanes use two of the four cores, so a
// single login is fast while two logins at once still share the CPU fairly.
type Params struct {
	Time    uint32 `json:"time"`
	MemKiB  uint32 `json:"memory_kib"`
	Threads uint8  `json:"threads"`
	KeyLen  uint32 `json:"key_len"`
	SaltLen uint32 `json:"salt_len"`
}

// DefaultParams are the parameters new hashes use unless configured.
var DefaultParams = Params{Time: 2, MemKiB: 32 * 1024, Threads: 2, KeyLen: 32, SaltLen: 16}

// Validate checks that p is usable and not dangerously weak, naming the
// offending option.
func (p Params) Validate() error {
	switch {
	case p.Time < 1 || p.Time > 20:
		return fmt.Errorf("argon2 time: %d is outside 1..20", p.Time)
	case p.MemKiB < 8*1024 || p.MemKiB > 1024*1024:
		return fmt.Errorf("argon2 memory_kib: %d is outside 8192..1048576", p.MemKiB)
	case p.Threads < 1 || p.Threads > 16:
		return fmt.Errorf("argon2 threads: %d is outside 1..16", p.Threads)
	case p.KeyLen < 16 || p.KeyLen > 64:
		return fmt.Errorf("argon2 key_len: %d is outside 16..64", p.KeyLen)
	case p.SaltLen < 16 || p.SaltLen > 64:
		return fmt.Errorf("argon2 salt_len: %d is outside 16..64", p.SaltLen)
	}
	return nil
}

// ErrBadHash is returned for a stored hash that is not a PHC argon2id string.
var ErrBadHash = errors.New("account: malformed password hash")

var b64 = base64.RawStdEncoding

// hashWith derives a PHC string for password with the given salt.
func hashWith(password string, salt []byte, p Params) string {
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemKiB, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// phc is a parsed PHC argon2id string.
type phc struct {
	params Params
	salt   []byte
	key    []byte
}

// parsePHC parses "$argon2id$v=19$m=..,t=..,p=..$salt$key".
func parsePHC(s string) (phc, error) {
	var out phc
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return out, fmt.Errorf("%w: not an argon2id PHC string", ErrBadHash)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return out, fmt.Errorf("%w: version %q", ErrBadHash, parts[2])
	}
	var m, t, p uint64
	seen := 0
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return out, fmt.Errorf("%w: parameter %q", ErrBadHash, kv)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return out, fmt.Errorf("%w: parameter %q", ErrBadHash, kv)
		}
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			if n > 255 {
				return out, fmt.Errorf("%w: parameter %q", ErrBadHash, kv)
			}
			p = n
		default:
			return out, fmt.Errorf("%w: parameter %q", ErrBadHash, kv)
		}
		seen++
	}
	if seen != 3 {
		return out, fmt.Errorf("%w: want m, t and p", ErrBadHash)
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return out, fmt.Errorf("%w: salt", ErrBadHash)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil {
		return out, fmt.Errorf("%w: key", ErrBadHash)
	}
	out.params = Params{Time: uint32(t), MemKiB: uint32(m), Threads: uint8(p), KeyLen: uint32(len(key)), SaltLen: uint32(len(salt))}
	if err := out.params.Validate(); err != nil {
		return out, fmt.Errorf("%w: %v", ErrBadHash, err)
	}
	out.salt, out.key = salt, key
	return out, nil
}

// newSalt returns n random bytes.
func newSalt(n uint32) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand.Read never fails on Linux >= 3.17; a broken
		// random source must not produce predictable salts.
		panic("account: crypto/rand failed: " + err.Error())
	}
	return b
}

// verifyHash compares password against a parsed hash in constant time.
func verifyHash(password string, h phc) bool {
	key := argon2.IDKey([]byte(password), h.salt, h.params.Time, h.params.MemKiB, h.params.Threads, h.params.KeyLen)
	return subtle.ConstantTimeCompare(key, h.key) == 1
}

// NeedsRehash tells whether a stored hash uses other parameters than p, so
// a successful login can upgrade it.
func NeedsRehash(stored string, p Params) bool {
	h, err := parsePHC(stored)
	if err != nil {
		return true
	}
	return h.params.Time != p.Time || h.params.MemKiB != p.MemKiB || h.params.Threads != p.Threads ||
		h.params.KeyLen != p.KeyLen || h.params.SaltLen != p.SaltLen
}
