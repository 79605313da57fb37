//go:build vmtest

package vmtest

import (
	"context"
	"fmt"
	"net/http/cookiejar"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// TestVMClockJumps steps the board's clock three hours ahead and back from
// the rescue console (set-clock sets the system clock itself, behind
// authd's back, as a bad RTC or a hand on the console would) while a
// session, a ban and 2FA are in use: the session and the ban are measured
// on the monotonic clock, so a step neither ends nor lifts them; codes
// follow the device's clock, so the owner's code is refused while the
// clock is three hours wrong and accepted once it is right again.
func TestVMClockJumps(t *testing.T) {
	t.Parallel() // two VMs at a time: one per core, each with one vCPU
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	bin := rescueBin(t)
	state, label := vmDisk(t, "")
	v := newVM(t, "clock", state, "")
	v.boot(ctx)
	def := label.password
	jar, _ := cookiejar.New(nil)
	admin := newClient(t, v.port, jar)
	admin.must(200, "POST", "/api/v1/login", login("admin", def))
	admin.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": def, "new_password": "admin passphrase 1"})
	admin.must(200, "POST", "/api/v1/login", login("admin", "admin passphrase 1"))
	admin.must(201, "POST", "/api/v1/users", map[string]any{"name": "bob", "password": "bob passphrase 1", "must_change_password": false})
	var step int64
	secret := admin.must(200, "POST", "/api/v1/me/2fa/enroll", map[string]string{"password": "admin passphrase 1"})["secret"].(string)
	admin.must(200, "POST", "/api/v1/me/2fa/verify", map[string]string{"code": freshCode(t, secret, &step)})
	sessionHolds := func(when string) {
		if st, out, err := admin.call("GET", "/api/v1/me", nil); err != nil || st != 200 {
			t.Errorf("%s: the session ended: %d %v %v", when, st, out, err)
		}
	}
	port := serialPTY(t, v)
	setClock := func(to time.Time) {
		attachConfirmed(ctx, t, v, bin, port, "set-clock", "--time", to.UTC().Format(time.RFC3339))
	}
	// A step-up checks the code as the login's code step does.
	codeAccepted := func(at time.Time) bool {
		code, err := totp.GenerateCode(secret, at)
		if err != nil {
			t.Fatal(err)
		}
		st, _, err := admin.call("POST", "/api/v1/me/step-up", map[string]string{"password": "admin passphrase 1", "code": code})
		return err == nil && st == 200
	}

	// 1. Three hours ahead and back: the session holds; the owner's code
	// is refused while the clock is wrong and accepted once it is right.
	setClock(time.Now().Add(3 * time.Hour))
	sessionHolds("3 h ahead")
	freshCode(t, secret, &step)
	if codeAccepted(time.Now()) {
		t.Error("3 h ahead: the owner's code of the true time was accepted by a clock three hours wrong")
	}
	setClock(time.Now())
	sessionHolds("back")
	freshCode(t, secret, &step)
	if !codeAccepted(time.Now()) {
		t.Error("back: the owner's code was refused once the clock was right again")
	}

	// 2. A ban across the same steps. Every request of this host reaches
	// the VM from one address (QEMU's 10.0.2.2), which five wrong
	// passwords ban for 5 minutes: three hours ahead must not lift it.
	guesser := newClient(t, v.port, nil)
	for range 5 {
		guesser.call("POST", "/api/v1/login", login("bob", "wrong"))
	}
	banned := func(when string) {
		st, out, err := guesser.call("POST", "/api/v1/login", login("bob", "bob passphrase 1"))
		if err != nil || st != 429 {
			t.Errorf("%s: the address's ban is gone: %d %v %v", when, st, out, err)
		}
	}
	banned("before the steps")
	setClock(time.Now().Add(3 * time.Hour))
	banned("3 h ahead")
	sessionHolds("3 h ahead, again")
	setClock(time.Now())
	banned("back")
	fmt.Printf("vmtest: clock stepped +3 h and back twice from the rescue console: the session held, the ban held, codes followed the clock\n")
}
