//go:build soak

package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/control"
)

// crashStats is what one lane of the crash campaign counted.
type crashStats struct {
	kills, acked, resetsAcked, resetsDone int
	lostWrites, lostResets, lostAccounts  int
}

// TestCrashSafety kills authd with SIGKILL at random instants while it
// writes: users created (each acknowledged with 201), failed logins (audit
// and throttling state), and in one round in ten an admin reset through the
// control socket (the rescue console's path, journaled). After every kill
// authd must start again on the same state (the database opens), every
// acknowledged user must be there, an acknowledged reset must have happened,
// and the admin must be able to sign in with its password or, after a reset,
// the default one: never neither, never half a reset.
func TestCrashSafety(t *testing.T) {
	t.Parallel() // beside the VM's power cuts
	_, sc := campaign()
	const lanes = 2 // one per core
	var mu sync.Mutex
	var total crashStats
	var wg sync.WaitGroup
	for lane := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := crashLane(t, lane, sc.crashKills/lanes)
			mu.Lock()
			defer mu.Unlock()
			total.kills += s.kills
			total.acked += s.acked
			total.resetsAcked += s.resetsAcked
			total.resetsDone += s.resetsDone
			total.lostWrites += s.lostWrites
			total.lostResets += s.lostResets
			total.lostAccounts += s.lostAccounts
		}()
	}
	wg.Wait()
	lost := total.lostWrites + total.lostResets + total.lostAccounts
	record(row{
		what: "SIGKILL of authd while it writes",
		did: fmt.Sprintf("%d kills at random instants during user creation, failed logins and admin resets; %d users acknowledged, %d resets acknowledged (%d done in all)",
			total.kills, total.acked, total.resetsAcked, total.resetsDone),
		found: fmt.Sprintf("authd started again on the same state after every kill; %d acknowledged users missing, %d acknowledged resets undone, %d admin accounts that took neither password",
			total.lostWrites, total.lostResets, total.lostAccounts),
		lost: lost,
	})
	if lost > 0 {
		t.Errorf("%d lost", lost)
	}
}

func crashLane(t *testing.T, lane, kills int) crashStats {
	var st crashStats
	state := filepath.Join(t.TempDir(), "state")
	addr := freeAddr(t)
	d, err := start(t, state, addr)
	if err != nil {
		t.Error(err)
		return st
	}
	const password = "owner passphrase 1"
	admin := ownerSetup(t, d, password)
	def := d.defaultPassword(t)
	acked := map[string]bool{}
	var ackedMu sync.Mutex
	var next atomic.Int64
	for k := range kills {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var resetAcked atomic.Bool
		wg.Add(2)
		go func() { // users, each acknowledged or not
			defer wg.Done()
			for ctx.Err() == nil {
				name := fmt.Sprintf("l%d-%d", lane, next.Add(1))
				code, _, err := admin.call(ctx, "POST", "/api/v1/users", map[string]any{"name": name, "password": "user passphrase 1", "must_change_password": false})
				if err == nil && code == 201 {
					ackedMu.Lock()
					acked[name] = true
					ackedMu.Unlock()
				}
			}
		}()
		go func() { // failed logins from many addresses: audit and counters
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				c := newClient(d.url(), fmt.Sprintf("127.%d.%d.%d", 10+lane, k%250, 1+i%250))
				c.call(ctx, "POST", "/api/v1/login", login(fmt.Sprintf("l%d-%d", lane, rand.Int64N(next.Load()+1)), "wrong password"))
				c.close()
			}
		}()
		if k%10 == 5 {
			wg.Add(1)
			go func() { // an admin reset, as the rescue console asks for one
				defer wg.Done()
				time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
				if _, err := control.NewClient(filepath.Join(state, "control.sock")).ResetAdmin(ctx); err == nil {
					resetAcked.Store(true)
				}
			}()
		}
		time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
		d.kill()
		st.kills++
		cancel()
		wg.Wait()
		admin.close()

		d, err = start(t, state, addr)
		if err != nil {
			t.Errorf("lane %d, after kill %d: %v", lane, k+1, err)
			st.lostAccounts++ // the whole database
			return st
		}
		// The admin takes its password, or the default after a reset.
		c := newClient(d.url(), "")
		admin = c // signed in below, it writes in the next round
		code, out, _ := c.call(context.Background(), "POST", "/api/v1/login", login("admin", password))
		switch {
		case code == 200 && out["status"] == "ok":
			if resetAcked.Load() {
				t.Errorf("lane %d, kill %d: the acknowledged reset is undone: the old password still works", lane, k+1)
				st.lostResets++
			}
		default:
			code, out, _ = c.call(context.Background(), "POST", "/api/v1/login", login("admin", def))
			if code == 200 && out["status"] == "password_change_required" {
				st.resetsDone++
				c.must(t, 200, "PUT", "/api/v1/me/password", map[string]string{"current_password": def, "new_password": password})
			} else {
				t.Errorf("lane %d, kill %d: the admin takes neither its password nor the default: %d %v", lane, k+1, code, out)
				st.lostAccounts++
				return st
			}
		}
		if resetAcked.Load() {
			st.resetsAcked++
		}
		// Every acknowledged user is there.
		if code, out, _ := c.call(context.Background(), "GET", "/api/v1/me", nil); code != 200 || out["must_change_password"] == true {
			c.must(t, 200, "POST", "/api/v1/login", login("admin", password))
		}
		list := c.must(t, 200, "GET", "/api/v1/users", nil)
		have := map[string]bool{}
		users, _ := list["users"].([]any)
		for _, u := range users {
			if m, ok := u.(map[string]any); ok {
				if n, ok := m["name"].(string); ok {
					have[n] = true
				}
			}
		}
		ackedMu.Lock()
		for name := range acked {
			if !have[name] {
				t.Errorf("lane %d, kill %d: user %s was acknowledged and is gone", lane, k+1, name)
				st.lostWrites++
				delete(acked, name)
			}
		}
		ackedMu.Unlock()
	}
	st.acked = len(acked)
	d.stop()
	return st
}
