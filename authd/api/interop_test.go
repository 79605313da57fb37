package api

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock"
)

// lookTool finds a Debian tool the test needs, failing (never skipping)
// when it is missing.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install Debian's %s (scripts/deps.sh does)", name, pkg)
	}
	return p
}

// TestEnrolWithIndependentAuthenticator reads the QR code with zbarimg, as a
// phone would, and computes codes with oathtool, an independent TOTP
// implementation, on the real clock.
func TestEnrolWithIndependentAuthenticator(t *testing.T) {
	zbar := lookTool(t, "zbarimg", "zbar-tools")
	oath := lookTool(t, "oathtool", "oathtool")
	e := newEnv(t, clock.System{})
	b := e.browser()
	b.setUpAdmin("correct horse")
	enr := b.must(200, "POST", "/api/v1/me/2fa/enroll", map[string]string{"password": "correct horse"})
	png, err := base64.StdEncoding.DecodeString(enr["qr_png"].(string))
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(img, png, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(zbar, "--quiet", "--raw", img).Output()
	if err != nil {
		t.Fatalf("zbarimg could not read the QR code: %v", err)
	}
	uri := strings.TrimSpace(string(out))
	if uri != enr["otpauth_uri"] {
		t.Fatalf("QR code holds %q, API said %q", uri, enr["otpauth_uri"])
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("issuer") != "TestNAS" || q.Get("algorithm") != "SHA1" || q.Get("digits") != "6" || q.Get("period") != "30" {
		t.Fatalf("otpauth parameters %v", q)
	}
	code := func() string {
		t.Helper()
		out, err := exec.Command(oath, "--totp", "--base32", q.Get("secret")).Output()
		if err != nil {
			t.Fatalf("oathtool: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	b.must(200, "POST", "/api/v1/me/2fa/verify", map[string]string{"code": code()})
	// Wait for the next step on the real clock: the enrolment's step is
	// spent. Up to 30 s, polled against the step number, not slept blind.
	first := time.Now().Unix() / 30
	for time.Now().Unix()/30 == first {
		time.Sleep(200 * time.Millisecond)
	}
	b.must(200, "POST", "/api/v1/logout", nil)
	ch := b.must(200, "POST", "/api/v1/login", login("admin", "correct horse"))["challenge"]
	c := code()
	b.must(200, "POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": c})
	ch = e.browser().must(200, "POST", "/api/v1/login", login("admin", "correct horse"))["challenge"]
	st, res, _ := e.browser().call("POST", "/api/v1/login/otp", map[string]any{"challenge": ch, "code": c})
	if st != http.StatusUnauthorized || errCode(res) != "code_reused" {
		t.Fatalf("reused oathtool code: %d %v", st, res)
	}
}
