package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rknas/firmware/authd/clock"
)

// State of an outbox entry.
type State string

// Outbox entry states.
const (
	StatePending   State = "pending"   // waiting for its next try
	StateDelivered State = "delivered" // the server took it
	StateFailed    State = "failed"    // given up; LastError says why
)

// Entry is one notice in the outbox, as stored. It holds the recipient in
// full; show EntryView to people.
type Entry struct {
	ID            string    `json:"id"`
	Message       Message   `json:"message"`
	State         State     `json:"state"`
	Attempts      int       `json:"attempts"`
	Created       time.Time `json:"created"`
	NextTry       time.Time `json:"next_try"`
	LastTry       time.Time `json:"last_try"`
	LastError     string    `json:"last_error"`
	LastErrorCode ErrorCode `json:"last_error_code"`
	Done          time.Time `json:"done"` // when delivered or given up
}

// EntryView is what admins see of an entry: the recipient is masked and
// the body left out.
type EntryView struct {
	ID            string    `json:"id"`
	Kind          Kind      `json:"kind"`
	To            string    `json:"to"` // masked, "a***@example.com"
	State         State     `json:"state"`
	Attempts      int       `json:"attempts"`
	Created       time.Time `json:"created"`
	NextTry       time.Time `json:"next_try"` // meaningful while pending
	LastError     string    `json:"last_error"`
	LastErrorCode ErrorCode `json:"last_error_code"`
	Done          time.Time `json:"done"`
}

func (e *Entry) view() EntryView {
	return EntryView{
		ID: e.ID, Kind: e.Message.Kind, To: MaskAddress(e.Message.To), State: e.State,
		Attempts: e.Attempts, Created: e.Created, NextTry: e.NextTry,
		LastError: e.LastError, LastErrorCode: e.LastErrorCode, Done: e.Done,
	}
}

// OutboxStore persists the outbox. Save replaces everything stored with
// entries and must be atomic and durable. FileOutboxStore is the real one;
// the database may take its place.
type OutboxStore interface {
	Load() ([]Entry, error)
	Save(entries []Entry) error
}

// ErrOutboxFull is returned by Enqueue when every slot holds a pending
// notice.
var ErrOutboxFull = errors.New("mail: outbox full of pending notices")

// Outbox defaults.
const (
	DefaultMinBackoff     = time.Minute
	DefaultMaxBackoff     = time.Hour
	DefaultMaxAge         = 24 * time.Hour
	DefaultMaxAttempts    = 30
	DefaultCapacity       = 200
	DefaultPerRecipient   = 10
	DefaultRetain         = 7 * 24 * time.Hour
	DefaultAttemptTimeout = 2 * time.Minute

	// minAttemptsBeforeAgeOut keeps a notice from being given up unsent
	// because the wall clock jumped (a board without RTC booting at 1970,
	// then NTP setting the date): age alone needs a few real attempts.
	minAttemptsBeforeAgeOut = 3
	// pollInterval bounds how long Run sleeps, so a step of the clock is
	// noticed without a wake-up.
	pollInterval = time.Minute
)

// OutboxOptions tune an Outbox; zero values take the defaults.
type OutboxOptions struct {
	MinBackoff  time.Duration // wait after the first failure; doubles per failure
	MaxBackoff  time.Duration // longest wait between tries
	MaxAge      time.Duration // give up on a notice this old (after at least 3 tries)
	MaxAttempts int           // give up after this many tries
	Capacity    int           // entries kept, pending or not
	// PerRecipient is how many pending notices one address may hold; a
	// further one replaces that address's oldest pending notice, so one
	// account making notices without end cannot crowd out the others'.
	PerRecipient int
	// Retain is how long delivered and failed entries stay visible.
	Retain time.Duration
	// AttemptTimeout bounds one delivery attempt.
	AttemptTimeout time.Duration
	Logger         *slog.Logger
	// Observe, if set, is called after every delivery attempt with the
	// entry's new state (outside the outbox's lock).
	Observe func(EntryView)
}

// Outbox delivers notices with retries: Enqueue stores a notice durably and
// wakes Run, which sends due entries with the Sender and reschedules failed
// ones with exponential backoff. Time comes from the injected clock. It is
// safe for concurrent use.
type Outbox struct {
	store  OutboxStore
	sender Sender
	clock  clock.Clock
	opt    OutboxOptions
	wake   chan struct{}

	runMu sync.Mutex // one delivery pass at a time

	mu      sync.Mutex
	entries []Entry
}

// NewOutbox loads the stored entries and returns the outbox. Nothing is
// sent until Run.
func NewOutbox(store OutboxStore, sender Sender, clk clock.Clock, opt OutboxOptions) (*Outbox, error) {
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = DefaultMinBackoff
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = DefaultMaxBackoff
	}
	opt.MaxBackoff = max(opt.MaxBackoff, opt.MinBackoff)
	if opt.MaxAge <= 0 {
		opt.MaxAge = DefaultMaxAge
	}
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = DefaultMaxAttempts
	}
	if opt.Capacity <= 0 {
		opt.Capacity = DefaultCapacity
	}
	if opt.PerRecipient <= 0 {
		opt.PerRecipient = DefaultPerRecipient
	}
	if opt.Retain <= 0 {
		opt.Retain = DefaultRetain
	}
	if opt.AttemptTimeout <= 0 {
		opt.AttemptTimeout = DefaultAttemptTimeout
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	entries, err := store.Load()
	if err != nil {
		return nil, fmt.Errorf("mail: load outbox: %w", err)
	}
	// A store written by a bigger outbox keeps its pending entries; only
	// Enqueue enforces the capacity.
	entries = slices.DeleteFunc(entries, func(e Entry) bool {
		return e.State != StatePending && e.State != StateDelivered && e.State != StateFailed
	})
	return &Outbox{
		store: store, sender: sender, clock: clk, opt: opt,
		wake: make(chan struct{}, 1), entries: entries,
	}, nil
}

// Enqueue stores m durably as a pending entry due now, wakes Run and
// returns the entry's ID. When m's address already holds PerRecipient
// pending notices, the oldest of them makes room; when the outbox is full
// it drops the oldest delivered or failed entry, and when all are pending
// it returns ErrOutboxFull. Another address's pending notice is never
// dropped.
func (o *Outbox) Enqueue(m Message) (string, error) {
	if err := m.Validate(); err != nil {
		return "", err
	}
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	now := o.clock.Now()
	e := Entry{ID: hex.EncodeToString(idb[:]), Message: m, State: StatePending, Created: now, NextTry: now}

	o.mu.Lock()
	defer o.mu.Unlock()
	before := slices.Clone(o.entries)
	var superseded []string
	for {
		own, oldest := 0, -1
		for i, x := range o.entries {
			if x.State == StatePending && strings.EqualFold(x.Message.To, m.To) {
				own++
				if oldest < 0 || x.Created.Before(o.entries[oldest].Created) {
					oldest = i
				}
			}
		}
		if own < o.opt.PerRecipient {
			break
		}
		superseded = append(superseded, o.entries[oldest].ID)
		o.entries = slices.Delete(o.entries, oldest, oldest+1)
	}
	for len(o.entries) >= o.opt.Capacity {
		oldest := -1
		for i, x := range o.entries {
			if x.State != StatePending && (oldest < 0 || x.Done.Before(o.entries[oldest].Done)) {
				oldest = i
			}
		}
		if oldest < 0 {
			return "", ErrOutboxFull
		}
		o.entries = slices.Delete(o.entries, oldest, oldest+1)
	}
	o.entries = append(o.entries, e)
	if err := o.store.Save(o.entries); err != nil {
		o.entries = before
		return "", fmt.Errorf("mail: enqueue: %w", err)
	}
	for _, id := range superseded {
		o.opt.Logger.Warn("mail: pending notice replaced by a newer one to the same address", "id", id, "to", MaskAddress(m.To))
	}
	o.opt.Logger.Info("mail: notice queued", "id", e.ID, "kind", string(m.Kind), "to", MaskAddress(m.To))
	o.Wake()
	return e.ID, nil
}

// Wake makes Run look at the outbox now, e.g. after the clock was set.
func (o *Outbox) Wake() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// RetryNow makes every pending entry due now and wakes Run; call it when
// the SMTP settings changed.
func (o *Outbox) RetryNow() {
	now := o.clock.Now()
	o.mu.Lock()
	for i := range o.entries {
		if o.entries[i].State == StatePending && o.entries[i].NextTry.After(now) {
			o.entries[i].NextTry = now
		}
	}
	o.saveLocked()
	o.mu.Unlock()
	o.Wake()
}

// List returns all entries, oldest first, for admins.
func (o *Outbox) List() []EntryView {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]EntryView, len(o.entries))
	for i := range o.entries {
		out[i] = o.entries[i].view()
	}
	slices.SortStableFunc(out, func(a, b EntryView) int { return a.Created.Compare(b.Created) })
	return out
}

// Run delivers due entries until ctx ends, waking on Enqueue, Wake,
// RetryNow, the next entry's due time (by the injected clock, checked at
// least every minute) and returning nil when ctx is done. It never blocks
// its callers: start it in its own goroutine.
func (o *Outbox) Run(ctx context.Context) error {
	for {
		next := o.processDue(ctx)
		wait := pollInterval
		if !next.IsZero() {
			wait = min(max(next.Sub(o.clock.Now()), 0), pollInterval)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-o.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// processDue runs one delivery pass over the due entries and returns when
// the next pending entry is due (zero if none).
func (o *Outbox) processDue(ctx context.Context) time.Time {
	o.runMu.Lock()
	defer o.runMu.Unlock()

	due := o.prepare()
	for i, id := range due {
		if ctx.Err() != nil {
			break
		}
		o.mu.Lock()
		idx := o.indexLocked(id)
		if idx < 0 || o.entries[idx].State != StatePending {
			o.mu.Unlock()
			continue
		}
		msg := o.entries[idx].Message
		o.mu.Unlock()

		actx, cancel := context.WithTimeout(ctx, o.opt.AttemptTimeout)
		err := o.sender.Send(actx, msg)
		cancel()
		if err != nil && ctx.Err() != nil {
			break // shutting down: this try does not count
		}

		o.mu.Lock()
		idx = o.indexLocked(id)
		if idx < 0 {
			o.mu.Unlock()
			continue
		}
		e := &o.entries[idx]
		view, serverDown := o.recordLocked(e, err)
		if serverDown {
			// The server is unreachable or refuses us: the other due
			// entries wait with this one instead of each taking a timeout.
			for _, other := range due[i+1:] {
				if j := o.indexLocked(other); j >= 0 && o.entries[j].State == StatePending {
					o.entries[j].NextTry = e.NextTry
				}
			}
		}
		o.saveLocked()
		o.mu.Unlock()
		if o.opt.Observe != nil {
			o.opt.Observe(view)
		}
		if serverDown {
			break
		}
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	var next time.Time
	for _, e := range o.entries {
		if e.State == StatePending && (next.IsZero() || e.NextTry.Before(next)) {
			next = e.NextTry
		}
	}
	return next
}

// prepare prunes old finished entries, repairs times after a step of the
// clock and returns the IDs of the due entries, most overdue first.
func (o *Outbox) prepare() []string {
	now := o.clock.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	changed := false
	o.entries = slices.DeleteFunc(o.entries, func(e Entry) bool {
		drop := e.State != StatePending && now.Sub(e.Done) > o.opt.Retain
		changed = changed || drop
		return drop
	})
	var due []*Entry
	for i := range o.entries {
		e := &o.entries[i]
		if e.State != StatePending {
			continue
		}
		// After the clock stepped back, times in the future would hold a
		// notice for as long as the step: bring them back to now.
		if e.Created.After(now) {
			e.Created, changed = now, true
		}
		if e.NextTry.After(now.Add(o.opt.MaxBackoff)) {
			e.NextTry, changed = now, true
		}
		if !e.NextTry.After(now) {
			due = append(due, e)
		}
	}
	slices.SortStableFunc(due, func(a, b *Entry) int { return a.NextTry.Compare(b.NextTry) })
	ids := make([]string, len(due))
	for i, e := range due {
		ids[i] = e.ID
	}
	if changed {
		o.saveLocked()
	}
	return ids
}

// recordLocked applies the outcome of one try to e. serverDown is true when
// the failure concerns the server rather than this message.
func (o *Outbox) recordLocked(e *Entry, err error) (view EntryView, serverDown bool) {
	now := o.clock.Now()
	e.Attempts++
	e.LastTry = now
	log := o.opt.Logger.With("id", e.ID, "kind", string(e.Message.Kind), "to", MaskAddress(e.Message.To),
		"attempt", e.Attempts)
	if err == nil {
		e.State, e.Done = StateDelivered, now
		log.Info("mail: notice delivered")
		return e.view(), false
	}
	code := CodeOf(err)
	e.LastErrorCode = code
	e.LastError = describeError(err, e.Message.To)
	var se *SendError
	permanent := errors.As(err, &se) && se.recipientRefused || code == CodeInvalidMessage
	switch {
	case permanent, e.Attempts >= o.opt.MaxAttempts,
		e.Attempts >= minAttemptsBeforeAgeOut && now.Sub(e.Created) >= o.opt.MaxAge:
		e.State, e.Done = StateFailed, now
		log.Warn("mail: notice given up", "code", string(code), "err", err)
	default:
		e.NextTry = now.Add(o.backoff(e.Attempts))
		log.Info("mail: notice delivery failed, will retry", "code", string(code), "next_try", e.NextTry, "err", err)
	}
	switch code {
	case CodeConnectionRefused, CodeConnectionFailed, CodeTimeout, CodeTLSFailed, CodeAuthFailed, CodeNotConfigured:
		serverDown = e.State == StatePending
	}
	return e.view(), serverDown
}

// backoff returns the wait after the n-th failed try: MinBackoff doubled
// n-1 times, at most MaxBackoff.
func (o *Outbox) backoff(n int) time.Duration {
	d := o.opt.MinBackoff
	for i := 1; i < n && d < o.opt.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, o.opt.MaxBackoff)
}

// describeError gives the error for admins, with the recipient masked even
// where the server repeats it.
func describeError(err error, to string) string {
	var s string
	var se *SendError
	if errors.As(err, &se) {
		s = se.Message()
	} else {
		s = err.Error()
	}
	if to != "" {
		s = strings.ReplaceAll(s, to, MaskAddress(to))
	}
	return cleanReply(s)
}

func (o *Outbox) indexLocked(id string) int {
	return slices.IndexFunc(o.entries, func(e Entry) bool { return e.ID == id })
}

func (o *Outbox) saveLocked() {
	if err := o.store.Save(o.entries); err != nil {
		// The entries stay in memory and are saved with the next change.
		o.opt.Logger.Error("mail: save outbox", "err", err)
	}
}
