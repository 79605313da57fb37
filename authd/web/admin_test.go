package web

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/api"
	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/button"
	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/mail/mailtest"
	"github.com/rknas/firmware/authd/netconf"
	"github.com/rknas/firmware/authd/netconf/netconftest"
	"github.com/rknas/firmware/authd/portconf"
	"github.com/rknas/firmware/authd/recovery"
	"github.com/rknas/firmware/authd/store"
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

// stepUpWithCode answers the step-up page of an account with an
// authenticator app: the password and a code (an app code or a recovery
// code), and waits for the page the change was made on.
func (b *tab) stepUpWithCode(pass, code, back string) {
	b.t.Helper()
	b.do("wait for the step-up", chromedp.WaitVisible(chromedp.CSS("#view-stepup")))
	b.do("type the password and a code", fill("#stepup-pass", pass), fill("#stepup-code", code))
	b.submit("#stepup-submit", back)
}

func (b *tab) waitNotice(step, prefix string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Poll[string](`(e => !e.hidden && e.textContent.startsWith(`+jsString(prefix)+`) && e.textContent)(document.getElementById('notice'))`))
	if err != nil {
		b.t.Fatalf("%s: no notice starting %q (notice %q, %s): %v", step, prefix, b.text("#notice"), b.diag(), err)
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
	if twofa := a.text("#acct-2fa"); twofa != "On (app)" {
		t.Errorf("alice after the wizard: 2FA %q", twofa)
	}
	if !evalIn[bool](a, `[...document.querySelectorAll('[data-admin]')].every(e => e.hidden)`) {
		t.Error("alice, a user, sees the admin pages in the navigation")
	}
	// Alice, signed out, forgets her password: five wrong ones block the
	// address, and the admin sees and lifts that block.
	a.submit("#nav-signout", "login")
	for i := range 5 {
		a.do("type a wrong password", fill("#login-user", "alice"), fill("#login-pass", "not-"+itoa(i)))
		a.submitErr("#login-submit")
	}
	if msg := a.alert(); !strings.Contains(msg, "blocked") {
		t.Errorf("after 5 wrong passwords alice reads %q", msg)
	}
	a.noSecurityMessages()
	b.open("security")
	if rows := evalIn[[]string](b, `[...document.querySelectorAll('#blocks-table tbody th')].map(e => e.textContent)`); len(rows) != 1 || rows[0] != "Address 127.0.0.1" {
		t.Fatalf("blocks listed: %q", rows)
	}
	b.check("security-blocked")
	b.do("unblock", chromedp.Click(chromedp.CSS("#blocks-table tbody button")))
	b.waitNotice("unblock", "Unblocked: 127.0.0.1.")
	a.do("type alice's password", fill("#login-user", "alice"), fill("#login-pass", "alice's own pass"))
	a.submit("#login-submit", "code")

	// The admin sees it on alice's page and turns it off, after a
	// question.
	b.do("open alice's page", chromedp.Navigate(d.url+"/#user/alice"), chromedp.WaitVisible(chromedp.CSS("#view-user")))
	if twofa := b.text("#user-2fa"); twofa != "On (app)" {
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

// TestMailTimeNetworkPagesInBrowser: the SMTP settings against a real SMTP
// server (a wrong password named as such, then a test mail received), the
// clock shown slow and unsynchronized and then synchronized against a real
// chronyd, and a network change that rolls back when it is not confirmed
// and stays when it is.
func TestMailTimeNetworkPagesInBrowser(t *testing.T) {
	d := newDevice(t)
	b := newTab(t, 4*time.Minute)
	const adminPass = "admin correct horse"
	b.signInAsNewAdmin(d.url, adminPass)

	// Mail: the presets say what Gmail needs; a custom server with its CA.
	b.open("mail")
	if hint := b.text("#smtp-preset-hint"); !strings.Contains(hint, "app password") {
		t.Errorf("the Gmail preset does not mention the app password: %q", hint)
	}
	b.check("mail-empty")
	b.do("choose a custom server", chromedp.SetValue(chromedp.CSS("#smtp-preset"), "custom"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('smtp-preset').dispatchEvent(new Event('change'))`))
	b.do("type the server", fill("#smtp-host", d.smtp.Host()), fill("#smtp-port", itoa(d.smtp.Port())),
		chromedp.SetValue(chromedp.CSS("#smtp-ca"), d.smtp.CA().PEM), fill("#smtp-user", "nas@example.com"), fill("#smtp-pass", "wrong-password"),
		fill("#smtp-from", "nas@example.com"))
	b.submit("#smtp-submit", "stepup")
	b.stepUp(adminPass, "mail")
	b.waitNotice("save the SMTP settings", "Saved.")
	b.do("type the test address", fill("#smtp-test-to", "owner@example.com"))
	if msg := b.submitErr("#smtp-test-submit"); !strings.Contains(msg, "refused the username or password") {
		t.Errorf("a wrong SMTP password: %q", msg)
	}
	b.check("mail-test-failed")
	b.do("type the right password", fill("#smtp-pass", "smtp-app-password"))
	b.submit("#smtp-submit", "mail")
	b.waitNotice("save the SMTP settings", "Saved.")
	if p := evalIn[string](b, `document.getElementById('smtp-pass').placeholder`); p != "unchanged" {
		t.Errorf("stored SMTP password shown as %q", p)
	}
	b.do("type the test address", fill("#smtp-test-to", "owner@example.com"))
	b.submit("#smtp-test-submit", "mail")
	b.waitNotice("send the test mail", "The test mail was sent.")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	msgs, err := d.smtp.WaitForMessages(ctx, 1)
	cancel()
	if err != nil || len(msgs) != 1 || msgs[0].To[0] != "owner@example.com" || !msgs[0].TLS {
		t.Fatalf("the SMTP server received %+v (%v)", msgs, err)
	}
	b.check("mail")

	// Time: ten minutes slow and unconfirmed, then synchronized.
	b.open("time")
	if st := b.text("#time-state"); strings.HasPrefix(st, "Synchronized") {
		t.Errorf("a fresh device says %q", st)
	}
	b.check("time-unsynchronized")
	// By hand, while no time server has confirmed the clock.
	b.do("use this computer's time", chromedp.Click(chromedp.CSS("#settime-now")))
	b.submit("#settime-submit", "time")
	b.waitNotice("set the time", "The time is set.")
	if src := b.text("#time-source"); src != "set by hand" {
		t.Errorf("after setting the time: source %q", src)
	}
	b.do("name chronyd", fill("#ntp-servers", d.chrony))
	b.submit("#ntp-submit", "time")
	b.waitNotice("save the servers", "Saved.")
	b.do("synchronize", chromedp.Click(chromedp.CSS("#time-sync")))
	b.waitNotice("synchronize", "The clock is synchronized.")
	if st, server := b.text("#time-state"), b.text("#time-server"); !strings.HasPrefix(st, "Synchronized") || !strings.Contains(server, "127.0.0.1") {
		t.Errorf("after syncing with chronyd: %q from %q", st, server)
	}

	b.check("time")
	// Now NTP keeps the time, and the page says so to a hand setting.
	b.do("use this computer's time", chromedp.Click(chromedp.CSS("#settime-now")))
	if msg := b.submitErr("#settime-submit"); !strings.Contains(msg, "turn NTP off first") {
		t.Errorf("setting the time while NTP keeps it: %q", msg)
	}

	// Network: a static address on trial, not confirmed: it rolls back.
	b.open("network")
	b.check("network")
	staticEnd0 := func() {
		b.do("choose a static address", chromedp.Click(chromedp.CSS(`#net-interfaces input[value="static"]`)),
			fill(`#net-interfaces [name="addresses"]`, "192.168.1.10/24"), fill(`#net-interfaces [name="gateway4"]`, "192.168.1.1"),
			fill("#net-dns", "192.168.1.1"))
	}
	staticEnd0()
	b.do("type a wrong address", fill(`#net-interfaces [name="addresses"]`, "192.168.1.10/24\n192.168.1.300/24"))
	if msg := b.submitErr("#net-submit"); !strings.Contains(msg, "192.168.1.300") {
		t.Errorf("a wrong static address: %q", msg)
	}
	b.fieldHasError(`#net-interfaces [name="addresses"]`)
	b.check("network-bad-address")
	staticEnd0()
	b.submit("#net-submit", "network")
	b.do("see the trial", chromedp.WaitVisible(chromedp.CSS("#net-pending")))
	if c := b.text("#net-countdown"); !strings.Contains(c, "on trial") {
		t.Errorf("countdown %q", c)
	}
	if cur, ok := d.applier.Current(); !ok || cur.Interfaces[0].Mode != netconf.ModeStatic {
		t.Errorf("the trial is not applied: %+v", cur)
	}
	b.check("network-trial")
	b.waitNotice("the rollback", "The change was not confirmed")
	if cur, _ := d.applier.Current(); cur.Interfaces[0].Mode != netconf.ModeDHCP {
		t.Errorf("after the deadline the system runs %+v, want DHCP back", cur)
	}
	if checked := evalIn[string](b, `document.querySelector('#net-interfaces input[type=radio]:checked').value`); checked != "dhcp" {
		t.Errorf("the page shows %s after the rollback", checked)
	}
	// Again, confirmed this time: it stays.
	staticEnd0()
	b.submit("#net-submit", "network")
	b.do("confirm", chromedp.WaitVisible(chromedp.CSS("#net-confirm")), chromedp.Click(chromedp.CSS("#net-confirm")))
	b.waitNotice("confirm", "The new network settings are kept.")
	time.Sleep(netTrial + time.Second)
	if cur, _ := d.applier.Current(); cur.Interfaces[0].Mode != netconf.ModeStatic {
		t.Errorf("a confirmed change was rolled back: %+v", cur)
	}
	b.noSecurityMessages()
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestPortsAndCertificateInBrowser, over HTTPS as authd serves it: the
// admin moves HTTPS to another port, follows the page's link to the new
// port and keeps the ports there; then puts in a certificate of their own
// and goes back to the device's.
func TestPortsAndCertificateInBrowser(t *testing.T) {
	srv, _, _ := newAPI(t, clock.System{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	certs, err := tlscert.Open(filepath.Join(t.TempDir(), "tls"), tlscert.Names{Hostname: "rknas-test"}, clock.System{}, log)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := mailtest.NewCA("Owner's CA")
	if err != nil {
		t.Fatal(err)
	}
	ownCert, ownKey, err := ca.ServerCertPEM("rknas-test", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(ownCert)
	own, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	serve := func(ln net.Listener, secure bool) portconf.Server {
		hs := &http.Server{Handler: h, ErrorLog: stdlog.New(io.Discard, "", 0),
			TLSConfig: &tls.Config{GetCertificate: certs.GetCertificate, MinVersion: tls.VersionTLS12}}
		if secure {
			go hs.ServeTLS(ln, "", "")
		} else {
			go hs.Serve(ln)
		}
		return hs
	}
	ports, err := portconf.New(portconf.Options{Dir: t.TempDir(), Host: "127.0.0.1", ConfirmTimeout: time.Minute, Serve: serve, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ports.Close)
	srv.AttachSystem(&api.System{Version: "test-1", Started: time.Now(), Board: board.NoneProfile("test"), TLS: certs, Ports: ports})
	cur, _ := ports.Current()
	newPort := freeTCPPort(t)

	b := newTab(t, 3*time.Minute, chromedp.Flag("ignore-certificate-errors-spki-list", certs.Info().SPKI+","+tlscert.SPKIHash(own)))
	const adminPass = "admin correct horse"
	b.signInAsNewAdmin("https://127.0.0.1:"+itoa(cur.HTTPS), adminPass)
	b.open("system")
	if got := evalIn[string](b, `document.getElementById('ports-https').value + ',' + document.getElementById('ports-http').value`); got != itoa(cur.HTTPS)+",0" {
		t.Errorf("ports shown %q, want %d,0", got, cur.HTTPS)
	}
	b.do("type the new port", fill("#ports-https", itoa(newPort)))
	b.submit("#ports-submit", "stepup")
	b.stepUp(adminPass, "system")
	b.do("see the link", chromedp.WaitVisible(chromedp.CSS("#ports-link")))
	if href := evalIn[string](b, `document.getElementById('ports-link').href`); href != "https://127.0.0.1:"+itoa(newPort)+"/#system" {
		t.Fatalf("link to the new port %q", href)
	}
	b.check("system-ports-trial")
	b.do("follow the link", chromedp.Click(chromedp.CSS("#ports-link")), chromedp.WaitVisible(chromedp.CSS("#ports-confirm")))
	b.do("keep the ports", chromedp.Click(chromedp.CSS("#ports-confirm")))
	b.waitNotice("keep the ports", "The new ports are kept.")
	if now, pend := ports.Current(); now.HTTPS != newPort || pend != nil {
		t.Errorf("after keeping: ports %+v, pending %+v", now, pend)
	}

	// The owner's certificate, then back to the device's. One that does
	// not name the device is refused, with the reason under the field.
	wrongCert, wrongKey, err := ca.ServerCertPEM("localhost")
	if err != nil {
		t.Fatal(err)
	}
	b.do("paste a certificate for another name", chromedp.SetValue(chromedp.CSS("#cert-chain"), string(wrongCert)), chromedp.SetValue(chromedp.CSS("#cert-key"), string(wrongKey)))
	if msg := b.submitErr("#cert-submit"); !strings.Contains(msg, `hostname "rknas-test"`) {
		t.Errorf("a certificate for localhost: %q", msg)
	}
	b.fieldHasError("#cert-chain")
	b.do("paste the certificate", chromedp.SetValue(chromedp.CSS("#cert-chain"), string(ownCert)), chromedp.SetValue(chromedp.CSS("#cert-key"), string(ownKey)))
	b.submit("#cert-submit", "system")
	b.waitNotice("import", "Your certificate is in use.")
	if src, fp := b.text("#cert-source"), b.text("#cert-fp"); src != "You (imported)" || fp != tlscert.Fingerprint(own.Raw) {
		t.Errorf("after the import: made by %q, fingerprint %q, want %q", src, fp, tlscert.Fingerprint(own.Raw))
	}
	b.do("go back", chromedp.Click(chromedp.CSS("#cert-device")), chromedp.WaitVisible(chromedp.CSS("#cert-device-box .question")),
		chromedp.Click(chromedp.CSS("#cert-device-box button.danger")))
	b.waitNotice("back to the device certificate", "The device certificate is in use again.")
	if src := b.text("#cert-source"); src != "This device" || certs.Info().Source != "device" {
		t.Errorf("after going back: %q, store says %q", src, certs.Info().Source)
	}
	b.noSecurityMessages()
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// skewedClock is the real time moved by an offset: a device whose clock
// is wrong.
type skewedClock struct{ off time.Duration }

func (c skewedClock) Now() time.Time { return time.Now().Add(c.off) }

// TestWrongDeviceClockIsNamed: on a device whose clock is ten minutes
// ahead, the code the phone shows is refused, and the page says that the
// device's clock differs from this computer's, by how much, and where to
// fix it; a wrong code on a right clock says nothing about the clock (the
// owner's journey checks that).
func TestWrongDeviceClockIsNamed(t *testing.T) {
	url, _, _ := newServer(t, skewedClock{10 * time.Minute})
	b := newTab(t, 2*time.Minute)
	b.signInAsNewAdmin(url, "admin correct horse")
	b.submit("#acct-setup", "setup")
	b.do("type the password", fill("#setup-pass", "admin correct horse"))
	b.submit("#setup-submit", "wizard")
	b.submit("#wizard-next-1", "wizard")
	secret := strings.ReplaceAll(b.text("#enrol-secret"), " ", "")
	b.submit("#wizard-next-2", "wizard")
	b.do("type the phone's code", fill("#enrol-code", totpCode(t, secret, time.Now())))
	msg := b.submitErr("#enrol-submit")
	for _, want := range []string{"That code is not right.", "The device's clock reads", "10 minutes ahead", "Time page", "rescue console"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refused code on a clock 10 minutes ahead: %q lacks %q", msg, want)
		}
	}
	b.fieldHasError("#enrol-code")
	b.check("2fa-wizard-clock-wrong")
	b.noSecurityMessages()
}

// TestKeyboardAlone: the first sign-in, the forced password change and
// moving between pages, with key presses only.
func TestKeyboardAlone(t *testing.T) {
	url, _, _ := newServer(t, clock.System{})
	b := newTab(t, 2*time.Minute)
	const pass = "keyboard only horse"
	active := func() string {
		return evalIn[string](b, `(e => e.id || e.getAttribute('href') || e.tagName)(document.activeElement)`)
	}
	b.do("open the page", chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.CSS("#view-login")))
	if a := active(); a != "login-user" {
		t.Fatalf("the sign-in page starts with the focus on %q", a)
	}
	b.do("type the login", chromedp.KeyEvent("admin"), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(testDefaultPassword), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#view-password")))
	if a := active(); a != "password-current" {
		t.Fatalf("the password page starts with the focus on %q", a)
	}
	b.do("type the passwords", chromedp.KeyEvent(testDefaultPassword), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(pass), chromedp.KeyEvent(kb.Tab),
		chromedp.KeyEvent(pass), chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS("#view-account")))
	// The focus is on the page's heading; back to the navigation, and on
	// back to the skip link that leads past it.
	if a := active(); a != "H1" {
		t.Errorf("the account page starts with the focus on %q, want its heading", a)
	}
	var path []string
	for range 15 {
		b.do("shift-tab", chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)))
		path = append(path, active())
		if path[len(path)-1] == "#main" {
			break
		}
	}
	if want := "nav-signout,#system,#audit,#network,#time,#mail,#security,#policy,#groups,#users,#account,#main"; strings.Join(path, ",") != want {
		t.Errorf("Shift+Tab from the heading goes %q, want %q", strings.Join(path, ","), want)
	}
	b.do("tab to Users", chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Tab))
	if a := active(); a != "#users" {
		t.Fatalf("two Tabs from the skip link reach %q, want the Users link", a)
	}
	b.do("open Users", chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS("#view-users")))
	if a := active(); a != "H1" {
		t.Errorf("the users page starts with the focus on %q, want its heading", a)
	}
	// Tab on to the admin's Manage link and open it.
	for range 20 {
		if active() == "#user/admin" {
			break
		}
		b.do("tab", chromedp.KeyEvent(kb.Tab))
	}
	b.do("open the admin's page", chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS("#view-user")))
	if title := b.text("#user-title"); title != "User admin" {
		t.Errorf("the user page after Enter: %q", title)
	}
	b.noSecurityMessages()
}

// TestSessionsInBrowser: the admin, signed in on two browsers, signs one
// out from the other, which finds itself at the sign-in page at its next
// click; then ends a user's session from the user's page, and the user's
// browser is signed out too.
func TestSessionsInBrowser(t *testing.T) {
	url, _, _ := newServer(t, clock.System{})
	const pass = "admin correct horse"
	first := newTab(t, 2*time.Minute)
	first.signInAsNewAdmin(url, pass)
	second := newTab(t, 2*time.Minute)
	second.do("open the page", chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.CSS("#view-login")))
	second.do("type the login", fill("#login-user", "admin"), fill("#login-pass", pass))
	second.submit("#login-submit", "account")
	sessions := evalIn[[]string](second, `[...document.querySelectorAll('#sessions-list strong')].map(e => e.textContent)`)
	if len(sessions) != 2 || sessions[0] != "Chrome on Linux (this browser)" || sessions[1] != "Chrome on Linux" {
		t.Fatalf("sessions listed: %q", sessions)
	}
	second.check("account-two-sessions")
	second.do("sign the first browser out", chromedp.Click(chromedp.CSS(`#sessions-list li:nth-child(2) button`)))
	second.waitNotice("sign the first browser out", "Signed out: Chrome on Linux from 127.0.0.1.")
	if n := evalIn[int](second, `document.querySelectorAll('#sessions-list li').length`); n != 1 {
		t.Errorf("%d sessions listed after signing one out", n)
	}
	first.do("click Users", chromedp.Click(chromedp.CSS(`#nav a[href="#users"]`)), chromedp.WaitVisible(chromedp.CSS("#view-login")))
	if msg := first.alert(); msg != "You are signed out. Sign in again." {
		t.Errorf("the signed-out browser says %q", msg)
	}

	// A user, in the middle of the forced password change, signed out by
	// the admin.
	second.open("users")
	second.do("type the user", fill("#user-new-name", "bob"), fill("#user-new-pass", "bob-first-pw"))
	second.submit("#user-new-submit", "users")
	bob := newTab(t, 2*time.Minute)
	bob.do("open the page", chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.CSS("#view-login")))
	bob.do("type bob's login", fill("#login-user", "bob"), fill("#login-pass", "bob-first-pw"))
	bob.submit("#login-submit", "password")
	second.do("open bob's page", chromedp.Navigate(url+"/#user/bob"), chromedp.WaitVisible(chromedp.CSS("#user-sessions li")))
	if info := second.text("#user-sessions span"); !strings.Contains(info, "a new password or 2FA setup is due") {
		t.Errorf("bob's session on his page: %q", info)
	}
	second.check("user-sessions")
	second.do("sign bob out", chromedp.Click(chromedp.CSS("#user-sessions button")))
	second.waitNotice("sign bob out", "Signed out:")
	bob.do("type the passwords", fill("#password-current", "bob-first-pw"), fill("#password-new", "bob's own pass"), fill("#password-repeat", "bob's own pass"))
	if msg := bob.submitErr("#password-submit"); msg != "You are signed out. Sign in again." || evalIn[bool](bob, `document.getElementById('view-login').hidden`) {
		t.Errorf("bob's browser after the admin signed him out: %q", msg)
	}
	second.noSecurityMessages()
	bob.noSecurityMessages()
}

// TestAppPasswordInBrowser: the admin makes an app password on the account
// page, a program uses it, the page shows its use, and revoking it there
// (after a question) shuts the program out.
func TestAppPasswordInBrowser(t *testing.T) {
	url, _, _ := newServer(t, clock.System{})
	const pass = "admin correct horse"
	b := newTab(t, 2*time.Minute)
	b.signInAsNewAdmin(url, pass)
	b.do("name the program", fill("#app-name", "Home Assistant"), chromedp.Click(chromedp.CSS("#app-admin")), fill("#app-pass", "wrong password"))
	if msg := b.submitErr("#app-submit"); msg != "The password is not right." {
		t.Errorf("a wrong password for an app password: %q", msg)
	}
	b.fieldHasError("#app-pass")
	b.do("type the password", fill("#app-pass", pass))
	b.submit("#app-submit", "account")
	b.do("see the token", chromedp.WaitVisible(chromedp.CSS("#app-made")))
	token := b.text("#app-token")
	b.check("account-app-password")
	program := func() int {
		req, _ := http.NewRequest("GET", url+"/api/v1/users", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if st := program(); st != 200 {
		t.Fatalf("the program with the app password from the page: %d", st)
	}
	b.do("open the account page again", chromedp.Click(chromedp.CSS(`#nav a[href="#account"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('#apps-list span').textContent.includes('Last used')`))
	if info := b.text("#apps-list span"); !strings.HasPrefix(info, "May read and administer.") || !strings.Contains(info, "Last used") {
		t.Errorf("the app password listed: %q", info)
	}
	b.do("revoke", chromedp.Click(chromedp.CSS("#apps-list button.danger")), chromedp.WaitVisible(chromedp.CSS("#apps-list .question")),
		chromedp.Click(chromedp.CSS("#apps-list .confirm button.danger")))
	b.waitNotice("revoke", "Revoked: Home Assistant.")
	if st := program(); st != 401 {
		t.Errorf("the program after the revocation: %d", st)
	}
	b.noSecurityMessages()
}

// virtualAuthenticator gives the browser a passkey authenticator, as a
// laptop's fingerprint reader would be: resident keys, user verification
// that succeeds, presence without a touch.
func (b *tab) virtualAuthenticator() webauthn.AuthenticatorID {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		b.t.Fatalf("WebAuthn domain: %v", err)
	}
	res, err := chromedp.Call(b.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21, Transport: webauthn.AuthenticatorTransportInternal,
		HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true}})
	if err != nil {
		b.t.Fatalf("virtual authenticator: %v", err)
	}
	return res.AuthenticatorID
}

// passkeyCopy is what a copy of the authenticator's one passkey would
// hold: its key and its signature counter as of now.
func (b *tab) passkeyCopy(id webauthn.AuthenticatorID) webauthn.Credential {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil || len(res.Credentials) != 1 {
		b.t.Fatalf("the authenticator's passkeys: %v (%v)", res, err)
	}
	return *res.Credentials[0]
}

// putPasskey puts c in the authenticator in place of the passkey of its ID.
func (b *tab) putPasskey(id webauthn.AuthenticatorID, c webauthn.Credential) {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, webauthn.RemoveCredential, webauthn.RemoveCredentialParams{AuthenticatorID: id, CredentialID: c.CredentialID}); err != nil {
		b.t.Fatalf("remove the passkey: %v", err)
	}
	// Sent without the CMTG fields, which this authenticator refuses even
	// when empty.
	type credential struct {
		CredentialID         []byte  `json:"credentialId"`
		IsResidentCredential bool    `json:"isResidentCredential"`
		RpID                 string  `json:"rpId"`
		PrivateKey           []byte  `json:"privateKey"`
		UserHandle           []byte  `json:"userHandle,omitempty"`
		SignCount            float64 `json:"signCount"`
		UserName             string  `json:"userName,omitempty"`
		UserDisplayName      string  `json:"userDisplayName,omitempty"`
	}
	type params struct {
		AuthenticatorID webauthn.AuthenticatorID `json:"authenticatorId"`
		Credential      credential               `json:"credential"`
	}
	add := cdp.Command[params, cdp.Empty]{Method: webauthn.CommandAddCredential}
	if _, err := chromedp.Call(b.ctx, add, params{AuthenticatorID: id, Credential: credential{CredentialID: c.CredentialID, IsResidentCredential: c.IsResidentCredential,
		RpID: c.RpID, PrivateKey: c.PrivateKey, UserHandle: c.UserHandle, SignCount: c.SignCount, UserName: c.UserName, UserDisplayName: c.UserDisplayName}}); err != nil {
		b.t.Fatalf("put the passkey back: %v", err)
	}
}

type noNetwork struct{}

func (noNetwork) ResetToDefault(context.Context) error { return nil }

// TestPasskeysInBrowser, with Chromium's virtual authenticator: a passkey
// added on the account page, used as the second step, then alone once the
// policy and the owner allow it; renamed and removed; and a RESET at the
// device removes the admin's passkeys.
func TestPasskeysInBrowser(t *testing.T) {
	url, svc, _ := newServer(t, clock.System{})
	// A passkey needs a name: the device as the browser reaches it.
	url = strings.Replace(url, "127.0.0.1", "localhost", 1)
	b := newTab(t, 3*time.Minute)
	authenticator := b.virtualAuthenticator()
	const pass = "admin correct horse"
	b.signInAsNewAdmin(url, pass)
	if rp := b.text("#passkey-rp"); rp != "localhost" {
		t.Errorf("the passkey section names %q", rp)
	}
	b.do("name the passkey", fill("#passkey-name", "Test key"), fill("#passkey-pass", pass))
	b.submit("#passkey-submit", "account")
	b.waitNotice("add a passkey", "Passkey added: Test key.")
	if twofa := b.text("#acct-2fa"); twofa != "On (1 passkey)" {
		t.Errorf("2FA after the passkey: %q", twofa)
	}
	b.check("account-passkey")

	// The passkey is the second step.
	b.submit("#nav-signout", "login")
	b.do("type the login", fill("#login-user", "admin"), fill("#login-pass", pass))
	b.submit("#login-submit", "code")
	if !evalIn[bool](b, `document.getElementById('form-code').hidden && !document.getElementById('code-passkey-row').hidden`) {
		t.Error("the code step of a passkey-only account shows the code form, or no passkey button")
	}
	b.check("code-step-passkey")
	b.submit("#code-passkey", "account")

	// A copy of the passkey, taken now, answers with an older counter once
	// the passkey itself has been used again: refused, and logged.
	copied := b.passkeyCopy(authenticator)
	b.submit("#nav-signout", "login")
	b.do("type the login", fill("#login-user", "admin"), fill("#login-pass", pass))
	b.submit("#login-submit", "code")
	b.submit("#code-passkey", "account")
	if used := b.passkeyCopy(authenticator); used.SignCount <= copied.SignCount {
		t.Fatalf("the authenticator's counter went from %v to %v: it cannot show a copy", copied.SignCount, used.SignCount)
	}
	current := b.passkeyCopy(authenticator)
	b.putPasskey(authenticator, copied)
	b.submit("#nav-signout", "login")
	b.do("type the login", fill("#login-user", "admin"), fill("#login-pass", pass))
	b.submit("#login-submit", "code")
	if msg := b.submitErr("#code-passkey"); !strings.Contains(msg, "a copy of it may exist") {
		t.Errorf("a copied passkey's answer: %q", msg)
	}
	if entries, err := svc.AuditLogMatching(1, 0, store.AuditFilter{Event: "passkey_clone_suspected"}); err != nil || len(entries) != 1 || !strings.HasPrefix(entries[0].Detail, "Test key:") {
		t.Errorf("the copied passkey in the audit log: %+v (%v)", entries, err)
	}
	// The passkey itself still answers.
	b.putPasskey(authenticator, current)
	b.submit("#code-passkey", "account")

	// Alone: the policy allows it (after a step-up, by password: no app
	// code to give), then the owner turns it on.
	b.open("policy")
	b.do("allow passkey sign-in", chromedp.Click(chromedp.CSS("#policy-passkey")))
	b.submit("#policy-submit", "stepup")
	if !evalIn[bool](b, `document.getElementById('stepup-code-row').hidden`) {
		t.Error("the step-up asks for an app code the account does not have")
	}
	b.stepUp(pass, "policy")
	b.waitNotice("save the policy", "The policy is saved.")
	if entries, err := svc.AuditLogMatching(1, 0, store.AuditFilter{Event: "step_up"}); err != nil || len(entries) != 1 || entries[0].Detail != "password and passkey" {
		t.Errorf("the step-up of a passkey-only account: %+v (%v)", entries, err)
	}
	// The policy alone does not let the passkey in: the owner has not
	// chosen it yet.
	b.submit("#nav-signout", "login")
	b.do("see the passkey button", chromedp.WaitVisible(chromedp.CSS("#login-passkey")))
	if msg := b.submitErr("#login-passkey"); !strings.Contains(msg, "does not sign in here alone") {
		t.Errorf("a passkey alone before the owner chose it: %q", msg)
	}
	b.do("type the login", fill("#login-user", "admin"), fill("#login-pass", pass))
	b.submit("#login-submit", "code")
	b.submit("#code-passkey", "account")
	b.do("turn passkey sign-in on", chromedp.WaitVisible(chromedp.CSS("#form-passkey-signin")), chromedp.Click(chromedp.CSS("#passkey-signin")),
		fill("#passkey-signin-pass", pass))
	b.submit("#passkey-signin-submit", "account")
	b.waitNotice("turn passkey sign-in on", "A passkey alone now signs you in.")
	b.submit("#nav-signout", "login")
	b.do("see the passkey button", chromedp.WaitVisible(chromedp.CSS("#login-passkey")))
	b.check("sign-in-with-passkey")
	b.submit("#login-passkey", "account")
	if name := b.text("#acct-name"); name != "admin" {
		t.Errorf("signed in with the passkey alone as %q", name)
	}

	// Renamed, then removed with the password.
	b.do("rename", chromedp.Click(chromedp.CSS(`#passkeys-list button[aria-label^="Rename"]`)), fill(`#passkeys-list input`, "Laptop key"),
		chromedp.Click(chromedp.CSS(`#passkeys-list .confirm button`)))
	b.waitNotice("rename", "Renamed.")
	if got := b.text("#passkeys-list strong"); got != "Laptop key" {
		t.Errorf("after renaming: %q", got)
	}
	// Removing a second factor takes a step-up made with it (the password
	// and the passkey) first.
	b.do("remove", chromedp.Click(chromedp.CSS(`#passkeys-list button[aria-label^="Remove"]`)), fill(`#passkeys-list input[type=password]`, pass),
		chromedp.Click(chromedp.CSS(`#passkeys-list .confirm button.danger`)))
	b.stepUp(pass, "account")
	b.waitNotice("remove", "Removed: Laptop key.")
	if twofa := b.text("#acct-2fa"); twofa != "Off" {
		t.Errorf("2FA after removing the only passkey: %q", twofa)
	}

	// A RESET at the device removes the admin's passkeys.
	b.do("name another passkey", fill("#passkey-name", "Second key"), fill("#passkey-pass", pass))
	b.submit("#passkey-submit", "account")
	b.waitNotice("add a passkey", "Passkey added: Second key.")
	hasher, err := account.NewHasher(testParams, 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = recovery.Run(context.Background(), recovery.Deps{Store: svc.Store(), Hasher: hasher, DefaultPassword: testDefaultPassword, Network: noNetwork{},
		Live: svc, Clock: clock.System{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, "button")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := svc.User("admin"); err != nil || len(u.Passkeys) != 0 || u.PasskeySignIn {
		t.Errorf("after the RESET the admin has %d passkeys, passkey sign-in %v (%v)", len(u.Passkeys), u.PasskeySignIn, err)
	}
	b.noSecurityMessages()
}
