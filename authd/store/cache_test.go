package store

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
)

// fill sets every field of v (recursively) to a non-zero value, with one
// element in every slice: a field added to User later is covered too.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0))
		v.Set(s)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint8:
		v.SetUint(7)
	default:
		panic("fill: add a case for " + v.Kind().String())
	}
}

// shared names the first slice a and b have in common memory, or "".
func shared(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				if p := shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
					return p
				}
			}
		}
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := range min(a.Len(), b.Len()) {
			if p := shared(a.Index(i), b.Index(i), path+"[]"); p != "" {
				return p
			}
		}
	}
	return ""
}

func TestCloneSharesNothing(t *testing.T) {
	var u User
	fill(reflect.ValueOf(&u).Elem())
	c := u.clone()
	if !reflect.DeepEqual(u, c) {
		t.Fatalf("the clone differs:\n%+v\n%+v", u, c)
	}
	if p := shared(reflect.ValueOf(u), reflect.ValueOf(c), "User"); p != "" {
		t.Errorf("clone shares %s with the original", p)
	}
	var pol Policy
	fill(reflect.ValueOf(&pol).Elem())
	if p := shared(reflect.ValueOf(pol), reflect.ValueOf(pol.clone()), "Policy"); p != "" {
		t.Errorf("clone shares %s with the original", p)
	}
	if (User{}).clone().Groups != nil {
		t.Error("a nil slice cloned is not nil")
	}
}

// readUser reads through both ways in: Store.User (the cache without a
// transaction when it can) and a read-only transaction; both must agree.
func readUser(t *testing.T, s *Store, name string) User {
	t.Helper()
	var u User
	if err := s.View(func(tx *Tx) error {
		var err error
		u, err = tx.User(name)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	direct, err := s.User(name)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(u, direct) {
		t.Fatalf("Store.User and a transaction disagree:\n%+v\n%+v", direct, u)
	}
	return direct
}

func readPolicy(t *testing.T, s *Store) Policy {
	t.Helper()
	var p Policy
	if err := s.View(func(tx *Tx) error {
		var err error
		p, err = tx.Policy()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	direct, err := s.Policy()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, direct) {
		t.Fatalf("Store.Policy and a transaction disagree:\n%+v\n%+v", direct, p)
	}
	return direct
}

// The cache never serves a record older than the last write that
// returned, whichever way the write went (Update or Batch), and what a
// caller does to a record it read does not reach the next reader.
func TestCacheFollowsWrites(t *testing.T) {
	s := openTemp(t)
	put := func(u User) {
		t.Helper()
		if err := s.Update(func(tx *Tx) error { return tx.PutUser(u) }); err != nil {
			t.Fatal(err)
		}
	}
	put(User{Name: "alice", Role: RoleUser, Groups: []string{"media"}})
	readUser(t, s, "alice") // cached now
	got := readUser(t, s, "alice")
	got.Groups[0] = "changed by a caller"
	got.Disabled = true
	if again := readUser(t, s, "alice"); again.Groups[0] != "media" || again.Disabled {
		t.Fatalf("a caller's change reached the next read: %+v", again)
	}

	put(User{Name: "alice", Role: RoleUser, Disabled: true})
	if u := readUser(t, s, "alice"); !u.Disabled {
		t.Fatal("a read after an Update served the account from before it")
	}
	if err := s.Batch(func(tx *Tx) error { return tx.PutUser(User{Name: "alice", Role: RoleAdmin}) }); err != nil {
		t.Fatal(err)
	}
	if u := readUser(t, s, "alice"); u.Role != RoleAdmin || u.Disabled {
		t.Fatalf("a read after a Batch served the account from before it: %+v", u)
	}
	if err := s.Update(func(tx *Tx) error { return tx.DeleteUser("alice") }); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *Tx) error { _, err := tx.User("alice"); return err }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a deleted account is still read: %v", err)
	}
	if _, err := s.User("alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a deleted account is still read: %v", err)
	}

	if p := readPolicy(t, s); p.Scope != ScopeNone {
		t.Fatalf("no policy stored: %+v", p)
	}
	if err := s.Update(func(tx *Tx) error { return tx.PutPolicy(Policy{Scope: ScopeAll}) }); err != nil {
		t.Fatal(err)
	}
	p := readPolicy(t, s)
	if p.Scope != ScopeAll {
		t.Fatalf("a read after the policy changed served the old one: %+v", p)
	}
}

// A read that began while a write was in progress, or before it, does
// not leave its (older) record in the cache for reads after the write.
func TestCacheIgnoresReadsOverlappingAWrite(t *testing.T) {
	s := openTemp(t)
	if err := s.Update(func(tx *Tx) error { return tx.PutUser(User{Name: "bob", Role: RoleUser}) }); err != nil {
		t.Fatal(err)
	}
	inWrite, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.Update(func(tx *Tx) error {
			close(inWrite)
			<-release
			return tx.PutUser(User{Name: "bob", Role: RoleUser, Disabled: true})
		})
	}()
	<-inWrite
	// bbolt lets this read run beside the write: it sees the old record.
	if u := readUser(t, s, "bob"); u.Disabled {
		t.Fatal("a read saw an uncommitted write")
	}
	close(release)
	wg.Wait()
	if u := readUser(t, s, "bob"); !u.Disabled {
		t.Fatal("the record read during the write was served after it")
	}
}

// A read that began before a write and ends after it must not store what
// it read: the generation it began in is over.
func TestCacheRefusesARecordFromBeforeAWrite(t *testing.T) {
	var c readCache
	gen, ok := c.generation()
	if !ok {
		t.Fatal("an idle cache refuses reads")
	}
	c.beginWrite()
	if _, ok := c.generation(); ok {
		t.Fatal("the cache serves reads during a write")
	}
	c.endWrite()
	c.putUser(gen, "carol", User{Name: "carol"})
	c.putPolicy(gen, Policy{Scope: ScopeAll})
	now, _ := c.generation()
	if _, hit := c.user(now, "carol"); hit {
		t.Error("a record read before a write is served after it")
	}
	if _, hit := c.getPolicy(now); hit {
		t.Error("a policy read before a write is served after it")
	}
	c.putUser(now, "carol", User{Name: "carol"})
	if _, hit := c.user(now, "carol"); !hit {
		t.Error("the cache does not keep a record read with no write since")
	}
}
