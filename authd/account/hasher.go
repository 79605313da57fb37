package account

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// ErrBusy is returned when every hashing slot stayed taken for the whole
// queue wait: the caller answers 503 with Retry-After.
var ErrBusy = errors.New("account: password hashing is at capacity")

// Hasher hashes and verifies passwords with at most Cap argon2id
// computations at once, so a flood of logins queues (briefly) instead of
// exhausting memory: peak hashing memory is Cap x Params.MemKiB.
type Hasher struct {
	params Params
	slots  chan struct{}
	wait   time.Duration
	// dummy is verified against when the account does not exist, so the
	// answer takes as long as for a real account: the same parameters, a
	// random salt and a random key. Verifying costs one argon2 run whatever
	// the key is, so it needs no argon2 run to make (on a slow board one is
	// a noticeable part of the boot), and no password is ever checked
	// against it as a match.
	dummy phc
	// runs counts the argon2 computations done for callers.
	runs atomic.Uint64
	// idle, when set, is called each time the last hash in progress ends.
	idle atomic.Pointer[func()]
	// waiting counts callers queued for a slot.
	waiting atomic.Int32
}

// OnIdle sets f to be called each time the last hash in progress ends (in
// the goroutine that ran it): authd gives argon2's memory back to the
// system then, instead of keeping it until the runtime's scavenger does.
func (h *Hasher) OnIdle(f func()) { h.idle.Store(&f) }

// NewHasher returns a Hasher with the given parameters and cap; a request
// waits at most wait for a slot.
func NewHasher(p Params, cap int, wait time.Duration) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	if cap < 1 {
		return nil, fmt.Errorf("account: hash concurrency %d: must be at least 1", cap)
	}
	h := &Hasher{params: p, slots: make(chan struct{}, cap), wait: wait,
		dummy: phc{params: p, salt: newSalt(p.SaltLen), key: newSalt(p.KeyLen)}}
	return h, nil
}

// Params returns the parameters new hashes use.
func (h *Hasher) Params() Params { return h.params }

// Cap returns the number of hashes that may run at once.
func (h *Hasher) Cap() int { return cap(h.slots) }

// Runs returns how many argon2 computations Hash and Verify have done (the
// dummy is made without one). Every Verify is exactly one run,
// whatever the stored hash: that is what keeps the answer's timing from
// telling whether an account exists, and tests hold it by this count.
func (h *Hasher) Runs() uint64 { return h.runs.Load() }

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	default:
	}
	h.waiting.Add(1)
	defer h.waiting.Add(-1)
	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return fmt.Errorf("account: waiting for a hashing slot: %w", ctx.Err())
	}
}

func (h *Hasher) release() {
	// A caller waiting for this slot would allocate its argon2 memory while
	// this hash's is still garbage the collector has not reached: collect
	// first, so the next hash reuses that memory and the peak under a
	// flood stays at Cap x MemKiB instead of one block more.
	if h.waiting.Load() > 0 {
		runtime.GC()
	}
	<-h.slots
	if f := h.idle.Load(); f != nil && len(h.slots) == 0 {
		(*f)()
	}
}

// Hash returns the PHC string of password.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	h.runs.Add(1)
	return hashWith(password, newSalt(h.params.SaltLen), h.params), nil
}

// Verify tells whether password matches the stored PHC string. An empty or
// malformed stored hash never matches but costs the same time, so the
// answer does not tell whether an account exists.
func (h *Hasher) Verify(ctx context.Context, password, stored string) (bool, error) {
	parsed, perr := parsePHC(stored)
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	if perr != nil {
		parsed = h.dummy
	}
	ok := h.matches(password, parsed)
	return ok && perr == nil, nil
}

// matches runs argon2 once, counted.
func (h *Hasher) matches(password string, p phc) bool {
	h.runs.Add(1)
	return verifyHash(password, p)
}

// CapFromMemory sizes the hashing cap: at most an eighth of the memory
// available to the system (MemAvailable) goes to argon2, and never more
// slots than twice the CPUs (more would only queue on the CPU; the only
// limit when MemAvailable cannot be read), at least one.
func CapFromMemory(p Params) int {
	avail := memAvailableKiB()
	n := 2 * runtime.NumCPU()
	if avail > 0 {
		byMem := int(avail / 8 / uint64(p.MemKiB))
		n = min(n, byMem)
	}
	return max(n, 1)
}

// memAvailableKiB reads MemAvailable from /proc/meminfo (0 if unknown).
func memAvailableKiB() uint64 {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				v, _ := strconv.ParseUint(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}
