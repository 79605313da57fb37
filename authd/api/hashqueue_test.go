package api

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/account"
)

// TestTheOwnersPlacesGoBeforeAFloodOfStrangers: with the hash slot
// taken and strangers' logins queued behind it (each from an address and
// under a name of its own, so no throttle holds them), the owner's login
// from an allow-listed address, or from a trusted device, takes the next
// free slot instead of waiting for every stranger queued before it.
func TestTheOwnersPlacesGoBeforeAFloodOfStrangers(t *testing.T) {
	// One slot, slow hashes, and a wait long enough that nobody is
	// answered busy: what is under test is the order.
	h, err := account.NewHasher(account.Params{Time: 3, MemKiB: 16 * 1024, Threads: 1, KeyLen: 32, SaltLen: 16}, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, start(), h)
	a := e.browserFrom("127.0.0.2")
	a.setUpAdmin("correct horse")
	a.stepUp()
	a.must(200, "PUT", "/api/v1/settings/security", map[string]any{"allow_list": []string{"127.0.1.0/24"}})

	// flood queues strangers' logins behind the slot, then runs owner's
	// login and says how many of those queued before it were answered
	// first.
	round := 0
	flood := func(owner func()) {
		t.Helper()
		round++
		const strangers = 16
		var answered atomic.Int32
		var wg sync.WaitGroup
		defer wg.Wait()
		for i := range strangers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := e.browserFrom(fmt.Sprintf("127.0.%d.%d", 10+round, i+1))
				s.wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login(fmt.Sprint("stranger", round, "-", i), "guess"))
				answered.Add(1)
			}()
		}
		for deadline := time.Now().Add(30 * time.Second); h.Waiting() < strangers-2; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d strangers queued for the hash slot, want %d", h.Waiting(), strangers-2)
			}
		}
		before := answered.Load()
		owner()
		// The hash in progress when the owner came, and a few more while
		// the owner's request reached the queue on a loaded machine, may
		// end first; not the rest (without the owner's precedence, all
		// 14 or more queued before it).
		if overtaken := answered.Load() - before; overtaken > 4 {
			t.Errorf("%d strangers' logins queued before the owner's were answered first, want at most 4", overtaken)
		}
	}

	flood(func() {
		home := e.browserFrom("127.0.1.7")
		if out := home.must(200, "POST", "/api/v1/login", login("admin", "correct horse")); out["status"] != "ok" {
			t.Fatalf("the owner's login from the allow-listed network: %v", out)
		}
	})

	// A device the owner trusted, from an address not on the list.
	secret, _ := a.enroll()
	laptop := e.browserFrom("127.0.3.9")
	ch := laptop.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))["challenge"]
	e.clock.Advance(30 * time.Second)
	laptop.must(200, "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": codeAt(t, secret, e.clock.Now()),
		"trust_device": true, "device_name": "Laptop"})
	laptop.must(200, "POST", "/api/v1/logout", nil)
	flood(func() {
		if out := laptop.must(200, "POST", "/api/v1/login", login("admin", "correct horse")); out["status"] != "ok" || out["trusted_device"] != true {
			t.Fatalf("the owner's login from a trusted device: %v", out)
		}
	})
}
