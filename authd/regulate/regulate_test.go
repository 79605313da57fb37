package regulate

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
)

func TestBanAfterMaxFailuresInWindow(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	r := New(c, ClientLimits)
	for i := 0; i < 4; i++ {
		if ban := r.Fail("a"); ban != 0 {
			t.Fatalf("failure %d banned for %v", i+1, ban)
		}
		c.Advance(time.Minute)
	}
	if ban := r.Fail("a"); ban != 5*time.Minute {
		t.Fatalf("fifth failure: ban %v, want 5m", ban)
	}
	if w := r.Check("a"); w != 5*time.Minute {
		t.Fatalf("Check = %v", w)
	}
	c.Advance(5*time.Minute - time.Second)
	if w := r.Check("a"); w != time.Second {
		t.Fatalf("one second before the end: %v", w)
	}
	c.Advance(time.Second)
	if w := r.Check("a"); w != 0 {
		t.Fatalf("after the ban: %v", w)
	}
	if r.Check("b") != 0 {
		t.Fatal("another key is banned")
	}
}

func TestFailuresOutsideWindowDoNotCount(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	r := New(c, ClientLimits)
	for i := 0; i < 20; i++ {
		if ban := r.Fail("a"); ban != 0 {
			t.Fatalf("failure %d, one every 76 s, banned", i)
		}
		c.Advance(76 * time.Second)
	}
}

func TestRepeatOffendersWaitLonger(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	r := New(c, ClientLimits)
	var bans []time.Duration
	for round := 0; round < 10; round++ {
		var ban time.Duration
		for i := 0; i < 5; i++ {
			ban = r.Fail("a")
		}
		bans = append(bans, ban)
		c.Advance(ban)
	}
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 80 * time.Minute,
		160 * time.Minute, 320 * time.Minute, 640 * time.Minute, 1280 * time.Minute, 24 * time.Hour}
	if fmt.Sprint(bans) != fmt.Sprint(want) {
		t.Fatalf("bans %v, want %v", bans, want)
	}
	// A day of quiet forgives.
	c.Advance(25 * time.Hour)
	for i := 0; i < 5; i++ {
		bans[0] = r.Fail("a")
	}
	if bans[0] != 5*time.Minute {
		t.Fatalf("after a quiet day: %v", bans[0])
	}
}

func TestFailuresDuringBanDoNotExtendIt(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	r := New(c, ClientLimits)
	for i := 0; i < 5; i++ {
		r.Fail("a")
	}
	for i := 0; i < 100; i++ {
		c.Advance(time.Second)
		r.Fail("a")
	}
	if w := r.Check("a"); w != 5*time.Minute-100*time.Second {
		t.Fatalf("wait %v", w)
	}
}

func TestSucceedKeepsBan(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	r := New(c, ClientLimits)
	for i := 0; i < 5; i++ {
		r.Fail("a")
	}
	r.SucceedFrom("a", "")
	if r.Check("a") == 0 {
		t.Fatal("SucceedFrom lifted a ban")
	}
	r.Reset("a")
	if r.Check("a") != 0 {
		t.Fatal("Reset kept the ban")
	}
}

// TestSucceedForgivesItsOwnFailures checks that a success forgives the
// failures its own client made and none of the others'.
func TestSucceedForgivesItsOwnFailures(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	r := New(c, AccountLimits)
	for i := range 9 {
		from := "owner"
		if i%3 != 0 {
			from = fmt.Sprintf("attacker-%d", i)
		}
		r.FailFrom("admin", from)
	}
	r.SucceedFrom("admin", "owner") // 3 of the 9 were the owner's
	for i := range 6 {
		if ban := r.FailFrom("admin", fmt.Sprintf("attacker-more-%d", i)); ban > 0 && i < 3 {
			t.Fatalf("banned after %d failures in all; the owner's 3 were forgiven", 9-3+i+1)
		} else if i == 3 && ban == 0 {
			t.Fatal("not banned at the 10th failure not forgiven: the attackers' were forgiven with the owner's")
		}
	}
}

func TestMemoryIsBoundedAndBansSurviveFlood(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	l := ClientLimits
	l.MaxKeys = 100
	r := New(c, l)
	for i := 0; i < 5; i++ {
		r.Fail("attacker")
	}
	for i := 0; i < 100000; i++ {
		r.Fail(fmt.Sprintf("spray-%d", i))
	}
	if n := r.Len(); n > l.MaxKeys {
		t.Fatalf("%d keys remembered, bound %d", n, l.MaxKeys)
	}
	if r.Check("attacker") == 0 {
		t.Fatal("spraying new keys evicted a ban")
	}
}

func TestClientKey(t *testing.T) {
	tests := []struct {
		addr   string
		onLink bool
		want   string
	}{
		{"192.0.2.7", false, "192.0.2.7"},
		{"::ffff:192.0.2.7", false, "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", false, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::99", false, "2001:db8:1:2::/64"},
		{"::1", false, "::/64"},
		// A neighbour on the device's link is counted alone.
		{"2001:db8:1:2:3:4:5:6", true, "2001:db8:1:2:3:4:5:6"},
		{"fe80::3c1d:9ff:fe21:7b10", true, "fe80::3c1d:9ff:fe21:7b10"},
		{"fe80::3c1d:9ff:fe21:7b10%eth0", true, "fe80::3c1d:9ff:fe21:7b10"},
	}
	for _, tt := range tests {
		if got := ClientKey(netip.MustParseAddr(tt.addr), tt.onLink); got != tt.want {
			t.Errorf("ClientKey(%s, on link %v) = %s, want %s", tt.addr, tt.onLink, got, tt.want)
		}
	}
}

func TestOnLink(t *testing.T) {
	tests := []struct {
		peer, local string
		want        bool
	}{
		{"2001:db8:1:2::a", "2001:db8:1:2::10", true},
		{"fe80::dead:beef", "fe80::1", true},
		{"fe80::dead:beef%eth0", "fe80::1%eth0", true},
		{"fe80::dead:beef", "2001:db8:1:2::10", true},
		{"fd00:1:2:3::a", "fd00:1:2:3::10", true},
		{"2001:db8:1:3::a", "2001:db8:1:2::10", false}, // beyond a router
		{"2001:db8:9::a", "2001:db8:1:2::10", false},
		{"192.0.2.7", "192.0.2.1", false},
		{"::ffff:192.0.2.7", "::ffff:192.0.2.1", false},
		{"2001:db8:1:2::a", "", false}, // the local address is unknown
	}
	for _, tt := range tests {
		var local netip.Addr
		if tt.local != "" {
			local = netip.MustParseAddr(tt.local)
		}
		if got := OnLink(netip.MustParseAddr(tt.peer), local); got != tt.want {
			t.Errorf("OnLink(%s, %s) = %v, want %v", tt.peer, tt.local, got, tt.want)
		}
	}
}

// TestAttemptsInFlightCount checks that attempts count from the moment they
// begin: of 40 begun at once, only the limit's worth is allowed, and what
// they end as decides the next ones.
func TestAttemptsInFlightCount(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	r := New(c, ClientLimits)
	var got []Attempt
	refused := 0
	for i := 0; i < 40; i++ {
		a, wait := r.Begin("a")
		if wait > 0 {
			refused++
			if wait != InFlightWait {
				t.Fatalf("attempt %d refused with %v, want %v", i, wait, InFlightWait)
			}
			continue
		}
		got = append(got, a)
	}
	if len(got) != ClientLimits.MaxFailures || refused != 40-ClientLimits.MaxFailures {
		t.Fatalf("%d attempts allowed, %d refused; want %d allowed", len(got), refused, ClientLimits.MaxFailures)
	}
	// One ends well: one more may begin.
	got[0].Release()
	a, wait := r.Begin("a")
	if wait != 0 {
		t.Fatalf("after a release: refused for %v", wait)
	}
	got[0] = a
	// All five fail: the key is banned, and nothing begins.
	var ban time.Duration
	for _, a := range got {
		ban = a.Fail()
	}
	if ban != ClientLimits.BaseBan {
		t.Fatalf("ban after 5 failures: %v", ban)
	}
	if _, wait := r.Begin("a"); wait != ClientLimits.BaseBan {
		t.Fatalf("Begin while banned: wait %v", wait)
	}
	// The zero Attempt does nothing.
	(Attempt{}).Release()
	if (Attempt{}).Fail() != 0 {
		t.Fatal("a refused attempt recorded a failure")
	}
}

// TestInFlightKeysAreNotEvicted fills the table while a key has an attempt
// in flight: that key's count must survive.
func TestInFlightKeysAreNotEvicted(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	l := ClientLimits
	l.MaxKeys = 10
	r := New(c, l)
	var held []Attempt
	for i := 0; i < l.MaxFailures; i++ {
		a, wait := r.Begin("victim")
		if wait != 0 {
			t.Fatal(wait)
		}
		held = append(held, a)
	}
	for i := 0; i < 1000; i++ {
		r.Fail(fmt.Sprintf("spray-%d", i))
	}
	if _, wait := r.Begin("victim"); wait != InFlightWait {
		t.Fatalf("the victim's attempts in flight were forgotten (wait %v)", wait)
	}
	for _, a := range held {
		a.Release()
	}
}

// TestBansCarryOverToANewRegulator: what Bans lists, Restore puts back in
// a fresh regulator (as after a restart), with its end and its offences, so
// the next ban doubles; a ban already over is not restored.
func TestBansCarryOverToANewRegulator(t *testing.T) {
	c := clocktest.New(time.Unix(1e9, 0))
	l := Limits{MaxFailures: 2, Window: time.Minute, BaseBan: time.Minute, MaxBan: time.Hour, Forget: 24 * time.Hour, MaxKeys: 100}
	r := New(c, l)
	for _, d := range []time.Duration{time.Minute, 2 * time.Minute} {
		r.Fail("long")
		r.Fail("long")
		c.Advance(d)
	}
	r.Fail("long")
	r.Fail("long") // third ban: 4 minutes
	r.Fail("short")
	r.Fail("short") // first ban: 1 minute
	bans := r.Bans()
	if len(bans) != 2 || bans[0].Key != "long" || bans[0].Offences != 3 || !bans[0].Until.Equal(c.Now().Add(4*time.Minute)) {
		t.Fatalf("bans %+v", bans)
	}
	if b, ok := r.Ban("long"); !ok || b != bans[0] {
		t.Fatalf("Ban(long) = %+v %v", b, ok)
	}
	c.Advance(90 * time.Second)
	fresh := New(c, l)
	for _, b := range bans {
		fresh.Restore(b)
	}
	if w := fresh.Check("long"); w != 2*time.Minute+30*time.Second {
		t.Fatalf("restored ban waits %v", w)
	}
	if w := fresh.Check("short"); w != 0 || fresh.Len() != 1 {
		t.Fatalf("a ban that had ended was restored: %v", w)
	}
	c.Advance(3 * time.Minute)
	fresh.Fail("long")
	if ban := fresh.Fail("long"); ban != 8*time.Minute {
		t.Fatalf("the ban after a restored third one lasts %v, want 8m", ban)
	}
	if _, ok := fresh.Ban("nobody"); ok {
		t.Fatal("a ban for an unknown key")
	}
}
