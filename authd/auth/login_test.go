package auth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/store"
)

// newService returns a Service on a fresh store with cheap hashing, and its
// hasher.
func newService(t *testing.T) (*auth.Service, *account.Hasher) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	hasher, err := account.NewHasher(account.Params{Time: 1, MemKiB: 8 * 1024, Threads: 1, KeyLen: 32, SaltLen: 16}, 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg := auth.DefaultConfig()
	cfg.DefaultPassword = "Dflt-Pass-1234"
	clk := clocktest.New(time.Date(2026, 11, 23, 12, 0, 5, 0, time.UTC))
	svc, err := auth.New(context.Background(), cfg, auth.Deps{Store: db, Clock: clk, Hasher: hasher, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return svc, hasher
}

// TestEveryPasswordAttemptCostsOneHash: a login with a name that does not
// exist costs the same single argon2 run as one with a real name, so the
// answer's timing does not tell which names are real.
func TestEveryPasswordAttemptCostsOneHash(t *testing.T) {
	svc, hasher := newService(t)
	for i, name := range []string{"admin", "nobody", strings.Repeat("x", account.MaxNameLen), "admin"} {
		// Each from its own address, so no attempt is refused by the
		// address's limit before it is judged.
		c := auth.Client{Addr: netip.AddrFrom4([4]byte{127, 0, 1, byte(i + 1)})}
		before := hasher.Runs()
		if _, err := svc.Login(context.Background(), name, "wrong password", c, ""); err == nil {
			t.Fatalf("login %q with a wrong password succeeded", name)
		}
		if n := hasher.Runs() - before; n != 1 {
			t.Errorf("login as %q ran argon2 %d times, want once", name, n)
		}
	}
}

// TestNamesNoAccountCanHaveRunNoHashAndCountAsFailures: a name no account
// can have (empty, too long, not UTF-8) is refused without an argon2 run,
// which before any throttle let one address keep every hash slot busy, and
// counts as the address's failure, so the address is blocked as after
// wrong passwords.
func TestNamesNoAccountCanHaveRunNoHashAndCountAsFailures(t *testing.T) {
	codeOf := func(err error) string {
		var e *auth.Error
		if errors.As(err, &e) {
			return e.Code
		}
		return fmt.Sprint(err)
	}
	svc, hasher := newService(t)
	c := auth.Client{Addr: netip.MustParseAddr("192.0.2.7")}
	names := []string{"", strings.Repeat("x", account.MaxNameLen+1), "bad\xffname", "", ""}
	for _, name := range names {
		before := hasher.Runs()
		_, err := svc.Login(context.Background(), name, "guess", c, "")
		if codeOf(err) != auth.CodeInvalidCredentials {
			t.Fatalf("login as %q: %v, want invalid credentials", name, err)
		}
		if n := hasher.Runs() - before; n != 0 {
			t.Errorf("login as %q ran argon2 %d times, want none", name, n)
		}
	}
	_, err := svc.Login(context.Background(), "admin", "Dflt-Pass-1234", c, "")
	if codeOf(err) != auth.CodeLocked {
		t.Fatalf("after %d logins with impossible names the address's right login gave %v, want it blocked", len(names), err)
	}
	other := auth.Client{Addr: netip.MustParseAddr("192.0.2.8")}
	if _, err := svc.Login(context.Background(), "admin", "Dflt-Pass-1234", other, ""); err != nil {
		t.Fatalf("another address's right login: %v", err)
	}
}

// TestAnUnknownNameIsNotRecorded: a login under a name no account has (a
// password typed into the name field, say) leaves only a keyed digest in the
// audit log, the same for the same name; a real account's failure names it.
func TestAnUnknownNameIsNotRecorded(t *testing.T) {
	svc, _ := newService(t)
	typed := []string{"Tr0ub4dor&3 horse", "Tr0ub4dor&3 horse", "another-typo", "admin"}
	for i, name := range typed {
		c := auth.Client{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})}
		if _, err := svc.Login(context.Background(), name, "wrong password", c, ""); err == nil {
			t.Fatalf("login %q succeeded", name)
		}
	}
	entries, err := svc.AuditLogMatching(100, 0, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var who []string
	for _, e := range entries {
		if e.Event != "login_failed" {
			continue
		}
		who = append(who, e.User)
		for _, secret := range typed[:3] {
			if strings.Contains(e.User+e.Detail, secret) {
				t.Errorf("the audit log keeps the typed name %q: %+v", secret, e)
			}
		}
	}
	if len(who) != 4 {
		t.Fatalf("login_failed entries: %q, want 4", who)
	}
	// Newest first: admin, another-typo, then the same name twice.
	if who[0] != "admin" || !strings.HasPrefix(who[1], "(unknown name ") || who[2] != who[3] || who[1] == who[2] {
		t.Errorf("recorded names %q: want admin, then a digest per unknown name, the same for the same name", who)
	}
}
