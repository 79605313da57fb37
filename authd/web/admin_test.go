package web

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rknas/firmware/authd/api"
	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/button"
	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/mail/mailtest"
	"github.com/rknas/firmware/authd/netconf"
	"github.com/rknas/firmware/authd/netconf/netconftest"
	"github.com/rknas/firmware/authd/timesync"
	"github.com/rknas/firmware/authd/timesync/timesynctest"
	"github.com/rknas/firmware/authd/tlscert"
	"github.com/rknas/firmware/board"
)

// device is authd's API with every part the pages show: accounts, mail
// (to a real SMTP server), time (against a real chronyd), the network (on
// a pretend system, with real rollback timers), the board, the button and
// the certificate.
type device struct {
	url     string
	svc     *auth.Service
	smtp    *mailtest.Server
	chrony  string
	applier *netconftest.Applier
}

// netTrial is how long a network change waits for its confirmation in
// these tests.
const netTrial = 6 * time.Second

type timeState struct{ ts *timesync.Service }

func (c timeState) Synchronized() bool { return c.ts.State() == timesync.StateSynchronized }
func (c timeState) Trusted() bool      { return c.ts.State() != timesync.StateUntrusted }

func newDevice(t *testing.T) *device {
	t.Helper()
	srv, svc, _ := newAPI(t, clock.System{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := &device{svc: svc, applier: &netconftest.Applier{}}

	smtp, err := mailtest.Start(mailtest.Options{Mode: mailtest.ModeStartTLS, Username: "nas@example.com", Password: "smtp-app-password"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { smtp.Close() })
	d.smtp = smtp

	// The time service runs on a clock of its own that starts ten minutes
	// slow, as a board without a battery would after a power cut, so that
	// syncing with chronyd visibly corrects it.
	d.chrony = timesynctest.StartChrony(t)
	devClock := clocktest.New(time.Now().Add(-10 * time.Minute))
	ts, err := timesync.New(timesync.Config{StateDir: t.TempDir(), Settings: timesync.Settings{Enabled: true, Servers: []string{"127.0.0.1:9"}},
		BuildTime: time.Now().Add(-365 * 24 * time.Hour)},
		timesync.Deps{Setter: timesynctest.NewSetter(t, devClock), Clock: devClock, Logger: log})
	if err != nil {
		t.Fatal(err)
	}

	netm, err := netconf.NewManager(netconf.Options{Dir: t.TempDir(), Applier: d.applier, Ports: func() ([]string, error) { return []string{"end0"}, nil },
		DefaultHostname: "rknas-test", ConfirmTimeout: netTrial, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := netm.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netm.Close() })

	certs, err := tlscert.Open(filepath.Join(t.TempDir(), "tls"), tlscert.Names{Hostname: "rknas-test"}, clock.System{}, log)
	if err != nil {
		t.Fatal(err)
	}
	prof := board.NoneProfile("test")
	prof.Name, prof.Model = "rock-3a", "Radxa ROCK 3A"
	prof.UART = board.UART{Device: "ttyS2", Baud: 1500000}
	prof.LEDs = []board.LED{{Role: "status"}}
	srv.AttachSystem(&api.System{Version: "test-1", Started: time.Now().Add(-time.Hour), Board: prof, Time: ts, Network: netm, TLS: certs,
		Button: func() button.Status {
			return button.Status{Source: "gpio", Device: "gpiochip0 line 5", Available: true, State: "idle"}
		}})
	svc.SetClockState(timeState{ts})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	d.url = hs.URL
	return d
}

// signInAsNewAdmin signs in with the default password and sets pass.
func (b *tab) signInAsNewAdmin(url, pass string) {
	b.t.Helper()
	b.do("open the page", chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.CSS("#view-login")))
	b.do("type the default login", fill("#login-user", "admin"), fill("#login-pass", testDefaultPassword))
	b.submit("#login-submit", "password")
	b.do("type the new password", fill("#password-current", testDefaultPassword), fill("#password-new", pass), fill("#password-repeat", pass))
	b.submit("#password-submit", "account")
}

// open follows a link of the navigation and waits for its page.
func (b *tab) open(view string) {
	b.t.Helper()
	b.submit(`#nav a[href="#`+view+`"]`, view)
}

// stepUp answers the step-up page with the password and waits for the
// page the change was made on.
func (b *tab) stepUp(pass, back string) {
	b.t.Helper()
	b.do("wait for the step-up", chromedp.WaitVisible(chromedp.CSS("#view-stepup")))
	b.do("type the password", fill("#stepup-pass", pass))
	b.submit("#stepup-submit", back)
}

func (b *tab) waitNotice(step, prefix string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Poll[string](`(e => !e.hidden && e.textContent.startsWith(`+jsString(prefix)+`) && e.textContent)(document.getElementById('notice'))`))
	if err != nil {
		b.t.Fatalf("%s: no notice starting %q (notice %q, error %q): %v", step, prefix, b.text("#notice"), b.alert(), err)
	}
	return got
}

// TestAdminPagesInBrowser: an admin makes a group and a user in it, makes
// 2FA mandatory for the group (confirming with the password), the user is
// made to enrol through the wizard at the first sign-in, the admin sees it
// and turns the user's 2FA off; then blocks and the allow-list, the audit
// log filtered and exported, and the system page with the certificate.
func TestAdminPagesInBrowser(t *testing.T) {
	d := newDevice(t)
	b := newTab(t, 4*time.Minute)
	const adminPass = "admin correct horse"
	b.signInAsNewAdmin(d.url, adminPass)

	b.open("groups")
	b.check("groups-empty")
	b.do("name a group", fill("#group-new-name", "media"))
	b.submit("#group-new-submit", "groups")
	if rows := evalIn[[]string](b, `[...document.querySelectorAll('#groups-table tbody th')].map(e => e.textContent)`); len(rows) != 1 || rows[0] != "media" {
		t.Errorf("groups listed: %q", rows)
	}
	b.do("name the same group again", fill("#group-new-name", "media"))
	if msg := b.submitErr("#group-new-submit"); msg != "There is a group with this name already." {
		t.Errorf("a second group media: %q", msg)
	}
	b.fieldHasError("#group-new-name")

	b.open("users")
	b.do("type a bad user name", fill("#user-new-name", "Alice!"), fill("#user-new-pass", "alice-first-pw"))
	if msg := b.submitErr("#user-new-submit"); !strings.HasPrefix(msg, "It must start with a lower-case letter") && !strings.Contains(msg, "not allowed") {
		t.Errorf("user name Alice!: %q", msg)
	}
	b.fieldHasError("#user-new-name")
	b.check("users-bad-name")
	b.do("type the user", fill("#user-new-name", "alice"), fill("#user-new-pass", "alice-first-pw"),
		chromedp.Click(chromedp.CSS(`#user-new-groups input[value="media"]`)))
	b.submit("#user-new-submit", "users")
	b.waitNotice("add alice", "User alice added.")
	row := evalIn[[]string](b, `[...document.querySelectorAll('#users-table tbody tr')].filter(r => r.cells[0].textContent === 'alice').map(r => [...r.cells].slice(0, 6).map(c => c.textContent).join('|'))`)
	if len(row) != 1 || row[0] != "alice|User|media|Off||Must change password" {
		t.Errorf("alice in the table: %q", row)
	}
	b.check("users")

	// The policy needs a fresh step-up: the page asks for the password
	// and then saves.
	b.open("policy")
	b.do("choose the group", chromedp.Click(chromedp.CSS("#policy-selected")), chromedp.Click(chromedp.CSS(`#policy-groups input[value="media"]`)))
	b.submit("#policy-submit", "stepup")
	b.check("step-up")
	b.stepUp(adminPass, "policy")
	b.waitNotice("save the policy", "The policy is saved.")
	if pending := evalIn[[]string](b, `[...document.querySelectorAll('#policy-pending li')].map(e => e.textContent)`); len(pending) != 1 || pending[0] != "alice" {
		t.Errorf("not yet enrolled: %q", pending)
	}
	b.check("policy")

	// Alice, in a browser of her own: a new password, then the wizard.
	a := newTab(t, 3*time.Minute)
	a.do("open the page", chromedp.Navigate(d.url+"/"), chromedp.WaitVisible(chromedp.CSS("#view-login")))
	a.do("type alice's login", fill("#login-user", "alice"), fill("#login-pass", "alice-first-pw"))
	a.submit("#login-submit", "password")
	if l := a.text("#password-current-label"); l != "Current password" {
		t.Errorf("alice's forced change names %q", l)
	}
	a.do("type alice's new password", fill("#password-current", "alice-first-pw"), fill("#password-new", "alice's own pass"), fill("#password-repeat", "alice's own pass"))
	a.submit("#password-submit", "wizard")
	if !evalIn[bool](a, `document.getElementById('nav').hidden`) {
		t.Error("the navigation shows during the forced enrolment")
	}
	a.submit("#wizard-next-1", "wizard")
	secret := strings.ReplaceAll(a.text("#enrol-secret"), " ", "")
	a.submit("#wizard-next-2", "wizard")
	a.do("type alice's code", fill("#enrol-code", totpCode(t, secret, time.Now())))
	a.submit("#enrol-submit", "wizard")
	a.submit("#codes-done", "wizard")
	a.submit("#wizard-skip-email", "account")
	if twofa := a.text("#acct-2fa"); twofa != "On" {
		t.Errorf("alice after the wizard: 2FA %q", twofa)
	}
	if !evalIn[bool](a, `[...document.querySelectorAll('[data-admin]')].every(e => e.hidden)`) {
		t.Error("alice, a user, sees the admin pages in the navigation")
	}
	a.noSecurityMessages()

	// The admin sees it on alice's page and turns it off, after a
	// question.
	b.do("open alice's page", chromedp.Navigate(d.url+"/#user/alice"), chromedp.WaitVisible(chromedp.CSS("#view-user")))
	if twofa := b.text("#user-2fa"); twofa != "On" {
		t.Errorf("alice's page: 2FA %q", twofa)
	}
	b.do("ask to turn it off", chromedp.Click(chromedp.CSS("#user-2fa-off")), chromedp.WaitVisible(chromedp.CSS("#user-2fa-box .question")))
	b.check("user-confirm-2fa-off")
	b.do("confirm", chromedp.Click(chromedp.CSS("#user-2fa-box button.danger")))
	b.waitNotice("turn alice's 2FA off", "Two-factor authentication of alice is off.")
	if twofa := b.text("#user-2fa"); twofa != "Off: required, not set up yet" {
		t.Errorf("alice's page after turning 2FA off: %q", twofa)
	}
	b.check("user")

	// Blocked addresses and the allow-list (the step-up still holds).
	b.open("security")
	if you := b.text("#security-you"); you != "127.0.0.1" {
		t.Errorf("your address: %q", you)
	}
	b.do("type a network", fill("#allow-list", "192.168.1.0/24\nnot-a-network"))
	if msg := b.submitErr("#allow-submit"); !strings.Contains(msg, "not-a-network") {
		t.Errorf("a bad allow-list entry: %q", msg)
	}
	b.fieldHasError("#allow-list")
	b.do("type a network", fill("#allow-list", "192.168.1.0/24"))
	b.submit("#allow-submit", "security")
	b.waitNotice("save the allow-list", "Saved.")
	b.check("security")

	// The audit log, filtered to alice and to one event, and its CSV.
	b.open("audit")
	b.do("filter by alice", fill("#audit-user", "alice"))
	b.submit("#audit-submit", "audit")
	events := evalIn[[]string](b, `[...document.querySelectorAll('#audit-table tbody tr')].map(r => r.cells[1].textContent)`)
	for _, want := range []string{"user_created", "2fa_enabled", "2fa_disabled", "password_changed"} {
		if !containsString(events, want) {
			t.Errorf("audit for alice lacks %s: %q", want, events)
		}
	}
	b.do("filter by event", fill("#audit-event", "2fa"))
	b.submit("#audit-submit", "audit")
	events = evalIn[[]string](b, `[...document.querySelectorAll('#audit-table tbody tr')].map(r => r.cells[1].textContent)`)
	if strings.Join(events, ",") != "2fa_disabled,2fa_enabled" {
		t.Errorf("audit for alice and 2fa: %q", events)
	}
	b.check("audit")
	csv := evalInAwait[string](b, `fetch(document.getElementById('audit-csv').href).then(async r => r.headers.get('Content-Type') + '\n' + (await r.text()))`)
	if !strings.HasPrefix(csv, "text/csv") || strings.Count(csv, ",2fa_") != 2 || !strings.Contains(csv, "id,time,event,user,actor,client,detail") {
		t.Errorf("the CSV download: %q", csv)
	}

	// The system page: the board, what RESET does and the certificate.
	b.open("system")
	if got := b.text("#sys-board"); got != "Radxa ROCK 3A (rock-3a)" {
		t.Errorf("board %q", got)
	}
	if got := b.text("#sys-button-does"); !strings.HasPrefix(got, "Held 4 to 15 seconds") {
		t.Errorf("what RESET does: %q", got)
	}
	if fp := b.text("#cert-fp"); len(fp) != 95 || strings.Count(fp, ":") != 31 {
		t.Errorf("certificate fingerprint %q", fp)
	}
	b.check("system")
	b.noSecurityMessages()
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func evalInAwait[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}
