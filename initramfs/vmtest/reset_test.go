//go:build vmtest

package vmtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/rknas/firmware/initramfs/vmrig"
)

// client is a browser-like API client of the VM, on one forwarded port.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
}

// newClient talks HTTPS to the forwarded port. It takes the device
// certificate as it comes: TestVM's https step checks it against the
// fingerprint on the boot console.
func newClient(t *testing.T, port int, jar http.CookieJar) *client {
	if jar == nil {
		jar, _ = cookiejar.New(nil)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	return &client{t: t, base: fmt.Sprintf("https://127.0.0.1:%d", port), hc: &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: tr}}
}

func (c *client) call(method, path string, body any) (int, map[string]any, error) {
	var r io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		r = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, c.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out := map[string]any{}
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, nil
}

func (c *client) must(want int, method, path string, body any) map[string]any {
	c.t.Helper()
	st, out, err := c.call(method, path, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	if st != want {
		c.t.Fatalf("%s %s: %d %v, want %d", method, path, st, out, want)
	}
	return out
}

// reachable polls /healthz until it answers or d passes.
func (c *client) reachable(d time.Duration) bool {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: c.hc.Transport}
	for end := time.Now().Add(d); time.Now().Before(end); {
		if resp, err := hc.Get(c.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return false
}

// freshCode waits for a TOTP step after the last one used and returns its
// code, computed on the host as a phone would.
func freshCode(t *testing.T, secret string, last *int64) string {
	for time.Now().Unix()/30 <= *last {
		time.Sleep(250 * time.Millisecond)
	}
	*last = time.Now().Unix() / 30
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func login(u, p string) map[string]string { return map[string]string{"username": u, "password": p} }

var latencyRE = regexp.MustCompile(`button: recovery durable.*latency=(\S+)`)

// TestVMReset is the owner's story on the firmware in QEMU: an admin with
// 2FA and a second user with 2FA; the network moved to a static address
// that cuts the host off, confirmed; RESET held 2 s does nothing; held 5 s
// gives the admin back with the default password and DHCP networking while
// the other user keeps 2FA; held 20 s is cancelled; a power cut during a
// reset is finished at the next boot; and everything persists across a
// reboot. The button is pressed through gpio-sim, so the events reach authd
// through the kernel's GPIO character device exactly as on a board.
// assertModernTLS checks that the firmware's authd refuses TLS 1.1 and RSA
// key exchange: the image's busybox is built in GOPATH mode, whose GODEBUG
// defaults (Go 1.20's) would allow both.
func assertModernTLS(t *testing.T, port int) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"TLS 1.1", &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}},
		{"RSA key exchange", &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}}},
	} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, tc.cfg)
		if err == nil {
			conn.Close()
			t.Errorf("authd accepted a %s handshake", tc.name)
		}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("a TLS 1.3 handshake: %v", err)
	}
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("authd negotiated TLS version %x, want 1.3", v)
	}
	conn.Close()
}

func TestVMReset(t *testing.T) {
	t.Parallel() // two VMs at a time: one per core, each with one vCPU
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	state, label := vmDisk(t, "")
	v := newVM(t, "reset1", state, "")
	moved := freePort(t)
	v.env = append(v.env, fmt.Sprintf("RKNAS_VM_FWD=hostfwd=tcp:127.0.0.1:%d-10.0.2.16:443", moved))
	took := v.boot(ctx)
	fmt.Printf("vmtest: reset scenario, boot to 'authd ready': %.1f s\n", took.Seconds())
	// The device's own default password, provisioned by the flasher.
	def := label.password
	assertModernTLS(t, v.port)
	jar, _ := cookiejar.New(nil)
	admin := newClient(t, v.port, jar)
	var adminStep, bobStep int64

	// 1. First login, new password, 2FA; a second user with 2FA.
	if out := admin.must(200, "POST", "/api/v1/login", login("admin", def)); out["status"] != "password_change_required" {
		t.Fatalf("first login: %v", out)
	}
	admin.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": def, "new_password": "admin passphrase 1"})
	secret := admin.must(200, "POST", "/api/v1/me/2fa/enroll", map[string]string{"password": "admin passphrase 1"})["secret"].(string)
	admin.must(200, "POST", "/api/v1/me/2fa/verify", map[string]string{"code": freshCode(t, secret, &adminStep)})
	admin.must(201, "POST", "/api/v1/users", map[string]any{"name": "bob", "password": "bob passphrase", "must_change_password": false})
	bob := newClient(t, v.port, nil)
	bob.must(200, "POST", "/api/v1/login", login("bob", "bob passphrase"))
	bobSecret := bob.must(200, "POST", "/api/v1/me/2fa/enroll", map[string]string{"password": "bob passphrase"})["secret"].(string)
	bob.must(200, "POST", "/api/v1/me/2fa/verify", map[string]string{"code": freshCode(t, bobSecret, &bobStep)})

	// 2. A static address that cuts the host off, confirmed from the new
	// address (as from a laptop moved to that network).
	netcfg := admin.must(200, "GET", "/api/v1/settings/network", nil)
	iface := netcfg["config"].(map[string]any)["interfaces"].([]any)[0].(map[string]any)["name"].(string)
	// A network change needs the password and a fresh code again.
	admin.must(200, "POST", "/api/v1/me/step-up", map[string]string{"password": "admin passphrase 1", "code": freshCode(t, secret, &adminStep)})
	// The answer to the change may be lost with the old address; the
	// pending change is read back through the new one.
	admin.call("PUT", "/api/v1/settings/network", map[string]any{
		"hostname": "rknas", "dns": []string{"10.0.2.3"},
		"interfaces": []any{map[string]any{"name": iface, "mode": "static", "addresses": []string{"10.0.2.16/24"}, "gateway4": "10.0.2.2"}},
	})
	viaNew := newClient(t, moved, jar)
	if !viaNew.reachable(30 * time.Second) {
		t.Fatal("the API is not reachable at the new static address")
	}
	pending, _ := viaNew.must(200, "GET", "/api/v1/settings/network", nil)["status"].(map[string]any)["pending"].(map[string]any)
	if pending == nil {
		t.Fatal("no pending network change")
	}
	viaNew.must(200, "POST", "/api/v1/settings/network/confirm", map[string]any{"id": pending["id"]})
	if admin.reachable(3 * time.Second) {
		t.Fatal("the API still answers at the DHCP address after the static change")
	}

	// 3a. RESET for 2 s: nothing happens.
	v.console.Mark()
	if got := v.ctl(ctx, "hold 2"); got != "ok held 2s" {
		t.Fatalf("hold 2: %q", got)
	}
	v.wait(ctx, "released before the reset threshold: nothing done")
	if admin.reachable(3 * time.Second) {
		t.Fatal("a 2 s press changed the network")
	}
	st, out, _ := newClient(t, moved, nil).call("POST", "/api/v1/login", login("admin", "admin passphrase 1"))
	if st != 200 || out["status"] != "otp_required" {
		t.Fatalf("after a 2 s press the admin login changed: %d %v", st, out)
	}

	// 3b. RESET for 5 s: the admin is back with the default password and
	// no code, over DHCP.
	v.console.Mark()
	resetFrom := &vmrig.Console{Path: v.console.Path}
	resetFrom.Mark()
	durableFrom := &vmrig.Console{Path: v.console.Path}
	durableFrom.Mark()
	v.ctl(ctx, "hold 5")
	v.wait(ctx, "recovery finished")
	v.wait(ctx, "recovery action done")
	durable, err := durableFrom.Wait(ctx, "button: recovery durable")
	if err != nil {
		t.Fatal(err)
	}
	m := latencyRE.FindStringSubmatch(durable)
	if m == nil {
		t.Fatalf("no latency in %q", durable)
	}
	fmt.Printf("vmtest: release edge (kernel timestamp) to recovery durable: %s\n", m[1])
	if !admin.reachable(60 * time.Second) {
		t.Fatal("the API did not come back over DHCP after the reset")
	}
	fresh := newClient(t, v.port, nil)
	if out := fresh.must(200, "POST", "/api/v1/login", login("admin", def)); out["status"] != "password_change_required" {
		t.Fatalf("admin after the reset: %v", out)
	}
	fresh.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": def, "new_password": "admin passphrase 2"})
	if out := newClient(t, v.port, nil).must(200, "POST", "/api/v1/login", login("bob", "bob passphrase")); out["status"] != "otp_required" {
		t.Fatalf("bob lost his 2FA: %v", out)
	}
	// The reset put the network back to DHCP under the device's own name,
	// announced on the LAN again.
	if h := fresh.must(200, "GET", "/api/v1/settings/network", nil)["config"].(map[string]any)["hostname"]; h != label.hostname {
		t.Fatalf("hostname after the reset is %v, want the provisioned %s", h, label.hostname)
	}
	// authd looks for a new hostname every 10 s.
	actx, acancel := context.WithTimeout(ctx, 60*time.Second)
	line, err := resetFrom.Wait(actx, `msg="announcing on the LAN" component=mdns name=`+label.hostname+".local")
	acancel()
	if err != nil {
		t.Errorf("not announced on the LAN under the provisioned name after the reset: %v", err)
	} else if !strings.Contains(line, "port=443") {
		t.Errorf("after the reset the LAN announcement is %q", line)
	}
	audit := fresh.must(200, "GET", "/api/v1/audit?limit=1000", nil)
	if !strings.Contains(jsonText(audit), `"event":"physical_reset"`) {
		t.Fatal("the audit log does not show the physical reset")
	}
	resets := strings.Count(jsonText(audit), `"event":"physical_reset"`)

	// 4. RESET for 20 s: cancelled, nothing changes.
	v.console.Mark()
	v.ctl(ctx, "hold 20")
	v.wait(ctx, "released after cancelling: nothing done")
	if out := newClient(t, v.port, nil).must(200, "POST", "/api/v1/login", login("admin", "admin passphrase 2")); out["status"] != "ok" {
		t.Fatalf("admin after a cancelled hold: %v", out)
	}
	if n := strings.Count(jsonText(fresh.must(200, "GET", "/api/v1/audit?limit=1000", nil)), `"event":"physical_reset"`); n != resets {
		t.Fatalf("a cancelled hold reset the admin (%d resets, was %d)", n, resets)
	}

	// 5. A power cut during a reset: QEMU is killed as soon as the admin
	// step is on disk ("recovery started"), before the network step and
	// the journal's close; the next boot finishes it.
	v.console.Mark()
	v.ctl(ctx, "hold 5")
	v.wait(ctx, "recovery started")
	cutPower(t, v)
	// The cut can land after the network step too; then there is nothing
	// left to finish, and the console says so.
	log1, _ := os.ReadFile(v.console.Path)
	cutLog := string(log1[strings.LastIndex(string(log1), "recovery started"):])
	doneBeforeCut := strings.Contains(cutLog, "recovery finished")

	v2 := newVM(t, "reset2", state, "")
	v2.boot(ctx)
	log2, _ := os.ReadFile(v2.console.Path)
	finished := strings.Contains(string(log2), "an interrupted physical reset was finished")
	fmt.Printf("vmtest: power cut during a reset: finished before the cut: %v; interrupted journal finished at boot: %v\n", doneBeforeCut, finished)
	if finished == doneBeforeCut {
		t.Fatalf("power cut during a reset: finished before the cut %v, finished at boot %v; want exactly one", doneBeforeCut, finished)
	}
	again := newClient(t, v2.port, nil)
	if out := again.must(200, "POST", "/api/v1/login", login("admin", def)); out["status"] != "password_change_required" {
		t.Fatalf("admin after the power cut: %v", out)
	}
	again.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": def, "new_password": "admin passphrase 3"})
	// Both halves: every reset begun is recorded as completed, and the
	// network is DHCP under the device's own name.
	audit = again.must(200, "GET", "/api/v1/audit?limit=1000", nil)
	if begun, completed := strings.Count(jsonText(audit), `"event":"physical_reset"`), strings.Count(jsonText(audit), `"event":"physical_reset_completed"`); begun != resets+1 || completed != begun {
		t.Fatalf("after the power cut: %d resets begun (want %d), %d completed", begun, resets+1, completed)
	}
	cfg := again.must(200, "GET", "/api/v1/settings/network", nil)["config"].(map[string]any)
	if cfg["hostname"] != label.hostname || !strings.Contains(jsonText(cfg["interfaces"]), `"mode":"dhcp"`) || strings.Contains(jsonText(cfg["interfaces"]), `"mode":"static"`) {
		t.Fatalf("network after the power cut: %s", jsonText(cfg))
	}

	// 6. A clean reboot: everything persists on the state disk.
	v2.script("stop")
	v3 := newVM(t, "reset3", state, "")
	v3.boot(ctx)
	if out := newClient(t, v3.port, nil).must(200, "POST", "/api/v1/login", login("admin", "admin passphrase 3")); out["status"] != "ok" {
		t.Fatalf("admin after a reboot: %v", out)
	}
	if out := newClient(t, v3.port, nil).must(200, "POST", "/api/v1/login", login("bob", "bob passphrase")); out["status"] != "otp_required" {
		t.Fatalf("bob after a reboot: %v", out)
	}
	v3.script("stop")
}

func jsonText(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}
