package store

import (
	"encoding/json"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestFailuresCannotPushOutTheRest: a flood of failed logins fills its own
// ring and leaves every other entry in place, and the two rings read as
// one log, newest first, page by page.
func TestFailuresCannotPushOutTheRest(t *testing.T) {
	s := openTemp(t)
	err := s.Update(func(tx *Tx) error {
		for _, ev := range []string{"user_created", "login", "2fa_enabled"} {
			if err := tx.AppendAudit(AuditEntry{Event: ev}); err != nil {
				return err
			}
		}
		for i := 0; i < MaxAuditFailures+50; i++ {
			ev := "login_failed"
			if i%3 == 0 {
				ev = "client_blocked"
			}
			if err := tx.AppendAudit(AuditEntry{Event: ev}); err != nil {
				return err
			}
			if i == MaxAuditFailures {
				if err := tx.AppendAudit(AuditEntry{Event: "password_changed"}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(func(tx *Tx) error {
		all, err := tx.Audit(3*MaxAudit, 0)
		if err != nil {
			return err
		}
		var others, failures int
		for i, e := range all {
			if i > 0 && e.ID >= all[i-1].ID {
				t.Fatalf("entry %d: id %d after %d, want newest first", i, e.ID, all[i-1].ID)
			}
			if e.IsFailure() {
				failures++
			} else {
				others++
			}
		}
		if others != 4 || failures != MaxAuditFailures {
			t.Errorf("kept %d other entries and %d failures, want 4 and %d", others, failures, MaxAuditFailures)
		}
		// Paging from the last failure before password_changed crosses
		// into the other ring at the right place.
		var pw uint64
		for _, e := range all {
			if e.Event == "password_changed" {
				pw = e.ID
			}
		}
		page, err := tx.Audit(2, pw+1)
		if err != nil {
			return err
		}
		if len(page) != 2 || page[0].ID != pw || page[1].ID != pw-1 {
			t.Errorf("page before %d: %+v", pw+1, page)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSchema1IsMigrated: a database written by schema 1 (one audit bucket
// whose sequence is the ID) opens with its failures moved to their ring,
// its IDs going on where they stopped, and nothing lost.
func TestSchema1IsMigrated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		meta.Put(keyFormat, []byte(Format))
		meta.Put(keySchema, u64(1))
		audit, _ := tx.CreateBucket(bucketAudit)
		for _, ev := range []string{"admin_created", "login_failed", "login", "login_code_failed"} {
			id, _ := audit.NextSequence()
			raw, _ := json.Marshal(AuditEntry{ID: id, Event: ev})
			audit.Put(u64(id), raw)
		}
		for _, b := range [][]byte{bucketUsers, bucketGroups, bucketDevices, bucketKV} {
			tx.CreateBucket(b)
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Update(func(tx *Tx) error { return tx.AppendAudit(AuditEntry{Event: "logout"}) })
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(func(tx *Tx) error {
		all, err := tx.Audit(10, 0)
		if err != nil {
			return err
		}
		want := []string{"logout", "login_code_failed", "login", "login_failed", "admin_created"}
		if len(all) != len(want) {
			t.Fatalf("entries %+v", all)
		}
		for i, e := range all {
			if e.Event != want[i] || e.ID != uint64(len(want)-i) {
				t.Errorf("entry %d: %d %s, want %d %s", i, e.ID, e.Event, len(want)-i, want[i])
			}
		}
		if n := tx.tx.Bucket(bucketAuditFailures).Sequence(); n != 2 {
			t.Errorf("failures ring counts %d, want 2", n)
		}
		if n := tx.tx.Bucket(bucketAudit).Sequence(); n != 3 {
			t.Errorf("main ring counts %d, want 3", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
