package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/api"
	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/button"
	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/mail"
	"github.com/rknas/firmware/authd/store"
	"github.com/rknas/firmware/board"
)

const testDefaultPassword = "Dflt-Pass-1234"

// testParams keep argon2id cheap; the parameters are tested in package
// account.
var testParams = account.Params{Time: 1, MemKiB: 8 * 1024, Threads: 1, KeyLen: 32, SaltLen: 16}

// codeMailer stands in for the SMTP server: it keeps the codes the service
// mails. (Real delivery is tested in authd/mail and authd/api.)
type codeMailer struct {
	mu    sync.Mutex
	codes []string
}

func (m *codeMailer) SendVerificationCode(_ context.Context, _, _, code string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.codes = append(m.codes, code)
	return nil
}

func (m *codeMailer) SendEmergencyCode(_ context.Context, _, _, code string, _ time.Time, _ string, _ time.Duration) error {
	return m.SendVerificationCode(context.Background(), "", "", code)
}

func (m *codeMailer) last() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.codes) == 0 {
		return ""
	}
	return m.codes[len(m.codes)-1]
}

// newServer serves the API with the pages attached, as authd does, on a
// loopback port for the test's lifetime. Mailed codes go to the returned
// codeMailer.
func newServer(t testing.TB, c clock.Clock) (string, *auth.Service, *codeMailer) {
	t.Helper()
	srv, svc, codes := newAPI(t, c)
	// A board with a watched RESET button and a serial console, which the
	// sign-in page tells about.
	prof := board.NoneProfile("test")
	prof.UART = board.UART{Device: "ttyS2", Baud: 1500000}
	srv.AttachSystem(&api.System{Version: "test", Started: time.Now(), Board: prof,
		Button: func() button.Status { return button.Status{Source: "gpio", Available: true} }})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL, svc, codes
}

// newAPI is the API with the pages attached, not yet served.
func newAPI(t testing.TB, c clock.Clock) (*api.Server, *auth.Service, *codeMailer) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	hasher, err := account.NewHasher(testParams, 4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg := auth.DefaultConfig()
	cfg.DefaultPassword = testDefaultPassword
	cfg.DeviceName = "TestNAS"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := auth.New(context.Background(), cfg, auth.Deps{Store: db, Clock: c, Hasher: hasher, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(svc, log, cfg.TrustedDeviceTTL)
	mailer, err := mail.New(mail.Config{StateDir: t.TempDir(), DeviceName: cfg.DeviceName, Clock: c, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv.AttachMail(mailer)
	codes := &codeMailer{}
	svc.SetCodeMailer(codes)
	Attach(srv)
	return srv, svc, codes
}

// requiredCSP are the directives the pages must be served with.
var requiredCSP = []string{
	"default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
	"form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'",
}

func get(t *testing.T, h http.Handler, method, path string, hdr ...string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

// TestHandlerServesGzipToBrowsersThatTakeIt: the same bytes, compressed,
// with their own ETag, and plain to clients that do not ask for gzip or
// refuse it.
func TestHandlerServesGzipToBrowsersThatTakeIt(t *testing.T) {
	h := Handler()
	want, _ := static.ReadFile("static/app.js")
	plainTag := get(t, h, "GET", "/app.js").Header.Get("ETag")
	for _, tc := range []struct {
		accept string
		gz     bool
	}{{"gzip, deflate, br", true}, {"br;q=1.0, gzip;q=0.8", true}, {"", false}, {"deflate", false}, {"gzip;q=0", false}, {"identity", false}} {
		res := get(t, h, "GET", "/app.js", "Accept-Encoding", tc.accept)
		raw, _ := io.ReadAll(res.Body)
		body := raw
		if tc.gz {
			zr, err := gzip.NewReader(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("Accept-Encoding %q: not gzip: %v", tc.accept, err)
			}
			body, _ = io.ReadAll(zr)
			if len(raw)*2 > len(want) {
				t.Errorf("gzip %d bytes of %d", len(raw), len(want))
			}
		}
		if got := res.Header.Get("Content-Encoding") == "gzip"; got != tc.gz || !bytes.Equal(body, want) || res.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q: gzip %v, same bytes %v, Vary %q", tc.accept, got, bytes.Equal(body, want), res.Header.Get("Vary"))
		}
		if tag := res.Header.Get("ETag"); (tag == plainTag) == tc.gz {
			t.Errorf("Accept-Encoding %q: ETag %q (plain %q)", tc.accept, tag, plainTag)
		}
	}
}

func TestHandlerServesPagesWithCSP(t *testing.T) {
	for _, d := range strings.Split(CSP, ";") {
		if strings.TrimSpace(d) == "" {
			t.Errorf("CSP %q has an empty directive", CSP)
		}
	}
	for _, want := range requiredCSP {
		if !slices.Contains(strings.Split(CSP, "; "), want) {
			t.Errorf("CSP %q lacks %q", CSP, want)
		}
	}
	h := Handler()
	for _, tc := range []struct{ path, file, ctype string }{
		{"/", "index.html", "text/html; charset=utf-8"},
		{"/index.html", "index.html", "text/html; charset=utf-8"},
		{"/app.js", "app.js", "text/javascript; charset=utf-8"},
		{"/style.css", "style.css", "text/css; charset=utf-8"},
	} {
		for _, method := range []string{"GET", "HEAD"} {
			res := get(t, h, method, tc.path)
			body, _ := io.ReadAll(res.Body)
			want, _ := static.ReadFile("static/" + tc.file)
			if method == "HEAD" {
				want = nil
			}
			if res.StatusCode != 200 || string(body) != string(want) {
				t.Errorf("%s %s: %d, %d bytes; want 200 and static/%s", method, tc.path, res.StatusCode, len(body), tc.file)
			}
			for k, v := range map[string]string{
				"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Content-Type": tc.ctype,
				"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache",
			} {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s %s: %s %q, want %q", method, tc.path, k, got, v)
				}
			}
		}
		// The ETag lets a browser revalidate without the body.
		etag := get(t, h, "GET", tc.path).Header.Get("ETag")
		if res := get(t, h, "GET", tc.path, "If-None-Match", etag); etag == "" || res.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %q: %d, want 304", tc.path, etag, res.StatusCode)
		}
	}
}

func TestHandlerServesOnlyKnownFiles(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/static/", "/static/app.js", "/static", "/web.go", "/app.js/", "/index.htm", "/APP.JS",
		"/favicon.ico", "/..%2fweb.go", "/static/../app.js.map", "/api/v1/me", "/healthz", "/.git/config"} {
		res := get(t, h, "GET", p)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, res.StatusCode)
		}
		if strings.Contains(string(body), "app.js") || strings.Contains(string(body), "<a href") {
			t.Errorf("GET %s: the 404 body lists files: %q", p, body)
		}
		if res.Header.Get("Content-Security-Policy") != CSP || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: the 404 lacks the security headers: %v", p, res.Header)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS"} {
		res := get(t, h, m, "/")
		if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /: %d Allow %q, want 405 with Allow: GET, HEAD", m, res.StatusCode, res.Header.Get("Allow"))
		}
	}
	// Every embedded file is served, so none sits unused in the binary.
	served := map[string]bool{}
	for _, f := range files {
		served[f.name] = true
	}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !served[strings.TrimPrefix(p, "static/")] {
			t.Errorf("%s is embedded but not served", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAttachKeepsTheAPIRoutes checks the pages on the real API server: they
// get the API's security headers too, and /api/, /healthz and unknown paths
// answer as before.
func TestAttachKeepsTheAPIRoutes(t *testing.T) {
	url, _, _ := newServer(t, clock.System{})
	for _, tc := range []struct {
		method, path string
		status       int
		ctype        string
		csp          bool
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", true},
		{"HEAD", "/app.js", 200, "text/javascript; charset=utf-8", true},
		{"POST", "/", 405, "text/plain; charset=utf-8", true},
		{"GET", "/healthz", 200, "application/json; charset=utf-8", false},
		{"POST", "/healthz", 405, "text/plain; charset=utf-8", false},
		{"GET", "/api/v1/nothing", 404, "application/json; charset=utf-8", false},
		{"GET", "/api/v1/me", 401, "application/json; charset=utf-8", false},
		{"GET", "/nothing", 404, "text/plain; charset=utf-8", false},
		{"GET", "/static/app.js", 404, "text/plain; charset=utf-8", false},
	} {
		req, _ := http.NewRequest(tc.method, url+tc.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.status || res.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, res.StatusCode, res.Header.Get("Content-Type"), tc.status, tc.ctype)
		}
		if got := res.Header.Get("Content-Security-Policy") == CSP; got != tc.csp {
			t.Errorf("%s %s: CSP header %q", tc.method, tc.path, res.Header.Get("Content-Security-Policy"))
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: no nosniff", tc.method, tc.path)
		}
	}
}

// TestStaticFilesHaveNoInlineCode backs the CSP: no inline script or style,
// no event handler attributes, no HTML built from strings, no outside
// resources, and a label for every visible input.
func TestStaticFilesHaveNoInlineCode(t *testing.T) {
	read := func(name string) string {
		b, err := static.ReadFile("static/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	html, js, css := read("index.html"), read("app.js"), read("style.css")
	t.Logf("page weight: index.html %d, app.js %d, style.css %d bytes; %d in all", len(html), len(js), len(css), len(html)+len(js)+len(css))
	// Every page of the settings is in these three files, loaded once and
	// revalidated by ETag; a bound keeps them from growing unnoticed.
	if n := len(html) + len(js) + len(css); n > 128<<10 {
		t.Errorf("the pages weigh %d bytes; keep them under 128 KiB", n)
	}
	bad := []struct {
		file, text string
		re         *regexp.Regexp
		why        string
	}{
		{"index.html", html, regexp.MustCompile(`(?i)<script(\s[^>]*)?>[^<]`), "inline script"},
		{"index.html", html, regexp.MustCompile(`(?i)<style`), "a style element"},
		{"index.html", html, regexp.MustCompile(`(?i)\sstyle\s*=`), "a style attribute"},
		{"index.html", html, regexp.MustCompile(`(?i)\son[a-z]+\s*=`), "an event handler attribute"},
		{"index.html", html, regexp.MustCompile(`(?i)javascript:|https?:|(src|href)\s*=\s*"//`), "an outside URL"},
		{"app.js", js, regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\s*\(|new\s+Function|setTimeout\s*\(\s*['"]`), "markup or code built from strings"},
		{"app.js", js, regexp.MustCompile(`\.style\b|setAttribute\(\s*['"](style|on)`), "inline style or handlers set from code"},
		{"app.js", js, regexp.MustCompile(`https?://|//[a-z0-9.-]+\.[a-z]{2,}/`), "an outside URL"},
		{"style.css", css, regexp.MustCompile(`(?i)@import|url\(|expression\(`), "an outside resource"},
	}
	for _, b := range bad {
		if m := b.re.FindString(b.text); m != "" {
			t.Errorf("%s has %s: %q", b.file, b.why, m)
		}
	}
	for _, tag := range regexp.MustCompile(`(?i)<script\b[^>]*>`).FindAllString(html, -1) {
		if !regexp.MustCompile(`\ssrc="[^"]+"`).MatchString(tag) {
			t.Errorf("index.html has a script without src: %s", tag)
		}
	}
	// Every src and href is one of our own files, a place on the page, the
	// device's own API or a data: URL.
	for _, m := range regexp.MustCompile(`(?i)\s(?:src|href)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(html, -1) {
		if !slices.Contains(Paths, m[1]) && !strings.HasPrefix(m[1], "data:") && !strings.HasPrefix(m[1], "#") && !strings.HasPrefix(m[1], "/api/v1/") {
			t.Errorf("index.html refers to %q, not one of %v", m[1], Paths)
		}
	}
	// Every visible input has a label.
	labels := map[string]bool{}
	for _, m := range regexp.MustCompile(`<label for="([^"]+)"`).FindAllStringSubmatch(html, -1) {
		labels[m[1]] = true
	}
	inputs := regexp.MustCompile(`<input\b[^>]*>`).FindAllString(html, -1)
	if len(inputs) < 10 {
		t.Fatalf("found only %d inputs in index.html", len(inputs))
	}
	for _, in := range inputs {
		id := regexp.MustCompile(`\sid="([^"]+)"`).FindStringSubmatch(in)
		if regexp.MustCompile(`\shidden[\s>]`).MatchString(in) {
			continue
		}
		if id == nil || !labels[id[1]] {
			t.Errorf("input without a label: %s", in)
		}
		if strings.Contains(in, `type="password"`) && !strings.Contains(in, `autocomplete="current-password"`) && !strings.Contains(in, `autocomplete="new-password"`) {
			t.Errorf("password input without autocomplete: %s", in)
		}
	}
}
