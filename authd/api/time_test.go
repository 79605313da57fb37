package api

import (
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/timesync"
	"github.com/rknas/firmware/authd/timesync/timesynctest"
	"github.com/rknas/firmware/board"
)

type clockAdapter struct{ ts *timesync.Service }

func (c clockAdapter) Synchronized() bool { return c.ts.State() == timesync.StateSynchronized }
func (c clockAdapter) Trusted() bool      { return c.ts.State() != timesync.StateUntrusted }

// TestWrongClockIsNamedAndNTPFixesIt runs the device ten minutes slow with
// no reachable NTP server: a correct code from the phone is refused with
// clock_not_synchronized, not a bare wrong code. Pointing the time settings
// at a real chronyd and syncing moves the (fake) system clock, the status
// says synchronized, and the next code works.
func TestWrongClockIsNamedAndNTPFixesIt(t *testing.T) {
	chrony := timesynctest.StartChrony(t)
	devClock := clocktest.New(time.Now().Add(-10 * time.Minute))
	e := newEnv(t, devClock)
	ts, err := timesync.New(timesync.Config{StateDir: t.TempDir(), Settings: timesync.Settings{Enabled: true, Servers: []string{"127.0.0.1:9"}},
		BuildTime: time.Now().Add(-365 * 24 * time.Hour)},
		timesync.Deps{Setter: timesynctest.NewSetter(t, devClock), Clock: devClock, Logger: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.SetClockState(clockAdapter{ts})
	srv := New(e.svc, discardLog(), time.Hour)
	srv.AttachSystem(&System{Time: ts, Board: board.NoneProfile("test"), Started: time.Now()})
	e.url = startServer(t, srv)

	b := e.browser()
	b.setUpAdmin("correct horse")
	// Enrol on the device's (wrong) clock, as a phone scanning the QR code
	// would not notice.
	secret, codes := b.enroll()

	// The status tells the truth on a fresh start: not synchronized.
	st := b.must(200, "GET", "/api/v1/time/status", nil)
	if st["state"] == "synchronized" {
		t.Fatalf("fresh status claims synchronized: %v", st)
	}
	// Anyone may ask for the state; the rest is for admins.
	if anon := e.browser().must(200, "GET", "/api/v1/time/status", nil); len(anon) != 1 || anon["state"] != st["state"] {
		t.Errorf("an anonymous caller gets %v, want the state alone", anon)
	}
	res := b.must(200, "POST", "/api/v1/time/sync", nil)
	if res["ok"] != false || !strings.Contains(res["error"].(string), "127.0.0.1:9") {
		t.Fatalf("sync against a dead server: %v", res)
	}

	// The phone has the right time.
	phone := time.Now()
	ch := b.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))["challenge"]
	out := b.wantErr(401, "clock_not_synchronized", "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": codeAt(t, secret, phone)})
	if msg := out["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "NTP") || !strings.Contains(msg, "set the device time") {
		t.Errorf("message does not say what to do: %q", msg)
	}
	// A code that was already used is code_reused, whatever the clock: the
	// enrolment spent the step before the device's current one.
	ch = b.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))["challenge"]
	b.wantErr(401, "code_reused", "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": codeAt(t, secret, devClock.Now().Add(-30*time.Second))})

	// The admin's session from the enrolment is still open. Pointing NTP
	// elsewhere needs a step-up, which the phone's code cannot give while
	// the clock is wrong: a recovery code does.
	b.wantErr(403, "step_up_required", "PUT", "/api/v1/settings/time", map[string]any{"ntp_enabled": true, "ntp_servers": []string{chrony}})
	b.wantErr(401, "clock_not_synchronized", "POST", "/api/v1/me/step-up", map[string]string{"password": "correct horse", "code": codeAt(t, secret, phone)})
	b.must(200, "POST", "/api/v1/me/step-up", map[string]string{"password": "correct horse", "code": codes[0]})
	b.wantErr(400, "bad_request", "PUT", "/api/v1/settings/time", map[string]any{"ntp_enabled": true, "ntp_servers": []string{"bad host name!"}})
	b.must(200, "PUT", "/api/v1/settings/time", map[string]any{"ntp_enabled": true, "ntp_servers": []string{chrony}})
	if got := b.must(200, "GET", "/api/v1/settings/time", nil); got["ntp_servers"].([]any)[0] != chrony {
		t.Fatalf("settings: %v", got)
	}
	res = b.must(200, "POST", "/api/v1/time/sync", nil)
	if res["ok"] != true {
		t.Fatalf("sync against chronyd: %v", res)
	}
	st = b.must(200, "GET", "/api/v1/time/status", nil)
	if st["state"] != "synchronized" || st["server"] == "" || st["source"] != "ntp" {
		t.Fatalf("status after sync: %v", st)
	}
	if off, _ := st["offset_ms"].(float64); off < 9*60*1000 || off > 11*60*1000 {
		t.Errorf("offset %v ms, want about ten minutes", off)
	}
	if d := time.Until(devClock.Now()); d < -time.Second || d > time.Second {
		t.Fatalf("device clock is %v off after the sync", d)
	}
	// Now the phone's code works, and a wrong code is simply wrong.
	ch = b.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))["challenge"]
	b.wantErr(401, "invalid_code", "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": "000000"})
	b.must(200, "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": codeAt(t, secret, devClock.Now())})

	found := false
	for _, en := range b.must(200, "GET", "/api/v1/audit?limit=1000", nil)["entries"].([]any) {
		if d, _ := en.(map[string]any)["detail"].(string); strings.Contains(d, "clock not synchronized") {
			found = true
		}
	}
	if !found {
		t.Error("the audit log does not record the clock failure")
	}
}
