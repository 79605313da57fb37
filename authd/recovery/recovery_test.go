package recovery

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/atomicfile"
	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/store"
)

const defaultPW = "Dflt-Pass-1234"

var fast = account.Params{Time: 1, MemKiB: 8 * 1024, Threads: 1, KeyLen: 32, SaltLen: 16}

// fileNetwork stands in for netconf: it writes the default configuration
// durably, like netconf.Manager.ResetToDefault does.
type fileNetwork struct {
	path  string
	fails int
	calls int
}

func (n *fileNetwork) ResetToDefault(context.Context) error {
	n.calls++
	if n.fails > 0 {
		n.fails--
		return errors.New("link down")
	}
	return atomicfile.Write(n.path, []byte(`{"hostname":"rknas","interfaces":[{"name":"eth0","mode":"dhcp"}]}`), 0o600)
}

type liveRecorder struct{ sources, noticesTo []string }

func (l *liveRecorder) AdminReset(source, noticeTo string) {
	l.sources = append(l.sources, source)
	l.noticesTo = append(l.noticesTo, noticeTo)
}

// ownerAddress is the admin's verified security email in the seed.
const ownerAddress = "owner@example.net"

// seed writes a database with an admin that has 2FA and a trusted device, a
// second user with 2FA, a group and a policy.
func seed(t testing.TB, dir string) {
	t.Helper()
	s, err := store.Open(filepath.Join(dir, "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Unix(1.7e9, 0).UTC()
	err = s.Update(func(tx *store.Tx) error {
		if err := tx.CreateGroup(store.Group{Name: "media", Created: now}); err != nil {
			return err
		}
		admin := store.User{Name: "admin", Role: store.RoleAdmin, PasswordHash: "$argon2id$old", Created: now,
			TOTP:          store.TOTP{Enabled: true, Secret: "JBSWY3DPEHPK3PXP", LastStep: 5, RecoveryCodes: []string{"aa"}},
			SecurityEmail: ownerAddress, SecurityEmailVerified: true, EmailPending: "other@example.net", EmailCodeHash: "h", EmailCodeExpires: now.Add(time.Hour)}
		alice := store.User{Name: "alice", Role: store.RoleUser, Groups: []string{"media"}, PasswordHash: "$argon2id$alice", Created: now,
			TOTP: store.TOTP{Enabled: true, Secret: "KRSXG5CTMVRXEZLU", LastStep: 9}}
		for _, u := range []store.User{admin, alice} {
			if err := tx.CreateUser(u); err != nil {
				return err
			}
		}
		for _, d := range []store.Device{{TokenHash: "h1", ID: "d1", User: "admin", Expires: now.Add(time.Hour)}, {TokenHash: "h2", ID: "d2", User: "alice", Expires: now.Add(time.Hour)}} {
			if err := tx.PutDevice(d); err != nil {
				return err
			}
		}
		return tx.PutPolicy(store.Policy{Scope: store.ScopeSelected, Groups: []string{"media"}})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func deps(t testing.TB, s *store.Store, net Network, live Live) Deps {
	h, err := account.NewHasher(fast, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return Deps{Store: s, Hasher: h, DefaultPassword: defaultPW, Network: net, Live: live, Clock: clock.System{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

type snapshot struct {
	alice   store.User
	groups  []store.Group
	policy  store.Policy
	devices []store.Device
}

func take(t testing.TB, s *store.Store) snapshot {
	var sn snapshot
	err := s.View(func(tx *store.Tx) error {
		var err error
		if sn.alice, err = tx.User("alice"); err != nil {
			return err
		}
		if sn.groups, err = tx.Groups(); err != nil {
			return err
		}
		if sn.policy, err = tx.Policy(); err != nil {
			return err
		}
		sn.devices, err = tx.Devices("alice")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

func checkAdminReset(t testing.TB, s *store.Store, h *account.Hasher) {
	t.Helper()
	var admin store.User
	var devs []store.Device
	_ = s.View(func(tx *store.Tx) error {
		admin, _ = tx.User("admin")
		devs, _ = tx.Devices("admin")
		return nil
	})
	ok, err := h.Verify(context.Background(), defaultPW, admin.PasswordHash)
	if err != nil || !ok || !admin.MustChangePassword || admin.TOTP.Enabled || admin.TOTP.Secret != "" || len(admin.TOTP.RecoveryCodes) != 0 || admin.Disabled || len(devs) != 0 ||
		admin.SecurityEmail != "" || admin.SecurityEmailVerified || admin.EmailPending != "" || admin.EmailCodeHash != "" {
		t.Fatalf("admin not reset: %+v devices %v (default password ok=%v, %v)", admin, devs, ok, err)
	}
}

func countResets(t testing.TB, s *store.Store) map[string]int {
	t.Helper()
	n := map[string]int{}
	_ = s.View(func(tx *store.Tx) error {
		entries, err := tx.Audit(store.MaxAudit, 0)
		for _, e := range entries {
			if e.Event == "physical_reset" {
				n[strings.Fields(e.Detail)[1]]++
			}
		}
		return err
	})
	return n
}

func TestRecoveryResetsAdminAndNothingElse(t *testing.T) {
	dir := t.TempDir()
	seed(t, dir)
	s, err := store.Open(filepath.Join(dir, "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := take(t, s)
	net := &fileNetwork{path: filepath.Join(dir, "network.json")}
	live := &liveRecorder{}
	d := deps(t, s, net, live)
	if err := Run(context.Background(), d, "button"); err != nil {
		t.Fatal(err)
	}
	checkAdminReset(t, s, d.Hasher)
	if after := take(t, s); !reflect.DeepEqual(before, after) {
		t.Fatalf("other state changed:\nbefore %+v\nafter  %+v", before, after)
	}
	if net.calls != 1 || !reflect.DeepEqual(live.sources, []string{"button"}) || !reflect.DeepEqual(live.noticesTo, []string{ownerAddress}) {
		t.Fatalf("network calls %d, live %v, notices to %q", net.calls, live.sources, live.noticesTo)
	}
	if resets := countResets(t, s); len(resets) != 1 {
		t.Fatalf("physical_reset entries %v", resets)
	}
	last, ok, err := LastRecovery(s)
	if err != nil || !ok || last.Source != "button" {
		t.Fatalf("last recovery %+v %v %v", last, ok, err)
	}
	if again, err := Resume(context.Background(), d); again || err != nil {
		t.Fatalf("Resume with an empty journal: %v %v", again, err)
	}
}

func TestNetworkFailureIsFinishedLater(t *testing.T) {
	dir, s := seededStore(t)
	net := &fileNetwork{path: filepath.Join(dir, "network.json"), fails: 1}
	live := &liveRecorder{}
	d := deps(t, s, net, live)
	if err := Run(context.Background(), d, "button"); err == nil {
		t.Fatal("Run succeeded with the network failing")
	}
	checkAdminReset(t, s, d.Hasher)
	// A second press (or the next start) finishes the same recovery.
	if err := Run(context.Background(), d, "button"); err != nil {
		t.Fatal(err)
	}
	if resets := countResets(t, s); len(resets) != 1 {
		t.Fatalf("admin reset more than once: %v", resets)
	}
	if _, err := os.Stat(net.path); err != nil {
		t.Fatalf("network default not written: %v", err)
	}
}

// TestAPressAlwaysGivesTheAdminBack: a reset whose network step keeps
// failing leaves its journal open; the owner signs in with the default
// password and sets a new one and 2FA. A later press must still reset the
// admin (and owe the network step once), not only retry the old network step.
func TestAPressAlwaysGivesTheAdminBack(t *testing.T) {
	dir, s := seededStore(t)
	net := &fileNetwork{path: filepath.Join(dir, "network.json"), fails: 2}
	live := &liveRecorder{}
	d := deps(t, s, net, live)
	if err := Run(context.Background(), d, "button"); err == nil {
		t.Fatal("Run succeeded with the network failing")
	}
	checkAdminReset(t, s, d.Hasher)
	// The owner takes the account back: a password of their own and 2FA.
	err := s.Update(func(tx *store.Tx) error {
		u, err := tx.User("admin")
		if err != nil {
			return err
		}
		u.PasswordHash, u.MustChangePassword, u.PasswordChanged = "$argon2id$owners-new", false, time.Now().Add(time.Minute)
		u.TOTP = store.TOTP{Enabled: true, Secret: "JBSWY3DPEHPK3PXP"}
		return tx.PutUser(u)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), d, "button"); err == nil {
		t.Fatal("Run succeeded with the network failing")
	}
	checkAdminReset(t, s, d.Hasher)
	resets := countResets(t, s)
	if len(resets) != 2 {
		t.Fatalf("resets after a press on a used admin: %v, want two recoveries", resets)
	}
	for id, n := range resets {
		if n != 1 {
			t.Fatalf("recovery %s reset the admin %d times", id, n)
		}
	}
	// The network comes back: one more run finishes the one journal left.
	if _, err := Resume(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if _, open, err := pending(s); err != nil || open {
		t.Fatalf("journal still open (%v, %v)", open, err)
	}
	if _, err := os.Stat(net.path); err != nil {
		t.Fatalf("network default not written: %v", err)
	}
	// The first reset's notice went to the address it removed; the second
	// reset's go to none (the owner verified no address meanwhile), not
	// again to that one, which may have been an intruder's.
	if len(live.noticesTo) < 3 || live.noticesTo[0] != ownerAddress {
		t.Fatalf("the reset's notices went to %q", live.noticesTo)
	}
	for _, to := range live.noticesTo[1:] {
		if to != "" {
			t.Fatalf("the second reset's notice went to %q (all: %q)", to, live.noticesTo)
		}
	}
}

// TestAResetForgetsTheAdminsKeptBan: a ban the admin account earned from
// guesses on the LAN is kept across restarts; a reset without authd (the
// failsafe console, no Live) must remove it, or authd's next start locks
// the owner out of the account just given back. Other bans stay.
func TestAResetForgetsTheAdminsKeptBan(t *testing.T) {
	dir, s := seededStore(t)
	now := time.Now()
	bans := []store.Ban{
		{Kind: store.BanAccount, Key: "admin", Until: now.Add(24 * time.Hour), Offences: 7, Since: now},
		{Kind: store.BanAccount, Key: "alice", Until: now.Add(time.Hour), Offences: 1, Since: now},
		{Kind: store.BanClient, Key: "192.0.2.7", Until: now.Add(time.Hour), Offences: 1, Since: now},
	}
	err := s.Update(func(tx *store.Tx) error {
		for _, b := range bans {
			if err := tx.PutBan(b, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	d := deps(t, s, &fileNetwork{path: filepath.Join(dir, "network.json")}, nil)
	if err := Run(context.Background(), d, "rescue"); err != nil {
		t.Fatal(err)
	}
	checkBans(t, s, now, "account/alice", "client/192.0.2.7")

	// A reset whose network step fails leaves its journal open: the ban
	// goes with the admin step all the same. A press that then only
	// finishes the journal (the admin untouched since) forgets a ban
	// earned meanwhile too.
	adminBanned := func() {
		t.Helper()
		if err := s.Update(func(tx *store.Tx) error { return tx.PutBan(bans[0], now) }); err != nil {
			t.Fatal(err)
		}
	}
	adminBanned()
	net := &fileNetwork{path: filepath.Join(dir, "network2.json"), fails: 1}
	d = deps(t, s, net, nil)
	if err := Run(context.Background(), d, "button"); err == nil {
		t.Fatal("Run succeeded with the network failing")
	}
	checkBans(t, s, now, "account/alice", "client/192.0.2.7")
	adminBanned()
	if err := Run(context.Background(), d, "rescue"); err != nil {
		t.Fatal(err)
	}
	// countResets counts the button's resets: one, not reset again by the
	// console's finishing press.
	resets := countResets(t, s)
	if len(resets) != 1 {
		t.Fatalf("resets: %v, want the button's one", resets)
	}
	for _, n := range resets {
		if n != 1 {
			t.Fatalf("the finishing press reset the admin again: %v", resets)
		}
	}
	checkBans(t, s, now, "account/alice", "client/192.0.2.7")
}

// checkBans fails unless the kept bans are want (kind/key, sorted).
func checkBans(t *testing.T, s *store.Store, now time.Time, want ...string) {
	t.Helper()
	var kept []store.Ban
	err := s.View(func(tx *store.Tx) error {
		var err error
		kept, err = tx.Bans(now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, b := range kept {
		keys = append(keys, b.Kind+"/"+b.Key)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, want) {
		t.Fatalf("bans kept after the reset: %v, want %v", keys, want)
	}
}

// Durable is called once per recovery, when the admin step is on disk
// (before the network step, which may fail), and not again when a later
// run finishes the network.
func TestDurableOnceTheAdminStepIsOnDisk(t *testing.T) {
	dir, s := seededStore(t)
	net := &fileNetwork{path: filepath.Join(dir, "network.json"), fails: 1}
	d := deps(t, s, net, nil)
	calls := 0
	d.Durable = func(context.Context) {
		calls++
		checkAdminReset(t, s, d.Hasher)
		if _, err := os.Stat(net.path); err == nil {
			t.Error("durable called after the network step, not before")
		}
	}
	if err := Run(context.Background(), d, "button"); err == nil {
		t.Fatal("Run succeeded with the network failing")
	}
	if calls != 1 {
		t.Fatalf("durable called %d times by the first run, want 1", calls)
	}
	if err := Run(context.Background(), d, "button"); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("durable called again when the network step was finished (%d calls)", calls)
	}
}

// TestResumeFinishesAPendingJournal is what authd does at start after a
// recovery stopped half way: Resume finishes it, records it as the last
// recovery, and has nothing to do the second time.
func TestResumeFinishesAPendingJournal(t *testing.T) {
	dir, s := seededStore(t)
	net := &fileNetwork{path: filepath.Join(dir, "network.json"), fails: 1}
	live := &liveRecorder{}
	d := deps(t, s, net, live)
	if err := Run(context.Background(), d, "button"); err == nil {
		t.Fatal("Run succeeded with the network failing")
	}
	if _, ok, err := LastRecovery(s); err != nil || ok {
		t.Fatalf("a half-done recovery is recorded as the last one: ok=%v err=%v", ok, err)
	}
	resumed, err := Resume(context.Background(), d)
	if err != nil || !resumed {
		t.Fatalf("Resume with a pending journal = %v, %v; want true, nil", resumed, err)
	}
	if _, err := os.Stat(net.path); err != nil {
		t.Fatalf("Resume did not put the network back to its default: %v", err)
	}
	checkAdminReset(t, s, d.Hasher)
	last, ok, err := LastRecovery(s)
	if err != nil || !ok || last.Source != "button" || last.Finished.IsZero() {
		t.Fatalf("last recovery after Resume = %+v ok=%v err=%v", last, ok, err)
	}
	if resets := countResets(t, s); len(resets) != 1 {
		t.Fatalf("admin reset more than once: %v", resets)
	}
	// The address the reset removed is kept in the journal for the notice
	// of the run that finishes it.
	if !reflect.DeepEqual(live.noticesTo, []string{ownerAddress, ownerAddress}) {
		t.Fatalf("the reset's notices went to %q", live.noticesTo)
	}
	if resumed, err := Resume(context.Background(), d); err != nil || resumed {
		t.Fatalf("Resume with no journal = %v, %v; want false, nil", resumed, err)
	}
}

// TestRecoveryCrashSafety runs the recovery in a child process and kills it
// with SIGKILL at random points, hundreds of times; after every kill the
// database opens, other accounts are intact, and in the end every recovery
// reset the admin exactly once.
func TestRecoveryCrashSafety(t *testing.T) {
	rounds := 200
	if v, err := strconv.Atoi(os.Getenv("RKNAS_CRASH_ROUNDS")); err == nil {
		rounds = v
	}
	dir := t.TempDir()
	seed(t, dir)
	s0, err := store.Open(filepath.Join(dir, "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	before := take(t, s0)
	s0.Close()
	// The child is built without the race detector: it is the crash
	// points that matter here, and an instrumented child is slow to start.
	child := filepath.Join(t.TempDir(), "crashchild")
	if out, err := exec.Command("go", "build", "-o", child, "./internal/crashchild").CombinedOutput(); err != nil {
		t.Fatalf("build crashchild: %v\n%s", err, out)
	}
	killed, completed := 0, 0
	// The first round runs to the end and tells how long a child takes;
	// later rounds are killed at a uniformly random instant up to 30% past
	// that, so every step is hit, and some children finish.
	var childTime time.Duration
	for i := 0; i < rounds; i++ {
		startRound := time.Now()
		cmd := exec.Command(child, dir, defaultPW)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: child failed: %v", i, err)
			}
			completed++
			if i == 0 {
				childTime = time.Since(startRound)
			}
		case <-time.After(killAfter(i, childTime)):
			cmd.Process.Kill()
			<-done
			killed++
		}
		s, err := store.Open(filepath.Join(dir, "auth.db"))
		if err != nil {
			t.Fatalf("round %d: database does not open after the kill: %v", i, err)
		}
		if after := take(t, s); !reflect.DeepEqual(before, after) {
			s.Close()
			t.Fatalf("round %d: other state changed", i)
		}
		for id, n := range countResets(t, s) {
			if n != 1 {
				s.Close()
				t.Fatalf("round %d: recovery %s reset the admin %d times", i, id, n)
			}
		}
		s.Close()
	}
	s, err := store.Open(filepath.Join(dir, "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := deps(t, s, &fileNetwork{path: filepath.Join(dir, "network.json")}, nil)
	if _, err := Resume(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	checkAdminReset(t, s, d.Hasher)
	if _, pending, _ := pending(s); pending {
		t.Fatal("journal still open after Resume")
	}
	t.Logf("%d rounds: %d killed, %d completed, %d recoveries", rounds, killed, completed, len(countResets(t, s)))
	if killed == 0 || completed == 0 {
		t.Errorf("the kill points did not cover both outcomes (killed %d, completed %d)", killed, completed)
	}
}

func killAfter(round int, childTime time.Duration) time.Duration {
	if round == 0 {
		return time.Minute
	}
	return time.Duration(rand.Int64N(int64(childTime) * 13 / 10))
}

// TestAuditSaysWhatWasDone: the completed reset records the network as put
// back to DHCP only where authd manages it.
func TestAuditSaysWhatWasDone(t *testing.T) {
	for _, managed := range []bool{false, true} {
		dir, s := seededStore(t)
		var net Network
		if managed {
			net = &fileNetwork{path: filepath.Join(dir, "network.json")}
		}
		if err := Run(context.Background(), deps(t, s, net, nil), "rescue"); err != nil {
			t.Fatal(err)
		}
		var detail string
		_ = s.View(func(tx *store.Tx) error {
			entries, err := tx.Audit(store.MaxAudit, 0)
			for _, e := range entries {
				if e.Event == "console_reset_completed" {
					detail = e.Detail
				}
			}
			return err
		})
		if got := strings.Contains(detail, "network back to DHCP"); got != managed {
			t.Errorf("network managed %v: the audit says %q", managed, detail)
		}
		if want := strings.Contains(Done(managed), "DHCP"); want != managed {
			t.Errorf("Done(%v) = %q", managed, Done(managed))
		}
	}
}

// seededStore opens a seeded store in a fresh directory, closed at the
// test's end.
func seededStore(t *testing.T) (string, *store.Store) {
	t.Helper()
	dir := t.TempDir()
	seed(t, dir)
	s, err := store.Open(filepath.Join(dir, "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return dir, s
}

// TestNoticeOfAResetWithoutAuthdWaitsForIt: a reset made while authd is not
// running (the failsafe console has no Live) removes the security email
// like any other; its notice, to that address, is given when authd starts,
// once.
func TestNoticeOfAResetWithoutAuthdWaitsForIt(t *testing.T) {
	dir, s := seededStore(t)
	d := deps(t, s, &fileNetwork{path: filepath.Join(dir, "network.json")}, nil)
	if err := Run(context.Background(), d, "rescue"); err != nil {
		t.Fatal(err)
	}
	checkAdminReset(t, s, d.Hasher)
	live := &liveRecorder{}
	d.Live = live
	for i := 0; i < 2; i++ {
		if resumed, err := Resume(context.Background(), d); err != nil || resumed {
			t.Fatalf("start %d: Resume = %v, %v; want false, nil (no recovery to finish)", i+1, resumed, err)
		}
	}
	if !reflect.DeepEqual(live.sources, []string{"rescue"}) || !reflect.DeepEqual(live.noticesTo, []string{ownerAddress}) {
		t.Errorf("at authd's starts the reset's notice went %v to %q, want once to %s", live.sources, live.noticesTo, ownerAddress)
	}
}
