package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenCreatesPrivateFileAndReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error {
		return tx.CreateUser(User{Name: "alice", Role: RoleUser, Created: time.Unix(1e9, 0).UTC()})
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	s, err = Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	err = s.View(func(tx *Tx) error {
		u, err := tx.User("alice")
		if err != nil {
			return err
		}
		if u.Role != RoleUser {
			t.Errorf("role %q", u.Role)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// halvedDatabase makes a database at p with users accounts (password
// hashes hashLen bytes long) and audits audit entries, then cuts the file
// to half its length.
func halvedDatabase(p string, users, hashLen, audits int) error {
	s, err := Open(p)
	if err != nil {
		return err
	}
	for i := range users {
		if err := s.Update(func(tx *Tx) error {
			return tx.PutUser(User{Name: fmt.Sprintf("user%d", i), Role: RoleUser, PasswordHash: strings.Repeat("h", hashLen)})
		}); err != nil {
			return err
		}
	}
	for i := range audits {
		if err := s.Update(func(tx *Tx) error {
			return tx.AppendAudit(AuditEntry{Time: time.Unix(1.8e9, 123456789), Event: fmt.Sprint("e", i)})
		}); err != nil {
			return err
		}
	}
	s.Close()
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	return os.Truncate(p, fi.Size()/2)
}

func TestOpenRefusesBadFiles(t *testing.T) {
	tests := []struct {
		name  string
		setup func(path string) error
		want  error
	}{
		{"garbage", func(p string) error { return os.WriteFile(p, make([]byte, 8192), 0o600) }, ErrCorrupt},
		{"text", func(p string) error { return os.WriteFile(p, []byte("hello, this is not a database\n"), 0o600) }, ErrCorrupt},
		{"empty", func(p string) error { return os.WriteFile(p, nil, 0o600) }, ErrCorrupt},
		{"directory", func(p string) error { return os.Mkdir(p, 0o700) }, ErrForeign},
		// bbolt panics on this one ("invalid freelist page") instead of
		// returning an error; a power cut cannot make it, a failing disk can.
		{"truncated", func(p string) error { return halvedDatabase(p, 200, 200, 0) }, ErrCorrupt},
		// A small database cut in half can keep every page an open reads
		// whole; only its length tells (the soak's storage campaign found
		// one like it).
		{"cut in half", func(p string) error { return halvedDatabase(p, 4, 95, 300) }, ErrCorrupt},
		{"foreign bolt", func(p string) error {
			db, err := bolt.Open(p, 0o600, nil)
			if err != nil {
				return err
			}
			defer db.Close()
			return db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
		}, ErrForeign},
		{"newer schema", func(p string) error {
			s, err := Open(p)
			if err != nil {
				return err
			}
			defer s.Close()
			return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, u64(SchemaVersion+1)) })
		}, ErrTooNew},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "auth.db")
			if err := tc.setup(path); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)
			s, err := Open(path)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			after, _ := os.ReadFile(path)
			if string(before) != string(after) {
				t.Error("Open changed the refused file")
			}
		})
	}
}

func TestOpenTwiceIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// bbolt's flock is per open file description, so a second Open in the
	// same process contends like another process would.
	if _, err := Open(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestAuditIsBoundedAndPaged(t *testing.T) {
	s := openTemp(t)
	const n = MaxAudit + 25
	err := s.Update(func(tx *Tx) error {
		for i := 0; i < n; i++ {
			if err := tx.AppendAudit(AuditEntry{Event: "login_failed"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(func(tx *Tx) error {
		all, err := tx.Audit(2*MaxAudit, 0)
		if err != nil {
			return err
		}
		if len(all) != MaxAudit {
			t.Errorf("kept %d entries, want %d", len(all), MaxAudit)
		}
		if all[0].ID != n || all[len(all)-1].ID != n-MaxAudit+1 {
			t.Errorf("ids %d..%d, want %d..%d", all[0].ID, all[len(all)-1].ID, n, n-MaxAudit+1)
		}
		page, err := tx.Audit(3, all[1].ID)
		if err != nil {
			return err
		}
		if len(page) != 3 || page[0].ID != all[2].ID {
			t.Errorf("page before %d = %+v", all[1].ID, page)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFailedUpdateChangesNothing(t *testing.T) {
	s := openTemp(t)
	boom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		if err := tx.CreateUser(User{Name: "bob"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	_ = s.View(func(tx *Tx) error {
		if _, err := tx.User("bob"); !errors.Is(err, ErrNotFound) {
			t.Errorf("bob exists after a failed transaction: %v", err)
		}
		return nil
	})
}

func TestPolicyRequires(t *testing.T) {
	admin := User{Name: "root", Role: RoleAdmin}
	alice := User{Name: "alice", Role: RoleUser, Groups: []string{"media"}}
	bob := User{Name: "bob", Role: RoleUser}
	tests := []struct {
		p    Policy
		u    User
		want bool
	}{
		{Policy{Scope: ScopeNone}, admin, false},
		{Policy{Scope: ScopeAdmins}, admin, true},
		{Policy{Scope: ScopeAdmins}, alice, false},
		{Policy{Scope: ScopeAll}, bob, true},
		{Policy{Scope: ScopeSelected, Users: []string{"bob"}}, bob, true},
		{Policy{Scope: ScopeSelected, Users: []string{"bob"}}, alice, false},
		{Policy{Scope: ScopeSelected, Groups: []string{"media"}}, alice, true},
		{Policy{Scope: ScopeSelected, Groups: []string{"media"}}, admin, false},
	}
	for _, tc := range tests {
		if got := tc.p.Requires(tc.u); got != tc.want {
			t.Errorf("%+v.Requires(%s) = %v, want %v", tc.p, tc.u.Name, got, tc.want)
		}
	}
}

// TestAppPasswordMadeByAdmin: the role kept with an app password decides;
// one made before roles were kept is an admin's only with the admin scope.
func TestAppPasswordMadeByAdmin(t *testing.T) {
	tests := []struct {
		a    AppPassword
		want bool
	}{
		{AppPassword{Role: RoleAdmin, Scopes: []string{ScopeRead}}, true},
		{AppPassword{Role: RoleUser, Scopes: []string{ScopeRead}}, false},
		{AppPassword{Role: RoleUser, Scopes: []string{ScopeAdmin, ScopeRead}}, false},
		{AppPassword{Scopes: []string{ScopeAdmin, ScopeRead}}, true},
		{AppPassword{Scopes: []string{ScopeRead}}, false},
	}
	for _, tc := range tests {
		if got := tc.a.MadeByAdmin(); got != tc.want {
			t.Errorf("role %q scopes %v: MadeByAdmin %v, want %v", tc.a.Role, tc.a.Scopes, got, tc.want)
		}
	}
}

// TestOpenWritesOnlyWhatNeedsIt: opening a database that is up to date
// writes nothing (every boot would otherwise wear the eMMC and wait for
// two fsyncs), and one that lacks a bucket gets it.
func TestOpenWritesOnlyWhatNeedsIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	s.Close()
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("opening an up-to-date database changed the file")
	}

	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketBans) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketBans) == nil {
			t.Error("a missing bucket was not made at open")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
