package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/store"
)

// TestALoginRacingAPasswordChangeStartsNothing: a login that read the
// account (and so checks the old password) while the password is changed
// and the account's sessions end gets no session and no code step: the
// owner's change is not outlived by a login that was in flight.
func TestALoginRacingAPasswordChangeStartsNothing(t *testing.T) {
	for _, twoFactor := range []bool{false, true} {
		db, err := store.Open(filepath.Join(t.TempDir(), "auth.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		hasher, err := account.NewHasher(account.Params{Time: 1, MemKiB: 8 * 1024, Threads: 1, KeyLen: 32, SaltLen: 16}, 2, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.DefaultPassword = "Dflt-Pass-1234"
		clk := clocktest.New(time.Date(2026, 11, 23, 12, 0, 5, 0, time.UTC))
		s, err := New(context.Background(), cfg, Deps{Store: db, Clock: clk, Hasher: hasher, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		oldHash, _ := hasher.Hash(context.Background(), "old passphrase")
		newHash, _ := hasher.Hash(context.Background(), "new passphrase")
		alice := store.User{Name: "alice", Role: store.RoleUser, PasswordHash: oldHash, Created: clk.Now()}
		if twoFactor {
			alice.TOTP = store.TOTP{Enabled: true, Secret: "JBSWY3DPEHPK3PXP"}
		}
		if err := db.Update(func(tx *store.Tx) error { return tx.CreateUser(alice) }); err != nil {
			t.Fatal(err)
		}
		// The owner's change lands between the login's read of the
		// account and its password check, as ChangePassword makes it: the
		// new hash stored, then the account's sessions ended.
		s.testHookAccountRead = func() {
			s.testHookAccountRead = nil
			if _, err := s.updateUser("alice", func(_ *store.Tx, u *store.User) error { u.PasswordHash = newHash; return nil }); err != nil {
				t.Fatal(err)
			}
			s.sessions.RevokeUser("alice", "")
		}
		res, err := s.Login(context.Background(), "alice", "old passphrase", Client{Addr: netip.MustParseAddr("192.0.2.7")}, "")
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeInvalidCredentials || res.SessionToken != "" || res.Challenge != "" {
			t.Errorf("2FA %v: the login with the old password that raced the change: %+v, %v; want invalid_credentials and nothing started", twoFactor, res, err)
		}
		if n := s.sessions.Count("alice"); n != 0 {
			t.Errorf("2FA %v: %d sessions of alice after the change", twoFactor, n)
		}
	}
}
