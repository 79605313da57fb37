package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// MaxAudit bounds the audit log's entries other than failures, and
// MaxAuditFailures its failures; in each the oldest entries go first. The
// two are kept apart so a flood of failed logins, which anyone who can
// reach the login page can cause, cannot push the rest of the log out.
const (
	MaxAudit         = 10000
	MaxAuditFailures = 10000
)

// IsFailure reports whether the entry goes to the failures' ring: events
// named "..._failed" (a wrong password or code) or "..._blocked" (a client
// address blocked for them).
func (e AuditEntry) IsFailure() bool {
	return strings.HasSuffix(e.Event, "_failed") || strings.HasSuffix(e.Event, "_blocked")
}

// AppendAudit adds an entry to the audit log. IDs come from one sequence
// (the meta bucket's) across both rings, and each ring's own sequence is
// the number of entries it holds.
func (t *Tx) AppendAudit(e AuditEntry) error {
	id, err := t.tx.Bucket(bucketMeta).NextSequence()
	if err != nil {
		return fmt.Errorf("store: audit sequence: %w", err)
	}
	e.ID = id
	bucket, limit := bucketAudit, uint64(MaxAudit)
	if e.IsFailure() {
		bucket, limit = bucketAuditFailures, MaxAuditFailures
	}
	if err := t.put(bucket, u64(id), e); err != nil {
		return err
	}
	return trimRing(t.tx.Bucket(bucket), limit)
}

// trimRing counts the entry just added and drops the oldest ones beyond
// limit.
func trimRing(b *bolt.Bucket, limit uint64) error {
	n := b.Sequence() + 1
	c := b.Cursor()
	for k, _ := c.First(); k != nil && n > limit; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return fmt.Errorf("store: trim audit: %w", err)
		}
		n--
	}
	return b.SetSequence(n)
}

// AuditFilter selects audit entries; its zero value selects all.
type AuditFilter struct {
	// User selects the entries about or by this account (User or Actor).
	User string
	// Event selects the entries of this event, and of the events it is the
	// first word of: "2fa" selects 2fa_enabled and 2fa_disabled.
	Event string
}

// Matches reports whether e is selected.
func (f AuditFilter) Matches(e AuditEntry) bool {
	if f.User != "" && e.User != f.User && e.Actor != f.User {
		return false
	}
	if f.Event != "" && e.Event != f.Event && !strings.HasPrefix(e.Event, f.Event+"_") {
		return false
	}
	return true
}

// Audit returns up to limit entries of both rings, newest first, with IDs
// below before (0 for the newest).
func (t *Tx) Audit(limit int, before uint64) ([]AuditEntry, error) {
	return t.AuditMatching(limit, before, AuditFilter{})
}

// AuditMatching is Audit of the entries f selects. It reads at most both
// rings whole (MaxAudit + MaxAuditFailures entries).
func (t *Tx) AuditMatching(limit int, before uint64, f AuditFilter) ([]AuditEntry, error) {
	rings := []*ringCursor{newRingCursor(t.tx.Bucket(bucketAudit), before), newRingCursor(t.tx.Bucket(bucketAuditFailures), before)}
	var out []AuditEntry
	for len(out) < limit {
		var next *ringCursor
		for _, r := range rings {
			if r.k != nil && (next == nil || bytes.Compare(r.k, next.k) > 0) {
				next = r
			}
		}
		if next == nil {
			break
		}
		var e AuditEntry
		if err := json.Unmarshal(next.v, &e); err != nil {
			return nil, fmt.Errorf("store: decode audit %d: %w", binary.BigEndian.Uint64(next.k), err)
		}
		if f.Matches(e) {
			out = append(out, e)
		}
		next.k, next.v = next.c.Prev()
	}
	return out, nil
}

// ringCursor walks one ring backwards from below an ID.
type ringCursor struct {
	c    *bolt.Cursor
	k, v []byte
}

func newRingCursor(b *bolt.Bucket, before uint64) *ringCursor {
	r := &ringCursor{c: b.Cursor()}
	if before == 0 {
		r.k, r.v = r.c.Last()
		return r
	}
	if r.k, _ = r.c.Seek(u64(before)); r.k == nil {
		r.k, r.v = r.c.Last()
	} else {
		r.k, r.v = r.c.Prev()
	}
	return r
}

// migrateAuditRings moves schema 1 to 2: the failures move from the audit
// bucket into their own ring, the ID sequence moves to the meta bucket and
// each ring's sequence becomes its count.
func migrateAuditRings(tx *bolt.Tx) error {
	audit := tx.Bucket(bucketAudit)
	if audit == nil {
		return nil // created empty with the other buckets
	}
	failures, err := tx.CreateBucketIfNotExists(bucketAuditFailures)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketMeta).SetSequence(audit.Sequence()); err != nil {
		return err
	}
	var kept, moved uint64
	var move [][2][]byte
	if err := audit.ForEach(func(k, raw []byte) error {
		var e AuditEntry
		if json.Unmarshal(raw, &e) == nil && e.IsFailure() {
			move = append(move, [2][]byte{bytes.Clone(k), bytes.Clone(raw)})
		} else {
			kept++
		}
		return nil
	}); err != nil {
		return err
	}
	for _, kv := range move {
		if err := failures.Put(kv[0], kv[1]); err != nil {
			return err
		}
		if err := audit.Delete(kv[0]); err != nil {
			return err
		}
		moved++
	}
	if err := audit.SetSequence(kept); err != nil {
		return err
	}
	return failures.SetSequence(moved)
}
