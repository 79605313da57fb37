package web

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/rknas/firmware/authd/api"
	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/tlscert"
)

const chromiumPath = "/usr/bin/chromium"

// screenshotCopy is where a copy of the enrolment page's screenshot is kept
// for people to look at.
const screenshotCopy = "/tmp/web-enrol.png"

// tab is one browser tab on the pages, driven as a person would: typing
// into fields and clicking buttons.
type tab struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	log []string // console exceptions and security messages
}

// newTab starts a headless Chromium with a fresh profile and opens a tab.
// The whole browser lives at most limit.
func newTab(t *testing.T, limit time.Duration, extra ...chromedp.ExecAllocatorOption) *tab {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser test needs Chromium at %s (%v): run scripts/deps.sh or apt-get install chromium", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(820, 1100),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	}
	opts = append(opts, extra...)
	deadline, cancelDeadline := context.WithTimeout(context.Background(), limit)
	actx, cancelAlloc := chromedp.NewExecAllocator(deadline, opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc(); cancelDeadline() })
	tb := &tab{t: t, ctx: ctx}
	// Start the browser and record what goes wrong in the page: uncaught
	// exceptions and anything the browser's security checks say (CSP,
	// Trusted Types).
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			s := m.String()
			if m.IsException() || m.Source == "security" || strings.Contains(s, "Content Security Policy") || strings.Contains(s, "Trusted Type") {
				tb.mu.Lock()
				tb.log = append(tb.log, s)
				tb.mu.Unlock()
			}
		}
	}()
	// The page itself also counts CSP violations, from before its first
	// script runs.
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.cspViolations = []; document.addEventListener('securitypolicyviolation', e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));`,
	})
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return tb
}

// do runs actions with a deadline of its own, so that a selector that
// never matches fails this step, named, instead of the whole test.
func (b *tab) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v (%s)", step, err, b.diag())
	}
}

func evalIn[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// shownError is a script that returns the error the page shows: under a
// field, above a form's button or at the top; "" when none.
const shownError = `(() => {
	for (const e of document.querySelectorAll('main > section:not([hidden]) .field-error')) if (e.offsetParent !== null) return e.textContent;
	const e = document.getElementById('error');
	return e.hidden ? '' : e.textContent;
})()`

// alert returns the error the page shows; "" when none.
func (b *tab) alert() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](shownError))
	return s
}

// diag is what a failing step reports: the error shown and the device's
// words of the last API error.
func (b *tab) diag() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`'shown: ' + `+shownError+` + '; last API error: ' + (document.documentElement.dataset.lastApiError || 'none')`))
	return s
}

// fill types text into an emptied field. (SetValue with "" reports a
// failure in chromedp v0.23.0, so the field is emptied by script.)
func fill(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).value = ''`, sel)),
		chromedp.SendKeys(chromedp.CSS(sel), text))
}

// clearAlert empties the error box, so that the next message to appear is
// the answer to the next action.
var clearAlert = chromedp.Evaluate[chromedp.Void](`(e => { e.textContent = ''; e.hidden = true; for (const f of document.querySelectorAll('.field-error')) f.remove() })(document.getElementById('error'))`)

// submit clicks button and waits for the view to show; an error shown on
// the page instead fails the test with that error.
func (b *tab) submit(button, view string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Steps(clearAlert, chromedp.Click(chromedp.CSS(button))))
	if err == nil {
		var got string
		got, err = chromedp.Run(ctx, chromedp.Poll[string](fmt.Sprintf(`(() => {
			const e = %s;
			if (e) return 'error: ' + e;
			return !document.getElementById('view-%s').hidden && document.querySelector('button[aria-busy]') === null && 'ok';
		})()`, shownError, view)))
		if err == nil && got != "ok" {
			err = errors.New(got)
		}
	}
	if err != nil {
		b.t.Fatalf("click %s, want the %s page: %v (%s)", button, view, err, b.diag())
	}
}

// submitErr clicks button and returns the error the page shows.
func (b *tab) submitErr(button string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Steps(clearAlert, chromedp.Click(chromedp.CSS(button))))
	var got string
	if err == nil {
		got, err = chromedp.Run(ctx, chromedp.Poll[string](`document.querySelector('button[aria-busy]') === null && `+shownError))
	}
	if err != nil {
		b.t.Fatalf("click %s, want an error on the page: %v", button, err)
	}
	return got
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	return evalIn[string](b, fmt.Sprintf(`document.querySelector(%q).textContent`, sel))
}

// totpCode is what an authenticator app shows at time at for secret.
func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatalf("TOTP from the secret on the page: %v", err)
	}
	return c
}

// waitForStepAfter waits until the 30-second TOTP step after step has
// begun (the server never accepts a code of a step it has seen used) and
// returns how long that took.
func waitForStepAfter(step int64) time.Duration {
	start := time.Now()
	for time.Now().Unix()/30 <= step {
		time.Sleep(time.Until(time.Unix((step+1)*30, 0)) + 10*time.Millisecond)
	}
	return time.Since(start)
}

// TestNewOwnerInBrowser walks a new owner through the pages in Chromium,
// with the real clock and codes computed from the secret shown on the page.
func TestNewOwnerInBrowser(t *testing.T) {
	started := time.Now()
	url, _, mailed := newServer(t, clock.System{})
	b := newTab(t, 3*time.Minute)
	const newPassword = "correct horse battery"
	// A browser name of 64 characters with no space to break at must not
	// make the page wider than a phone.
	const longDevice = "Test-browser-on-the-old-laptop-in-the-study-upstairs-by-windows"

	// First login with the default password: a new one is required, and
	// the page says the current one is the default from the label.
	b.do("open the page", chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.CSS("#view-login")))
	b.do("open the forgotten password note", chromedp.Click(chromedp.CSS("#forgot summary")))
	b.check("sign-in")
	if forgot := b.text("#forgot-reset"); !strings.Contains(forgot, "hold the RESET button on the back for 4 seconds") || !strings.Contains(forgot, "label") ||
		!strings.Contains(forgot, "rescue console on the serial port (1500000 baud)") {
		t.Errorf("the forgotten password note: %q", forgot)
	}
	if name := b.text("#device-name"); name != "TestNAS" {
		t.Errorf("the page names the device %q, want TestNAS", name)
	}
	b.do("type the default login", fill("#login-user", "admin"), fill("#login-pass", testDefaultPassword))
	b.submit("#login-submit", "password")
	if l := b.text("#password-current-label"); !strings.Contains(l, "default") || !strings.Contains(l, "label") {
		t.Errorf("forced change: current password label %q", l)
	}
	if u := evalIn[string](b, `document.getElementById('password-user').value`); u != "admin" {
		t.Errorf("the username for password managers is %q", u)
	}
	b.do("type mismatched passwords", fill("#password-current", testDefaultPassword), fill("#password-new", newPassword), fill("#password-repeat", newPassword+"x"))
	if msg := b.submitErr("#password-submit"); msg != "The two new passwords are not the same." {
		t.Errorf("mismatched new passwords: %q", msg)
	}
	b.fieldHasError("#password-repeat")
	b.check("password-forced-error")
	b.do("type the new password", fill("#password-new", newPassword), fill("#password-repeat", newPassword))
	b.submit("#password-submit", "account")
	if name, twofa := b.text("#acct-name"), b.text("#acct-2fa"); name != "admin" || twofa != "Off" {
		t.Errorf("account page: name %q, 2FA %q", name, twofa)
	}

	// Enrol through the wizard: the QR code is a PNG data: URL that the
	// browser shows, and the account and key are there to type.
	// From the account page the password is asked again.
	b.submit("#acct-setup", "setup")
	b.do("type the password", fill("#setup-pass", newPassword))
	b.submit("#setup-submit", "wizard")
	b.check("2fa-wizard-1-app")
	b.submit("#wizard-next-1", "wizard")
	b.do("wait for the QR image", chromedp.Poll[chromedp.Void](`(i => i.complete && i.naturalWidth > 0 && i.offsetParent !== null)(document.getElementById('enrol-qr'))`))
	src := evalIn[string](b, `document.getElementById('enrol-qr').src`)
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(src, "data:image/png;base64,"))
	if !strings.HasPrefix(src, "data:image/png;base64,") || err != nil {
		t.Fatalf("QR image src %.40q...: %v", src, err)
	}
	if img, err := png.Decode(bytes.NewReader(raw)); err != nil || img.Bounds().Dx() < 45 {
		t.Fatalf("QR image is not a usable PNG: %v", err)
	}
	if acct := b.text("#enrol-account"); acct != "TestNAS:admin" {
		t.Errorf("account label on the page %q, want TestNAS:admin", acct)
	}
	grouped := b.text("#enrol-secret")
	secret := strings.ReplaceAll(grouped, " ", "")
	if !regexp.MustCompile(`^[A-Z2-7]{16,}$`).MatchString(secret) || !strings.Contains(grouped, " ") {
		t.Fatalf("secret on the page %q: want base32 in groups", grouped)
	}
	shot, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shotPath := filepath.Join(t.TempDir(), "enrol.png")
	for _, p := range []string{shotPath, screenshotCopy} {
		if err := os.WriteFile(p, shot, 0o644); err != nil {
			t.Errorf("save the screenshot: %v", err)
		}
	}
	// The QR code as the screen shows it scans to the same secret.
	if _, err := exec.LookPath("zbarimg"); err != nil {
		t.Fatalf("zbarimg is needed to read the QR code on screen: run scripts/deps.sh or apt-get install zbar-tools")
	}
	scanned, err := exec.Command("zbarimg", "--quiet", "--raw", shotPath).Output()
	if err != nil || !strings.HasPrefix(string(scanned), "otpauth://totp/TestNAS:admin?") || !strings.Contains(string(scanned), "secret="+secret) {
		t.Errorf("QR code on screen reads %q (%v), want an otpauth URI with the secret shown", scanned, err)
	}
	b.check("2fa-wizard-2-scan")
	b.submit("#wizard-next-2", "wizard")
	if tm := b.text("#enrol-time"); !strings.Contains(tm, "UTC") {
		t.Errorf("the code step shows no device time: %q", tm)
	}
	// A wrong code is named as wrong, under the field, with the focus on
	// it; the clock is not blamed while it agrees with the browser's.
	b.do("type a wrong code", fill("#enrol-code", "000000"))
	if msg := b.submitErr("#enrol-submit"); !strings.HasPrefix(msg, "That code is not right.") || strings.Contains(msg, "clock") {
		t.Errorf("a wrong enrolment code: %q", msg)
	}
	b.fieldHasError("#enrol-code")
	b.check("2fa-wizard-3-wrong-code")
	// A code near the end of its step would leave little time for the
	// reuse check below: start at a fresh step then.
	var waited time.Duration
	if time.Now().Unix()%30 > 25 {
		waited += waitForStepAfter(time.Now().Unix() / 30)
	}
	enrolAt := time.Now()
	code := totpCode(t, secret, enrolAt)
	b.do("type the code", fill("#enrol-code", code))
	b.submit("#enrol-submit", "wizard")
	b.do("wait for the recovery codes", chromedp.WaitVisible(chromedp.CSS("#codes-list li")))
	codes := evalIn[[]string](b, `[...document.querySelectorAll('#codes-list li')].map(li => li.textContent)`)
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown: %q", len(codes), codes)
	}
	for _, c := range codes {
		if !regexp.MustCompile(`^[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}$`).MatchString(c) {
			t.Errorf("recovery code %q", c)
		}
	}
	b.check("2fa-wizard-4-recovery-codes")
	// Then the offer of a security email, which can be skipped.
	b.submit("#codes-done", "wizard")
	b.do("see the email offer", chromedp.WaitVisible(chromedp.CSS("#form-wizard-email")))
	b.check("2fa-wizard-5-email")
	b.submit("#wizard-skip-email", "account")
	if twofa, left := b.text("#acct-2fa"), b.text("#acct-left"); twofa != "On (app)" || left != "10" {
		t.Errorf("after enrolment: 2FA %q, recovery codes left %q", twofa, left)
	}
	b.submit("#nav-signout", "login")

	// Log in again: a code is asked for. Without a security email there
	// is no email link.
	b.do("type the login", fill("#login-user", "admin"), fill("#login-pass", newPassword))
	b.submit("#login-submit", "code")
	if !evalIn[bool](b, `document.getElementById('code-email-row').hidden`) {
		t.Error("the email link shows although the account has no security email")
	}
	b.submit("#code-cancel", "login")
	b.do("type the login", fill("#login-user", "admin"), fill("#login-pass", newPassword))
	b.submit("#login-submit", "code")
	b.do("type a recovery code", chromedp.Click(chromedp.CSS("#code-recovery")), fill("#code-input", codes[9]))
	b.submit("#code-submit", "account")

	// The security email, set up on the account page with the code mailed
	// to it, after a step-up with the second factor (a recovery code here).
	b.do("type the security email", fill("#email-address", "owner@example.com"), fill("#email-pass", newPassword))
	b.submit("#email-submit", "stepup")
	b.stepUpWithCode(newPassword, codes[8], "account")
	b.do("type the mailed code", chromedp.WaitVisible(chromedp.CSS("#email-code")), fill("#email-code", mailed.last()))
	b.submit("#email-code-submit", "account")
	if e := b.text("#acct-email"); e != "owner@example.com" {
		t.Errorf("security email on the account page: %q", e)
	}
	b.submit("#nav-signout", "login")

	// Now the code step offers the email link, and it mails a code.
	b.do("type the login", fill("#login-user", "admin"), fill("#login-pass", newPassword))
	b.submit("#login-submit", "code")
	b.do("click the email link", chromedp.WaitVisible(chromedp.CSS("#code-email")), chromedp.Click(chromedp.CSS("#code-email")),
		chromedp.Poll[chromedp.Void](`(e => !e.hidden && e.textContent)(document.getElementById('notice'))`))
	if notice := b.text("#notice"); !strings.HasPrefix(notice, "A code was sent to o***@example.com.") || len(mailed.last()) != 8 {
		t.Errorf("after the email link: notice %q, mailed code %q", notice, mailed.last())
	}
	b.do("back to the app's code", chromedp.Click(chromedp.CSS("#code-recovery")), fill("#code-input", code))
	if msg := b.submitErr("#code-submit"); !strings.Contains(msg, "just used") {
		t.Errorf("the enrolment code again: %q, want the page's already-used sentence", msg)
	}
	b.check("code-step-error")
	waited += waitForStepAfter(enrolAt.Unix() / 30)
	b.do("type a fresh code and trust the device", fill("#code-input", totpCode(t, secret, time.Now())),
		chromedp.Click(chromedp.CSS("#code-trust")), fill("#code-device", longDevice))
	b.submit("#code-submit", "account")
	devices := evalIn[[]string](b, `[...document.querySelectorAll('#devices-list strong')].map(e => e.textContent)`)
	if len(devices) != 1 || devices[0] != longDevice+" (this browser)" {
		t.Errorf("trusted devices: %q", devices)
	}
	b.check("account")
	// Opened by address, the page offers no passkey that could not work,
	// and says which name to use.
	if note := b.text("#passkey-by-address"); !strings.Contains(note, "open it by the device's name") ||
		!evalIn[bool](b, `document.getElementById('form-passkey').hidden`) {
		t.Errorf("passkeys on a page opened by address: %q, form hidden %v", note, evalIn[bool](b, `document.getElementById('form-passkey').hidden`))
	}
	b.submit("#nav-signout", "login")

	// The trusted device skips the code step.
	b.do("type the login", fill("#login-user", "admin"), fill("#login-pass", newPassword))
	b.submit("#login-submit", "account")

	// The account page's other tools: new recovery codes (after a step-up
	// with the second factor, and the password), removing the device, and turning 2FA off with one of the
	// new recovery codes.
	b.submit("#acct-codes", "regen")
	b.do("type the password", fill("#regen-pass", newPassword))
	b.submit("#regen-submit", "stepup")
	b.stepUpWithCode(newPassword, codes[7], "codes")
	fresh := evalIn[[]string](b, `[...document.querySelectorAll('#regen-list li')].map(li => li.textContent)`)
	if len(fresh) != 10 || fresh[0] == codes[0] {
		t.Fatalf("new recovery codes %q (old first %q)", fresh, codes[0])
	}
	b.submit("#regen-done", "account")
	b.do("remove the device", chromedp.Click(chromedp.CSS("#devices-list button")), chromedp.WaitVisible(chromedp.CSS("#devices-none")))
	if n := b.text("#notice"); !strings.HasPrefix(n, "Removed: "+longDevice+".") {
		t.Errorf("after removing: notice %q", n)
	}
	b.submit("#acct-disable", "disable")
	b.do("type the password and a recovery code", fill("#disable-pass", newPassword), fill("#disable-code", fresh[0]))
	b.submit("#disable-submit", "account")
	if twofa := b.text("#acct-2fa"); twofa != "Off" || !evalIn[bool](b, `document.getElementById('acct-devices').hidden`) {
		t.Errorf("after turning 2FA off: 2FA %q, devices shown: %v", twofa, !evalIn[bool](b, `document.getElementById('acct-devices').hidden`))
	}

	// Guessing gets the client locked out, and the page says for how long,
	// even to the right password; before that it warns.
	b.submit("#nav-signout", "login")
	locked := regexp.MustCompile(`^Too many wrong attempts from this address: it is blocked for \d+ (seconds|minutes)\.$`)
	for i := range 5 {
		b.do("type a wrong password", fill("#login-user", "admin"), fill("#login-pass", fmt.Sprintf("wrong-%d", i)))
		msg := b.submitErr("#login-submit")
		switch {
		case i < 2 && msg != "The username or password is not right.":
			t.Errorf("wrong password %d: %q", i+1, msg)
		// The wrong enrolment code above counted too, so the fifth
		// failure may come one login early.
		case i >= 2 && !strings.Contains(msg, "this address is blocked for 5 minutes") && !locked.MatchString(msg):
			t.Errorf("wrong password %d gives neither a warning nor the lockout: %q", i+1, msg)
		}
	}
	b.do("type the right password", fill("#login-user", "admin"), fill("#login-pass", newPassword))
	if msg := b.submitErr("#login-submit"); !locked.MatchString(msg) {
		t.Errorf("after 5 wrong passwords: %q, want the lockout message", msg)
	}
	if evalIn[bool](b, `document.getElementById('view-login').hidden`) {
		t.Error("the login form is gone after the lockout")
	}
	b.fieldHasError("#login-pass")
	b.check("sign-in-locked")

	b.noSecurityMessages()
	t.Logf("browser journey took %v, of which %v waiting for a fresh TOTP step", time.Since(started).Round(time.Millisecond), waited.Round(time.Millisecond))
}

// fieldHasError checks that the field is marked invalid, described by its
// message, and holds the focus.
func (b *tab) fieldHasError(sel string) {
	b.t.Helper()
	got := evalIn[string](b, fmt.Sprintf(`(i => [i.getAttribute('aria-invalid'), (i.getAttribute('aria-describedby') || '').split(' ').includes(i.id + '-error'),
		document.getElementById(i.id + '-error') !== null, document.activeElement === i].join(','))(document.querySelector(%q))`, sel))
	if got != "true,true,true,true" {
		b.t.Errorf("field %s after an error: aria-invalid, described by its message, message present, focused = %s", sel, got)
	}
}

// TestPagesOverHTTPS: Chromium, told to accept the device certificate by
// its public key hash (as an owner accepts it after comparing the
// fingerprint), loads the pages over HTTPS under the strict CSP, signs in,
// and holds the session cookie as Secure, HttpOnly and SameSite=Strict.
func TestPagesOverHTTPS(t *testing.T) {
	srv, _, _ := newAPI(t, clock.System{})
	certs, err := tlscert.Open(filepath.Join(t.TempDir(), "tls"), tlscert.Names{Hostname: "rknas-test"}, clock.System{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler(), TLSConfig: &tls.Config{GetCertificate: certs.GetCertificate, MinVersion: tls.VersionTLS12},
		ErrorLog: log.New(io.Discard, "", 0)}
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })
	url := "https://" + ln.Addr().String()

	b := newTab(t, 2*time.Minute, chromedp.Flag("ignore-certificate-errors-spki-list", certs.Info().SPKI))
	b.do("open the page over HTTPS", chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.CSS("#view-login")))
	b.do("type the default login", fill("#login-user", "admin"), fill("#login-pass", testDefaultPassword))
	b.submit("#login-submit", "password")
	if proto := evalIn[string](b, `location.protocol`); proto != "https:" {
		t.Fatalf("page protocol %q", proto)
	}
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url + "/api/v1/"}})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, c := range res.Cookies {
		if c.Name == api.SecureSessionCookie {
			found = true
			if !c.Secure || !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict {
				t.Errorf("session cookie in Chromium: Secure=%v HttpOnly=%v SameSite=%v", c.Secure, c.HTTPOnly, c.SameSite)
			}
		}
	}
	if !found {
		t.Fatalf("Chromium holds no session cookie after the login: %+v", res.Cookies)
	}
	b.noSecurityMessages()
}

// noSecurityMessages fails the test for every CSP violation and every
// exception or security message the browser reported.
func (b *tab) noSecurityMessages() {
	b.t.Helper()
	if v := evalIn[[]string](b, `window.cspViolations`); len(v) > 0 {
		b.t.Errorf("CSP violations: %q", v)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.log {
		b.t.Errorf("browser console: %s", m)
	}
}
