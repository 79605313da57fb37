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
	"net/netip"
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
	"github.com/rknas/firmware/authd/auth"
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
		b.t.Fatalf("%s: %v (alert: %q)", step, err, b.alert())
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

// alert returns the error the page shows; "" when none.
func (b *tab) alert() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(e => e.hidden ? '' : e.textContent)(document.getElementById('error'))`))
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
var clearAlert = chromedp.Evaluate[chromedp.Void](`(e => { e.textContent = ''; e.hidden = true })(document.getElementById('error'))`)

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
			const e = document.getElementById('error');
			if (!e.hidden && e.textContent) return 'error: ' + e.textContent;
			return !document.getElementById('view-%s').hidden && document.querySelector('button:disabled') === null && 'ok';
		})()`, view)))
		if err == nil && got != "ok" {
			err = errors.New(got)
		}
	}
	if err != nil {
		b.t.Fatalf("click %s, want the %s page: %v", button, view, err)
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
		got, err = chromedp.Run(ctx, chromedp.Poll[string](`(e => !e.hidden && e.textContent)(document.getElementById('error'))`))
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
	url, svc, mailed := newServer(t, clock.System{})
	b := newTab(t, 3*time.Minute)
	const newPassword = "correct horse battery"

	// First login with the default password: a new one is required.
	b.do("open the page", chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.CSS("#view-login")))
	b.do("type the default login", fill("#login-user", "admin"), fill("#login-pass", testDefaultPassword))
	b.submit("#login-submit", "password")
	b.do("type mismatched passwords", fill("#password-current", testDefaultPassword), fill("#password-new", newPassword), fill("#password-repeat", newPassword+"x"))
	if msg := b.submitErr("#password-submit"); msg != "The new passwords do not match." {
		t.Errorf("mismatched new passwords: %q", msg)
	}
	b.do("type the new password", fill("#password-new", newPassword), fill("#password-repeat", newPassword))
	b.submit("#password-submit", "account")
	if name, twofa := b.text("#acct-name"), b.text("#acct-2fa"); name != "admin" || twofa != "off" {
		t.Errorf("account page: name %q, 2FA %q", name, twofa)
	}

	// Enrol: the QR code is a PNG data: URL that the browser shows, and
	// the secret is there to type.
	// From the account page the password is asked again.
	b.submit("#acct-setup", "setup")
	b.do("type the password", fill("#setup-pass", newPassword))
	b.submit("#setup-submit", "enrol")
	b.do("wait for the QR image", chromedp.Poll[chromedp.Void](`(i => i.complete && i.naturalWidth > 0)(document.getElementById('enrol-qr'))`))
	src := evalIn[string](b, `document.getElementById('enrol-qr').src`)
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(src, "data:image/png;base64,"))
	if !strings.HasPrefix(src, "data:image/png;base64,") || err != nil {
		t.Fatalf("QR image src %.40q...: %v", src, err)
	}
	if img, err := png.Decode(bytes.NewReader(raw)); err != nil || img.Bounds().Dx() < 45 {
		t.Fatalf("QR image is not a usable PNG: %v", err)
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
	// A code near the end of its step would leave little time for the
	// reuse check below: start at a fresh step then.
	var waited time.Duration
	if time.Now().Unix()%30 > 25 {
		waited += waitForStepAfter(time.Now().Unix() / 30)
	}
	enrolAt := time.Now()
	code := totpCode(t, secret, enrolAt)
	b.do("type the code", fill("#enrol-code", code))
	b.submit("#enrol-submit", "codes")
	codes := evalIn[[]string](b, `[...document.querySelectorAll('#codes-list li')].map(li => li.textContent)`)
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown: %q", len(codes), codes)
	}
	for _, c := range codes {
		if !regexp.MustCompile(`^[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}$`).MatchString(c) {
			t.Errorf("recovery code %q", c)
		}
	}
	b.submit("#codes-done", "account")
	if twofa, left := b.text("#acct-2fa"), b.text("#acct-left"); twofa != "on" || left != "10" {
		t.Errorf("after enrolment: 2FA %q, recovery codes left %q", twofa, left)
	}
	b.submit("#acct-logout", "login")

	// Log in again: a code is asked for. Without a security email there
	// is no email link.
	b.do("type the login", fill("#login-user", "admin"), fill("#login-pass", newPassword))
	b.submit("#login-submit", "code")
	if !evalIn[bool](b, `document.getElementById('code-email-row').hidden`) {
		t.Error("the email link shows although the account has no security email")
	}
	// With a verified security email (set up here through the service; its
	// pages are not part of this set), the link mails a code.
	client := auth.Client{Addr: netip.MustParseAddr("127.0.0.1")}
	if _, err := svc.SetSecurityEmail(context.Background(), "admin", newPassword, "owner@example.com", client); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.VerifySecurityEmail("admin", mailed.last(), client); err != nil {
		t.Fatal(err)
	}
	b.submit("#code-cancel", "login")
	b.do("type the login", fill("#login-user", "admin"), fill("#login-pass", newPassword))
	b.submit("#login-submit", "code")
	b.do("click the email link", chromedp.WaitVisible(chromedp.CSS("#code-email")), chromedp.Click(chromedp.CSS("#code-email")),
		chromedp.Poll[chromedp.Void](`(e => !e.hidden && e.textContent)(document.getElementById('notice'))`))
	if notice := b.text("#notice"); !strings.HasPrefix(notice, "A code was sent to o***@example.com.") || len(mailed.last()) != 8 {
		t.Errorf("after the email link: notice %q, mailed code %q", notice, mailed.last())
	}
	b.do("type the used code", fill("#code-input", code))
	if msg := b.submitErr("#code-submit"); !strings.Contains(msg, "already used") {
		t.Errorf("the enrolment code again: %q, want the API's already-used message", msg)
	}
	waited += waitForStepAfter(enrolAt.Unix() / 30)
	b.do("type a fresh code and trust the device", fill("#code-input", totpCode(t, secret, time.Now())),
		chromedp.Click(chromedp.CSS("#code-trust")), fill("#code-device", "Test browser"))
	b.submit("#code-submit", "account")
	devices := evalIn[[]string](b, `[...document.querySelectorAll('#devices-list strong')].map(e => e.textContent)`)
	if len(devices) != 1 || devices[0] != "Test browser (this device)" {
		t.Errorf("trusted devices: %q", devices)
	}
	b.submit("#acct-logout", "login")

	// The trusted device skips the code step.
	b.do("type the login", fill("#login-user", "admin"), fill("#login-pass", newPassword))
	b.submit("#login-submit", "account")

	// The account page's other tools: new recovery codes (the password is
	// asked for), revoking the device, and turning 2FA off with one of the
	// new recovery codes.
	b.submit("#acct-codes", "regen")
	b.do("type the password", fill("#regen-pass", newPassword))
	b.submit("#regen-submit", "codes")
	fresh := evalIn[[]string](b, `[...document.querySelectorAll('#codes-list li')].map(li => li.textContent)`)
	if len(fresh) != 10 || fresh[0] == codes[0] {
		t.Fatalf("new recovery codes %q (old first %q)", fresh, codes[0])
	}
	b.submit("#codes-done", "account")
	b.do("revoke the device", chromedp.Click(chromedp.CSS("#devices-list button")), chromedp.WaitVisible(chromedp.CSS("#devices-none")))
	if n := b.text("#notice"); n != "Device revoked: Test browser" {
		t.Errorf("after revoking: notice %q", n)
	}
	b.submit("#acct-disable", "disable")
	b.do("type the password and a recovery code", fill("#disable-pass", newPassword), fill("#disable-code", fresh[0]))
	b.submit("#disable-submit", "account")
	if twofa := b.text("#acct-2fa"); twofa != "off" || !evalIn[bool](b, `document.getElementById('acct-devices').hidden`) {
		t.Errorf("after turning 2FA off: 2FA %q, devices shown: %v", twofa, !evalIn[bool](b, `document.getElementById('acct-devices').hidden`))
	}

	// Guessing gets the client locked out, and the page says for how long,
	// even to the right password.
	b.submit("#acct-logout", "login")
	locked := regexp.MustCompile(`^too many failed attempts from this address: it is blocked for \d+ (seconds|minutes)$`)
	for i := range 5 {
		b.do("type a wrong password", fill("#login-user", "admin"), fill("#login-pass", fmt.Sprintf("wrong-%d", i)))
		msg := b.submitErr("#login-submit")
		if msg != "wrong username or password" && (i == 0 || !locked.MatchString(msg)) {
			t.Errorf("wrong password %d: %q", i+1, msg)
		}
	}
	b.do("type the right password", fill("#login-user", "admin"), fill("#login-pass", newPassword))
	if msg := b.submitErr("#login-submit"); !locked.MatchString(msg) {
		t.Errorf("after 5 wrong passwords: %q, want the lockout message", msg)
	}
	if evalIn[bool](b, `document.getElementById('view-login').hidden`) {
		t.Error("the login form is gone after the lockout")
	}

	b.noSecurityMessages()
	t.Logf("browser journey took %v, of which %v waiting for a fresh TOTP step", time.Since(started).Round(time.Millisecond), waited.Round(time.Millisecond))
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
		if c.Name == api.SessionCookie {
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
