package api

import (
	"encoding/csv"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/button"
	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/store"
	"github.com/rknas/firmware/board"
)

// TestDeviceInfoForTheSignInPage: before anyone signs in, the page learns
// the device's name, its clock as codes are checked against, and how long
// to hold RESET, only when a button is really watched.
func TestDeviceInfoForTheSignInPage(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, clocktest.New(at))
	srv := New(e.svc, discardLog(), time.Hour)
	prof := board.NoneProfile("test")
	prof.UART = board.UART{Device: "ttyS2", Baud: 1500000}
	available := false
	srv.AttachSystem(&System{Board: prof, Started: time.Now(), Button: func() button.Status { return button.Status{Available: available} }})
	e.url = startServer(t, srv)
	b := e.browser()

	got := b.must(200, "GET", "/api/v1/device", nil)
	if got["name"] != "TestNAS" || got["time"] != "2026-03-01T12:00:00Z" {
		t.Errorf("device: %v", got)
	}
	if _, ok := got["clock"]; ok {
		t.Errorf("clock state reported with no clock state connected: %v", got)
	}
	if r := got["reset_button"].(map[string]any); r["present"] != false || len(r) != 1 {
		t.Errorf("no button watched, got %v", r)
	}
	if c := got["serial_console"].(map[string]any); c["device"] != "ttyS2" || c["baud"] != 1500000.0 {
		t.Errorf("serial console %v", c)
	}
	available = true
	if r := b.must(200, "GET", "/api/v1/device", nil)["reset_button"].(map[string]any); r["present"] != true || r["hold_seconds"] != 4.0 || r["cancel_seconds"] != 15.0 {
		t.Errorf("button watched, got %v", r)
	}
	e.svc.SetClockState(fixedClockState{synced: false, trusted: true})
	if got := b.must(200, "GET", "/api/v1/device", nil); got["clock"] != "estimated" {
		t.Errorf("clock %v, want estimated", got["clock"])
	}
}

type fixedClockState struct{ synced, trusted bool }

func (f fixedClockState) Synchronized() bool { return f.synced }
func (f fixedClockState) Trusted() bool      { return f.trusted }

// TestAuditFilterAndCSV: the log filtered by account and by event, paged,
// and exported as CSV with formula cells defused.
func TestAuditFilterAndCSV(t *testing.T) {
	e := newEnv(t, clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)))
	b := e.browser()
	b.setUpAdmin("correct horse")
	for _, ev := range []store.AuditEntry{
		{Event: "2fa_enabled", User: "alice"},
		{Event: "2fa_disabled", User: "bob", Actor: "alice"},
		{Event: "2fax", User: "alice"},
		{Event: "login_failed", User: "=HYPERLINK(\"http://evil\")", Client: "192.0.2.1"},
	} {
		e.svc.Audit(ev)
	}
	events := func(path string) []string {
		var out []string
		for _, en := range b.must(200, "GET", path, nil)["entries"].([]any) {
			out = append(out, en.(map[string]any)["event"].(string))
		}
		return out
	}
	if got := events("/api/v1/audit?user=alice"); strings.Join(got, ",") != "2fax,2fa_disabled,2fa_enabled" {
		t.Errorf("user=alice: %q", got)
	}
	if got := events("/api/v1/audit?event=2fa"); strings.Join(got, ",") != "2fa_disabled,2fa_enabled" {
		t.Errorf("event=2fa: %q", got)
	}
	if got := events("/api/v1/audit?event=2fa&user=bob"); strings.Join(got, ",") != "2fa_disabled" {
		t.Errorf("event=2fa&user=bob: %q", got)
	}
	page := b.must(200, "GET", "/api/v1/audit?user=alice&limit=2", nil)["entries"].([]any)
	last := page[len(page)-1].(map[string]any)["id"].(float64)
	if got := events("/api/v1/audit?user=alice&before=" + jsonString(last)); strings.Join(got, ",") != "2fa_enabled" {
		t.Errorf("second page: %q", got)
	}
	b.wantErr(400, "bad_request", "GET", "/api/v1/audit?format=xml", nil)
	b.wantErr(400, "bad_request", "GET", "/api/v1/audit?user="+strings.Repeat("a", 65), nil)

	req, _ := http.NewRequest("GET", e.url+"/api/v1/audit?format=csv&event=login_failed", nil)
	resp, err := b.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="audit-20260301-120000.csv"` {
		t.Fatalf("CSV answer %d %v: %s", resp.StatusCode, resp.Header, raw)
	}
	rows, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("CSV %q: %v", raw, err)
	}
	if strings.Join(rows[0], ",") != "id,time,event,user,actor,client,detail" {
		t.Errorf("header %q", rows[0])
	}
	if rows[1][2] != "login_failed" || rows[1][3] != `'=HYPERLINK("http://evil")` || rows[1][5] != "192.0.2.1" || rows[1][1] != "2026-03-01T12:00:00Z" {
		t.Errorf("row %q", rows[1])
	}
	// Only admins read it.
	e.browser().wantErr(401, "unauthorized", "GET", "/api/v1/audit?format=csv", nil)
}

// TestOwnSessionsListedAndEnded: an account sees where it is signed in,
// which session is this one, and ends another, whose browser is signed
// out at once; an admin sees and ends a user's sessions, and ending
// another admin's needs a step-up; one account cannot end another's.
func TestOwnSessionsListedAndEnded(t *testing.T) {
	e := newEnv(t, clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)))
	admin := e.browser()
	admin.setUpAdmin("correct horse")
	admin.must(201, "POST", "/api/v1/users", map[string]any{"name": "bob", "password": "bob passphrase", "must_change_password": false})
	admin.must(201, "POST", "/api/v1/users", map[string]any{"name": "carol", "password": "carol passphrase", "must_change_password": false, "role": "user"})

	laptop, phone := e.browser(), e.browser()
	laptop.must(200, "POST", "/api/v1/login", login("bob", "bob passphrase"))
	e.clock.Advance(time.Minute)
	phone.must(200, "POST", "/api/v1/login", login("bob", "bob passphrase"))
	list := laptop.must(200, "GET", "/api/v1/me/sessions", nil)["sessions"].([]any)
	if len(list) != 2 {
		t.Fatalf("bob's sessions: %v", list)
	}
	newest, oldest := list[0].(map[string]any), list[1].(map[string]any)
	if newest["current"] != false || oldest["current"] != true || oldest["address"] != "127.0.0.1" || oldest["browser"] != "Go-http-client/1.1" {
		t.Errorf("bob's sessions from the laptop: %v", list)
	}
	// The laptop ends the phone's session: the phone is signed out.
	laptop.must(200, "DELETE", "/api/v1/me/sessions/"+newest["id"].(string), nil)
	phone.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)
	laptop.wantErr(404, "not_found", "DELETE", "/api/v1/me/sessions/"+newest["id"].(string), nil)

	// Carol cannot end bob's session, by any route.
	carol := e.browser()
	carol.must(200, "POST", "/api/v1/login", login("carol", "carol passphrase"))
	carol.wantErr(404, "not_found", "DELETE", "/api/v1/me/sessions/"+oldest["id"].(string), nil)
	carol.wantErr(403, "forbidden", "DELETE", "/api/v1/users/bob/sessions/"+oldest["id"].(string), nil)
	laptop.must(200, "GET", "/api/v1/me", nil)

	// The admin lists bob's sessions and ends the laptop's.
	if got := admin.must(200, "GET", "/api/v1/users/bob/sessions", nil)["sessions"].([]any); len(got) != 1 || got[0].(map[string]any)["id"] != oldest["id"] {
		t.Fatalf("admin's view of bob's sessions: %v", got)
	}
	admin.wantErr(404, "not_found", "GET", "/api/v1/users/nobody/sessions", nil)
	admin.must(200, "DELETE", "/api/v1/users/bob/sessions/"+oldest["id"].(string), nil)
	laptop.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)

	// Another admin's session needs a step-up.
	admin.stepUp()
	admin.must(201, "POST", "/api/v1/users", map[string]any{"name": "dave", "password": "dave passphrase", "must_change_password": false, "role": "admin"})
	dave := e.browser()
	dave.must(200, "POST", "/api/v1/login", login("dave", "dave passphrase"))
	daveID := dave.must(200, "GET", "/api/v1/me/sessions", nil)["sessions"].([]any)[0].(map[string]any)["id"].(string)
	e.clock.Advance(6 * time.Minute)
	admin.wantErr(403, "step_up_required", "DELETE", "/api/v1/users/dave/sessions/"+daveID, nil)
	admin.stepUp()
	admin.must(200, "DELETE", "/api/v1/users/dave/sessions/"+daveID, nil)
	dave.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)

	// Ending one's own session signs out and clears the cookie.
	mine := admin.must(200, "GET", "/api/v1/me/sessions", nil)["sessions"].([]any)[0].(map[string]any)
	if mine["current"] != true {
		t.Fatalf("admin's own session: %v", mine)
	}
	_, _, hdr := admin.call("DELETE", "/api/v1/me/sessions/"+mine["id"].(string), nil)
	if c := hdr.Get("Set-Cookie"); !strings.Contains(c, SessionCookie+"=;") {
		t.Errorf("ending the own session sets %q", c)
	}
	admin.wantErr(401, "unauthorized", "GET", "/api/v1/me", nil)
	var ended int
	for _, en := range e.svcAudit(t) {
		if en.Event == "session_ended" {
			ended++
		}
	}
	if ended != 4 {
		t.Errorf("%d session_ended entries, want 4", ended)
	}
}

func (e *env) svcAudit(t *testing.T) []store.AuditEntry {
	t.Helper()
	entries, err := e.svc.AuditLog(1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}
