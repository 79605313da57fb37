package web

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// axeSource is axe-core's script, read once.
var axeSource string

// loadAxe reads axe-core as scripts/axe.sh fetched it (make deps runs it),
// and fetches it when it is missing.
func loadAxe(t *testing.T) string {
	t.Helper()
	if axeSource != "" {
		return axeSource
	}
	out, err := exec.Command("../../scripts/axe.sh").Output()
	if err != nil {
		t.Fatalf("axe-core is needed for the accessibility check: scripts/axe.sh: %v", err)
	}
	raw, err := os.ReadFile(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("axe-core: %v", err)
	}
	axeSource = string(raw)
	return axeSource
}

// viewports are the window sizes every page is checked at: a desktop and a
// phone.
var viewports = []struct {
	name          string
	width, height int64
	mobile        bool
}{{"desktop", 1280, 800, false}, {"phone", 360, 740, true}}

// check runs the accessibility and layout checks on the page as it is now,
// in light and dark mode, on a desktop and a phone: axe-core's WCAG 2.1 A
// and AA rules find nothing, nothing is wider than the screen, and the
// focus is not on a hidden element. name says which page and state it is;
// with RKNAS_SCREENSHOTS set, the desktop light view is saved there as
// name.png.
func (b *tab) check(name string) {
	b.t.Helper()
	src := loadAxe(b.t)
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.axe ? undefined : (0, eval)(`+jsString(src)+`)`)); err != nil {
		b.t.Fatalf("%s: inject axe-core: %v", name, err)
	}
	defer func() {
		_, _ = chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{})
		_, _ = chromedp.Call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{})
	}()
	focusHidden := evalIn[bool](b, `(e => e && e !== document.body && e.offsetParent === null && getComputedStyle(e).position !== 'fixed')(document.activeElement)`)
	if focusHidden {
		b.t.Errorf("%s: the focus is on a hidden element: %s", name, evalIn[string](b, `document.activeElement.outerHTML.slice(0, 120)`))
	}
	for _, vp := range viewports {
		if _, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
			Width: vp.width, Height: vp.height, DeviceScaleFactor: 1, Mobile: vp.mobile}); err != nil {
			b.t.Fatalf("%s: viewport: %v", name, err)
		}
		for _, scheme := range []string{"light", "dark"} {
			if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
				b.t.Fatalf("%s: color scheme: %v", name, err)
			}
			if wide := evalIn[string](b, `(() => {
				const w = document.documentElement.clientWidth;
				const over = [...document.querySelectorAll('main > section:not([hidden]) *')].filter(e => e.offsetParent !== null && !e.closest('.scroll') && e.getBoundingClientRect().right > w + 1);
				return over.length ? over.length + ' elements, first ' + over[0].outerHTML.slice(0, 100) : '';
			})()`); wide != "" {
				b.t.Errorf("%s (%s, %s): wider than the screen: %s", name, vp.name, scheme, wide)
			}
			violations, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']})
				.then(r => r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.slice(0, 3).map(n => n.target.join(' ') + (n.failureSummary ? ' [' + n.failureSummary.replace(/\s+/g, ' ').slice(0, 160) + ']' : '')).join('; ')))`,
				chromedp.EvalAwaitPromise))
			if err != nil {
				b.t.Fatalf("%s: axe-core: %v", name, err)
			}
			for _, v := range violations {
				b.t.Errorf("%s (%s, %s): %s", name, vp.name, scheme, v)
			}
			if dir := os.Getenv("RKNAS_SCREENSHOTS"); dir != "" && scheme == "light" && docScreens[name] && (vp.name == "desktop" || phoneScreens[name]) {
				file := name + ".png"
				if vp.name != "desktop" {
					file = name + "-" + vp.name + ".png"
				}
				b.screenshot(filepath.Join(dir, file))
			}
		}
	}
}

// docScreens are the pages and states docs/pages.md shows (make
// screenshots), on a desktop, and phoneScreens those shown on a phone too.
var (
	docScreens = map[string]bool{"sign-in": true, "code-step-error": true, "2fa-wizard-2-scan": true, "2fa-wizard-4-recovery-codes": true,
		"2fa-wizard-clock-wrong": true, "account": true, "users": true, "user": true, "policy": true, "security-blocked": true, "mail": true,
		"time": true, "network-trial": true, "audit": true, "system": true, "system-ports-trial": true}
	phoneScreens = map[string]bool{"sign-in": true, "2fa-wizard-2-scan": true, "account": true}
)

func (b *tab) screenshot(path string) {
	b.t.Helper()
	shot, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		b.t.Fatalf("save screenshot: %v", err)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r < 0x20 || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&sb, `\u%04x`, r)
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

// TestPagesDocMatchesTheScreenshots: docs/pages.md shows every screenshot
// the tests make, and only those, and each is in docs/screenshots.
func TestPagesDocMatchesTheScreenshots(t *testing.T) {
	doc, err := os.ReadFile("../../docs/pages.md")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for name := range docScreens {
		want[name+".png"] = true
		if phoneScreens[name] {
			want[name+"-phone.png"] = true
		}
	}
	shown := map[string]bool{}
	for _, m := range regexp.MustCompile(`\]\(screenshots/([^)]+)\)`).FindAllStringSubmatch(string(doc), -1) {
		shown[m[1]] = true
		if !want[m[1]] {
			t.Errorf("docs/pages.md shows %s, which no test makes", m[1])
		}
		if _, err := os.Stat(filepath.Join("../../docs/screenshots", m[1])); err != nil {
			t.Errorf("docs/pages.md shows %s: %v (make screenshots)", m[1], err)
		}
	}
	for f := range want {
		if !shown[f] {
			t.Errorf("docs/pages.md does not show %s", f)
		}
	}
}
