package session

import (
	"errors"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
)

func newManager(t *testing.T, cfg Config) (*Manager, *clocktest.Clock) {
	t.Helper()
	c := clocktest.New(time.Unix(1.8e9, 0))
	m, err := NewManager(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, c
}

func TestSessionExpiry(t *testing.T) {
	m, c := newManager(t, DefaultConfig)
	tok, s, err := m.Create("alice", Full, "192.0.2.1", "ua", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 43 || s.ID == "" || s.ID == tok[:16] {
		t.Fatalf("token %q id %q", tok, s.ID)
	}
	c.Advance(DefaultConfig.Idle - time.Second)
	if _, ok := m.Lookup(tok); !ok {
		t.Fatal("expired before the idle timeout")
	}
	c.Advance(DefaultConfig.Idle)
	if _, ok := m.Lookup(tok); ok {
		t.Fatal("alive after the idle timeout")
	}
	if _, ok := m.Lookup(""); ok {
		t.Fatal("empty token accepted")
	}
}

func TestSessionsAreBoundedPerUserAndInTotal(t *testing.T) {
	cfg := DefaultConfig
	cfg.MaxPerUser, cfg.MaxTotal = 3, 10
	m, c := newManager(t, cfg)
	var first string
	for i := 0; i < 5; i++ {
		tok, _, err := m.Create("alice", Full, "a", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = tok
		}
		c.Advance(time.Second)
	}
	if n := m.Count("alice"); n != 3 {
		t.Fatalf("alice has %d sessions, bound 3", n)
	}
	if _, ok := m.Lookup(first); ok {
		t.Fatal("the oldest session survived the bound")
	}
	for i := 0; i < 30; i++ {
		if _, _, err := m.Create(string(rune('a'+i)), Full, "a", "", 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.Count(""); n > cfg.MaxTotal {
		t.Fatalf("%d sessions in total, bound %d", n, cfg.MaxTotal)
	}
}

func TestRevokeUserKeepsOne(t *testing.T) {
	m, _ := newManager(t, DefaultConfig)
	keep, _, _ := m.Create("alice", Full, "a", "", 0)
	other, _, _ := m.Create("alice", Full, "b", "", 0)
	bob, _, _ := m.Create("bob", Full, "c", "", 0)
	if n := m.RevokeUser("alice", keep); n != 1 {
		t.Fatalf("revoked %d", n)
	}
	if _, ok := m.Lookup(keep); !ok {
		t.Error("kept session ended")
	}
	if _, ok := m.Lookup(other); ok {
		t.Error("other session survived")
	}
	if _, ok := m.Lookup(bob); !ok {
		t.Error("another user's session ended")
	}
}

// TestALoginThatReadTheAccountBeforeARevokeStartsNothing: a login reads the
// account's generation, then the account; if the account's sessions are
// ended meanwhile (a password change), neither its challenge nor its
// session comes to be, while a login that read after does.
func TestALoginThatReadTheAccountBeforeARevokeStartsNothing(t *testing.T) {
	m, _ := newManager(t, DefaultConfig)
	gen := m.Generation("alice")
	bobGen := m.Generation("bob")
	m.RevokeUser("alice", "")
	if _, _, err := m.Create("alice", Full, "a", "", gen); !errors.Is(err, ErrStale) {
		t.Errorf("a session from before the revoke: %v, want ErrStale", err)
	}
	if _, err := m.NewChallenge("alice", "a", gen); !errors.Is(err, ErrStale) {
		t.Errorf("a challenge from before the revoke: %v, want ErrStale", err)
	}
	if n := m.Count("alice"); n != 0 {
		t.Errorf("%d sessions of alice", n)
	}
	if _, _, err := m.Create("alice", Full, "a", "", m.Generation("alice")); err != nil {
		t.Errorf("a login that read after the revoke: %v", err)
	}
	if _, _, err := m.Create("bob", Full, "a", "", bobGen); err != nil {
		t.Errorf("another account's login: %v", err)
	}
}

func TestChallenges(t *testing.T) {
	m, c := newManager(t, DefaultConfig)
	ch, err := m.NewChallenge("alice", "192.0.2.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Challenge(ch, "192.0.2.2"); !errors.Is(err, ErrChallenge) {
		t.Fatal("challenge used from another client")
	}
	if got, err := m.Challenge(ch, "192.0.2.1"); err != nil || got.User != "alice" {
		t.Fatalf("challenge: %+v %v", got, err)
	}
	c.Advance(DefaultConfig.ChallengeTTL)
	if _, err := m.Challenge(ch, "192.0.2.1"); !errors.Is(err, ErrChallenge) {
		t.Fatal("challenge alive after its TTL")
	}
	// An emailed emergency code keeps its challenge alive as long as the
	// code is valid.
	ch, _ = m.NewChallenge("alice", "192.0.2.1", 0)
	m.SetEmergency(ch, "hash", c.Now().Add(10*time.Minute))
	c.Advance(9 * time.Minute)
	if _, err := m.Challenge(ch, "192.0.2.1"); err != nil {
		t.Fatal("challenge with a live emergency code expired")
	}
	if !m.Consume(ch) || m.Consume(ch) {
		t.Fatal("Consume is not single-use")
	}
	// Outstanding challenges per user are bounded.
	for i := 0; i < 100; i++ {
		if _, err := m.NewChallenge("mallory", "x", 0); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, c := range m.challenges {
		if c.User == "mallory" {
			n++
		}
	}
	if n > DefaultConfig.MaxPerUser {
		t.Fatalf("%d challenges for one user", n)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{Idle: time.Second, Absolute: time.Hour, ChallengeTTL: time.Minute, MaxPerUser: 1, MaxTotal: 1},
		{Idle: time.Hour, Absolute: time.Minute, ChallengeTTL: time.Minute, MaxPerUser: 1, MaxTotal: 1},
		{Idle: time.Hour, Absolute: time.Hour, ChallengeTTL: time.Second, MaxPerUser: 1, MaxTotal: 1},
		{Idle: time.Hour, Absolute: time.Hour, ChallengeTTL: time.Minute, MaxPerUser: 5, MaxTotal: 1},
	}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := DefaultConfig.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestRotateAndStepUp(t *testing.T) {
	m, c := newManager(t, DefaultConfig)
	old, s, err := m.Create("alice", PasswordChange, "192.0.2.1", "ua", 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	next, s2, ok := m.Rotate(old, Full)
	if !ok || next == old || s2.Kind != Full || s2.ID != s.ID || !s2.Created.Equal(s.Created) {
		t.Fatalf("Rotate = %q %+v %v", next, s2, ok)
	}
	if _, ok := m.Lookup(old); ok {
		t.Fatal("the old token still works after Rotate")
	}
	if _, _, ok := m.Rotate(old, Full); ok {
		t.Fatal("a dead token rotated")
	}
	if got, _ := m.Lookup(next); got.SteppedUpWithin(c.Now(), 5*time.Minute) {
		t.Fatal("stepped up without StepUp")
	}
	up, s3, ok := m.StepUp(next)
	if !ok || up == next || !s3.SteppedUpWithin(c.Now(), 5*time.Minute) {
		t.Fatalf("StepUp = %q %+v %v", up, s3, ok)
	}
	c.Advance(5*time.Minute + time.Second)
	if got, _ := m.Lookup(up); got.SteppedUpWithin(c.Now(), 5*time.Minute) {
		t.Fatal("a step-up lasted past five minutes")
	}
}

func TestBeginCodeCapsAChallenge(t *testing.T) {
	m, _ := newManager(t, DefaultConfig)
	ch, err := m.NewChallenge("alice", "192.0.2.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.BeginCode(ch, "192.0.2.99"); !errors.Is(err, ErrChallenge) {
		t.Fatalf("another client: %v", err)
	}
	var ends []func(bool)
	for i := 0; i < MaxCodeTries; i++ {
		_, end, err := m.BeginCode(ch, "192.0.2.1")
		if err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
		ends = append(ends, end)
	}
	if _, _, err := m.BeginCode(ch, "192.0.2.1"); !errors.Is(err, ErrTooManyCodes) {
		t.Fatalf("a sixth check in flight: %v", err)
	}
	ends[0](false) // a right code (or an unjudged one) frees its place
	_, end, err := m.BeginCode(ch, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	ends[0] = end
	for _, end := range ends {
		end(true)
		end(true) // a second call does nothing
	}
	if _, _, err := m.BeginCode(ch, "192.0.2.1"); !errors.Is(err, ErrChallenge) {
		t.Fatalf("after %d wrong codes the challenge lives on: %v", MaxCodeTries, err)
	}
}
