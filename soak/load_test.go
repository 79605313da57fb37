//go:build soak

package soak

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoad runs 200 clients at once for the campaign's time (four on each of
// 50 accounts), each signing
// in (a password hash) and then checking its session over and over, as
// browsers and scripts do. Only the intended answers may come back (200,
// 429 when the client's own attempts are throttled, 503 when every hash
// slot is taken), authd's peak memory stays under its bound, and once the
// load stops its open files and threads go back to what they were.
func TestLoad(t *testing.T) {
	_, sc := campaign()
	const clients = 200
	d, err := start(t, filepath.Join(t.TempDir(), "state"), freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.stop()
	owner := ownerSetup(t, d, "owner passphrase 1")
	// 50 accounts, four clients each: one account's attempts in flight
	// are capped (10) like its failures, so 200 clients on one account
	// would mostly measure that cap.
	const accounts = 50
	for a := range accounts {
		owner.must(t, 201, "POST", "/api/v1/users", map[string]any{"name": fmt.Sprintf("load%d", a), "password": "load passphrase 1", "must_change_password": false})
	}
	pid := d.cmd.Process.Pid
	time.Sleep(2 * time.Second) // the start's and the setup's work settles: a reading, not a synchronisation
	fdsBefore, threadsBefore := openFiles(pid), procStatus(pid, "Threads")

	var codes sync.Map // status -> *atomic.Int64
	count := func(code int) {
		v, _ := codes.LoadOrStore(code, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	var logins, checks, unexpected, transport atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), sc.loadFor)
	defer cancel()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(d.url(), fmt.Sprintf("127.2.%d.%d", i/250, 1+i%250))
			defer c.close()
			for ctx.Err() == nil {
				code, out, err := c.call(ctx, "POST", "/api/v1/login", login(fmt.Sprintf("load%d", i%accounts), "load passphrase 1"))
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					transport.Add(1)
					continue
				}
				count(code)
				logins.Add(1)
				switch code {
				case 200:
				case 429, 503:
					time.Sleep(100 * time.Millisecond)
					continue
				default:
					unexpected.Add(1)
					t.Errorf("login: %d %v", code, out)
					continue
				}
				for range 20 {
					code, out, err := c.call(ctx, "GET", "/api/v1/me", nil)
					if ctx.Err() != nil {
						return
					}
					if err != nil {
						transport.Add(1)
						continue
					}
					count(code)
					checks.Add(1)
					if code != 200 {
						unexpected.Add(1)
						t.Errorf("session check: %d %v", code, out)
					}
				}
				c.call(ctx, "POST", "/api/v1/logout", nil)
			}
		}()
	}
	peak := 0
	for ctx.Err() == nil {
		if rss := procStatus(pid, "VmRSS"); rss > peak {
			peak = rss
		}
		time.Sleep(200 * time.Millisecond)
	}
	wg.Wait()
	// Idle connections close and finished work ends; then read again.
	var fdsAfter, threadsAfter int
	for range 50 {
		time.Sleep(200 * time.Millisecond)
		fdsAfter, threadsAfter = openFiles(pid), procStatus(pid, "Threads")
		if fdsAfter <= fdsBefore+2 {
			break
		}
	}
	hwm := procStatus(pid, "VmHWM")
	// The bound: two hash slots of 64 MiB (-hash-concurrency 2) and 64 MiB
	// for everything else.
	const boundMiB = 2*64 + 64
	var answers string
	for _, code := range []int{200, 429, 503} {
		if v, ok := codes.Load(code); ok {
			answers += fmt.Sprintf(" %d x%d", code, v.(*atomic.Int64).Load())
		}
	}
	lost := int(unexpected.Load())
	if float64(hwm)/1024 > boundMiB {
		t.Errorf("peak RSS %.1f MiB, over the bound of %d MiB", float64(hwm)/1024, boundMiB)
		lost++
	}
	if fdsAfter > fdsBefore+2 {
		t.Errorf("open files %d before the load, %d after it", fdsBefore, fdsAfter)
		lost++
	}
	if transport.Load() > 0 {
		t.Errorf("%d requests got no answer", transport.Load())
	}
	record(row{
		what: "load",
		did: fmt.Sprintf("%d clients at once on %d accounts for %.0f s: %d logins, %d session checks (answers:%s)",
			clients, accounts, sc.loadFor.Seconds(), logins.Load(), checks.Load(), answers),
		found: fmt.Sprintf("%d unexpected answers, %d without an answer; peak RSS %.1f MiB (bound %d MiB); open files %d before, %d after; threads %d before, %d after",
			unexpected.Load(), transport.Load(), float64(hwm)/1024, boundMiB, fdsBefore, fdsAfter, threadsBefore, threadsAfter),
		lost: lost,
	})
}
