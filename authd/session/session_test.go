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
	tok, s, err := m.Create("alice", Full, "192.0.2.1", "ua")
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
		tok, _, err := m.Create("alice", Full, "a", "")
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
		if _, _, err := m.Create(string(rune('a'+i)), Full, "a", ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.Count(""); n > cfg.MaxTotal {
		t.Fatalf("%d sessions in total, bound %d", n, cfg.MaxTotal)
	}
}

func TestRevokeUserKeepsOne(t *testing.T) {
	m, _ := newManager(t, DefaultConfig)
	keep, _, _ := m.Create("alice", Full, "a", "")
	other, _, _ := m.Create("alice", Full, "b", "")
	bob, _, _ := m.Create("bob", Full, "c", "")
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

func TestChallenges(t *testing.T) {
	m, c := newManager(t, DefaultConfig)
	ch, err := m.NewChallenge("alice", "192.0.2.1")
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
	ch, _ = m.NewChallenge("alice", "192.0.2.1")
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
		if _, err := m.NewChallenge("mallory", "x"); err != nil {
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
