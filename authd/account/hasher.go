package account

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBusy is returned when every hashing slot stayed taken for the whole
// queue wait: the caller answers 503 with Retry-After.
var ErrBusy = errors.New("account: password hashing is at capacity")

// Hasher hashes and verifies passwords with at most Cap argon2id
// computations at once, so a flood of logins queues (briefly) instead of
// exhausting memory: peak hashing memory is Cap x Params.MemKiB. A freed
// slot goes to a caller marked Urgent before any other, so a flood of
// logins from strangers does not keep the owner's known devices, signed-in
// users or the RESET button waiting.
type Hasher struct {
	params Params
	cap    int
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

	mu     sync.Mutex
	busy   int             // slots taken
	urgent []chan struct{} // callers waiting, Urgent ones first, each in arrival order
	others []chan struct{}
}

type urgentKey struct{}

// Urgent marks ctx: a hash for it takes the next free slot before the
// callers not marked. For callers the device knows: a login from a trusted
// device or an allow-listed address, a signed-in user, the RESET button.
func Urgent(ctx context.Context) context.Context { return context.WithValue(ctx, urgentKey{}, true) }

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
	h := &Hasher{params: p, cap: cap, wait: wait,
		dummy: phc{params: p, salt: newSalt(p.SaltLen), key: newSalt(p.KeyLen)}}
	return h, nil
}

// Params returns the parameters new hashes use.
func (h *Hasher) Params() Params { return h.params }

// Cap returns the number of hashes that may run at once.
func (h *Hasher) Cap() int { return h.cap }

// Runs returns how many argon2 computations Hash and Verify have done (the
// dummy is made without one). Every Verify is exactly one run,
// whatever the stored hash: that is what keeps the answer's timing from
// telling whether an account exists, and tests hold it by this count.
func (h *Hasher) Runs() uint64 { return h.runs.Load() }

// Waiting returns how many callers are queued for a slot.
func (h *Hasher) Waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.urgent) + len(h.others)
}

func (h *Hasher) acquire(ctx context.Context) error {
	h.mu.Lock()
	if h.busy < h.cap {
		h.busy++
		h.mu.Unlock()
		return nil
	}
	granted := make(chan struct{}, 1)
	queue := &h.others
	if ctx.Value(urgentKey{}) != nil {
		queue = &h.urgent
	}
	*queue = append(*queue, granted)
	h.mu.Unlock()
	t := time.NewTimer(h.wait)
	defer t.Stop()
	var err error
	select {
	case <-granted:
		return nil
	case <-t.C:
		err = ErrBusy
	case <-ctx.Done():
		err = fmt.Errorf("account: waiting for a hashing slot: %w", ctx.Err())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if i := slices.Index(*queue, granted); i >= 0 {
		*queue = slices.Delete(*queue, i, i+1)
		return err
	}
	// Granted as the wait ended: the slot is this caller's to give on.
	h.handOn()
	return err
}

// handOn gives a slot that is no longer needed to the next caller waiting,
// Urgent ones first, or frees it. h.mu is held.
func (h *Hasher) handOn() {
	for _, q := range []*[]chan struct{}{&h.urgent, &h.others} {
		if len(*q) > 0 {
			next := (*q)[0]
			*q = slices.Delete(*q, 0, 1)
			next <- struct{}{}
			return
		}
	}
	h.busy--
}

func (h *Hasher) release() {
	// A caller waiting for this slot would allocate its argon2 memory while
	// this hash's is still garbage the collector has not reached: collect
	// first, so the next hash reuses that memory and the peak under a
	// flood stays at Cap x MemKiB instead of one block more.
	h.mu.Lock()
	waiting := len(h.urgent)+len(h.others) > 0
	h.mu.Unlock()
	if waiting {
		runtime.GC()
	}
	h.mu.Lock()
	h.handOn()
	idle := h.busy == 0
	h.mu.Unlock()
	if f := h.idle.Load(); f != nil && idle {
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
