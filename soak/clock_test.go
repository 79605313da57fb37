//go:build soak

package soak

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/rknas/firmware/authd/timesync/timesynctest"
)

// TestLyingTimeServers gives authd three real chronyds among NTP servers
// that lie: three hours ahead, two hours behind, a kiss-of-death, stratum
// 16 and garbage (eight servers, the most authd takes). Synchronising again and again, authd
// must follow the chronyds' majority every time (with fewer honest servers
// than liars it leaves the clock alone: authd/timesync's tests hold that),
// and the owner's codes (made from the true time) must go on being
// accepted; a code from three hours ahead, what a device that believed the
// liar would want, must not.
func TestLyingTimeServers(t *testing.T) {
	_, sc := campaign()
	goods := []string{timesynctest.StartChrony(t), timesynctest.StartChrony(t), timesynctest.StartChrony(t)}
	liars := []string{
		timesynctest.StartServer(t, timesynctest.Liar(3*time.Hour)).Addr,
		timesynctest.StartServer(t, timesynctest.Liar(-2*time.Hour)).Addr,
		timesynctest.StartServer(t, timesynctest.KissOfDeath).Addr,
		timesynctest.StartServer(t, timesynctest.Stratum16).Addr,
		timesynctest.StartServer(t, timesynctest.Garbage).Addr,
	}
	servers := strings.Join(append(slices.Clone(goods), liars...), ",")
	d, err := start(t, filepath.Join(t.TempDir(), "state"), freeAddr(t), "-ntp", servers)
	if err != nil {
		t.Fatal(err)
	}
	defer d.stop()
	const password = "owner passphrase 1"
	owner := ownerSetup(t, d, password)
	var step int64
	secret := enrollTOTP(t, owner, password, &step)

	var syncs, followed, codesOK, aheadRefused int
	lost := 0
	worst := 0.0
	for i := range sc.clockSyncs {
		out := owner.must(t, 200, "POST", "/api/v1/time/sync", nil)
		syncs++
		st, _ := out["status"].(map[string]any)
		offset, _ := st["offset_ms"].(float64)
		worst = math.Max(worst, math.Abs(offset))
		if server, _ := st["server"].(string); slices.Contains(goods, server) && math.Abs(offset) < 1000 {
			followed++
		} else {
			t.Errorf("sync %d: authd followed %v (offset %.0f ms), not one of the chronyds %v: %v", i+1, st["server"], offset, goods, st)
			lost++
		}
		// A code of three hours ahead: refused (from an address of its own:
		// it is a failure, and the owner's address is not to collect them).
		liar := newClient(d.url(), fmt.Sprintf("127.5.0.%d", 1+i))
		ch := liar.must(t, 200, "POST", "/api/v1/login", login("admin", password))
		ahead, err := totp.GenerateCode(secret, time.Now().Add(3*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if code, _, _ := liar.call(context.Background(), "POST", "/api/v1/login/otp", map[string]any{"challenge": ch["challenge"], "code": ahead}); code == 200 {
			t.Errorf("sync %d: a code of three hours ahead was accepted", i+1)
			lost++
		} else {
			aheadRefused++
		}
		liar.close()
		// The owner's code, from the true time: accepted.
		c := newClient(d.url(), "")
		ch = c.must(t, 200, "POST", "/api/v1/login", login("admin", password))
		if code, o, _ := c.call(context.Background(), "POST", "/api/v1/login/otp", map[string]any{"challenge": ch["challenge"], "code": freshCode(t, secret, &step)}); code == 200 && o["status"] == "ok" {
			codesOK++
		} else {
			t.Errorf("sync %d: the owner's code was refused: %d %v", i+1, code, o)
			lost++
		}
		c.close()
	}
	record(row{
		what: "lying time servers",
		did: fmt.Sprintf("%d synchronisations against three real chronyds and five liars (3 h ahead, 2 h behind, kiss-of-death, stratum 16, garbage)",
			syncs),
		found: fmt.Sprintf("the chronyds followed %d of %d times (largest correction %.0f ms); the owner's codes accepted %d of %d times; codes of 3 h ahead refused %d of %d times",
			followed, syncs, worst, codesOK, syncs, aheadRefused, syncs),
		lost: lost,
	})
}
