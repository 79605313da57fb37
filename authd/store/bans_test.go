package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestBansAreKeptAndBounded: bans survive closing the database, a key
// holds one ban, bans that are over are not returned and make room first,
// and a full kind drops the ban ending soonest, never another kind's.
func TestBansAreKeptAndBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	put := func(b Ban) {
		t.Helper()
		if err := s.Update(func(tx *Tx) error { return tx.PutBan(b, now) }); err != nil {
			t.Fatal(err)
		}
	}
	put(Ban{Kind: "account", Key: "alice", Until: now.Add(time.Hour), Offences: 1, Since: now})
	put(Ban{Kind: "account", Key: "alice", Until: now.Add(2 * time.Hour), Offences: 2, Since: now})
	put(Ban{Kind: "client", Key: "192.0.2.1", Until: now.Add(-time.Minute), Offences: 1, Since: now.Add(-time.Hour)})
	for i := 0; i <= MaxBansPerKind; i++ {
		put(Ban{Kind: "client", Key: fmt.Sprintf("198.51.%d.%d", i/256, i%256), Until: now.Add(time.Duration(i+10) * time.Minute), Offences: 1, Since: now})
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var bans []Ban
	if err := s.View(func(tx *Tx) error { bans, err = tx.Bans(now); return err }); err != nil {
		t.Fatal(err)
	}
	byKey := map[string]Ban{}
	for _, b := range bans {
		byKey[b.Kind+"/"+b.Key] = b
	}
	if a := byKey["account/alice"]; a.Offences != 2 || !a.Until.Equal(now.Add(2*time.Hour)) || !a.Since.Equal(now) {
		t.Errorf("alice: %+v", a)
	}
	if _, ok := byKey["client/192.0.2.1"]; ok {
		t.Error("a ban that was over is returned")
	}
	if _, ok := byKey["client/198.51.0.0"]; ok {
		t.Error("the ban ending soonest was kept past the bound")
	}
	if _, ok := byKey["client/198.51.8.0"]; !ok {
		t.Error("the newest ban was dropped")
	}
	if len(bans) != MaxBansPerKind+1 {
		t.Errorf("%d bans kept, want %d client bans and one account ban", len(bans), MaxBansPerKind)
	}
	if err := s.Update(func(tx *Tx) error { return tx.DeleteBan("account", "alice") }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.DeleteBan("nothing", "x") }); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *Tx) error { bans, err = tx.Bans(now); return err }); err != nil || len(bans) != MaxBansPerKind {
		t.Fatalf("after lifting alice: %d bans, %v", len(bans), err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.PutBan(Ban{Kind: "client"}, now) }); err == nil {
		t.Error("a ban without a key was kept")
	}
}
