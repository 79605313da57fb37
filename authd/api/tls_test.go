package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/tlscert"
)

// tlsEnv serves the API over HTTPS with a device certificate store, the
// way authd -tls auto does.
func tlsEnv(t testing.TB) (*env, *tlscert.Store) {
	t.Helper()
	return tlsEnvOn(t, newEnv(t, start()))
}

// tlsEnvOn serves e's service over HTTPS too; e.url becomes the HTTPS one.
func tlsEnvOn(t testing.TB, e *env) (*env, *tlscert.Store) {
	t.Helper()
	certs, err := tlscert.Open(filepath.Join(t.TempDir(), "tls"), tlscert.Names{Hostname: "rknas-test"}, clock.System{}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	srv := New(e.svc, discardLog(), 24*time.Hour)
	srv.AttachSystem(&System{Version: "test", Started: time.Now(), TLS: certs})
	srv.SetHostNames(func() []string { return []string{"rknas-test", "rknas-test.local"} })
	// Not httptest's StartTLS: it adds its own certificate, which Go
	// prefers to GetCertificate when the client sends no server name.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler(), TLSConfig: &tls.Config{GetCertificate: certs.GetCertificate, MinVersion: tls.VersionTLS12},
		ErrorLog: log.New(io.Discard, "", 0)}
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })
	e.url = "https://" + ln.Addr().String()
	return e, certs
}

// pinned is a browser that accepts exactly the certificate whose SHA-256
// fingerprint is *fp, read at each new connection, as an owner who
// compared the fingerprint with authd cert would.
func pinned(e *env, fp *string) *browser {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if got := tlscert.Fingerprint(raw[0]); got != *fp {
				return fmt.Errorf("certificate %s, pinned %s", got, *fp)
			}
			return nil
		},
	}}
	return &browser{e: e, hc: &http.Client{Jar: jar, Transport: tr}}
}

// TestHTTPSWithTheDeviceCertificate: a client pinning the device
// certificate's fingerprint signs in; the status shows the same
// fingerprint; an imported certificate is served on the next connection
// without a restart, needs a step-up, and the device certificate comes back.
func TestHTTPSWithTheDeviceCertificate(t *testing.T) {
	e, certs := tlsEnv(t)
	fp := certs.Info().Fingerprint
	a := pinned(e, &fp)
	a.setUpAdmin("correct horse")
	st := a.must(200, "GET", "/api/v1/system/status", nil)
	if got := st["certificate"].(map[string]any)["fingerprint_sha256"]; got != fp {
		t.Fatalf("status fingerprint %v, served %s", got, fp)
	}
	wrong := "00:11"
	if _, err := pinned(e, &wrong).hc.Get(e.url + "/healthz"); err == nil || !strings.Contains(err.Error(), "pinned 00:11") {
		t.Fatalf("a client pinning another fingerprint connected: %v", err)
	}

	chain, key := ownerCertificate(t, "rknas-test", time.Now())
	body := map[string]string{"chain_pem": string(chain), "key_pem": string(key)}
	a.wantErr(403, "step_up_required", "PUT", "/api/v1/system/certificate", body)
	a.stepUp()
	a.wantErr(400, "bad_request", "PUT", "/api/v1/system/certificate", map[string]string{"chain_pem": string(chain), "key_pem": "nope"})
	out := a.must(200, "PUT", "/api/v1/system/certificate", body)
	served := out["served"].(map[string]any)
	if served["source"] != "owner" || served["fingerprint_sha256"] == fp {
		t.Fatalf("after the import: %v", out)
	}
	// A new connection meets the imported certificate: the old pin fails,
	// the new one works, with no restart in between.
	if _, err := pinned(e, &fp).hc.Get(e.url + "/healthz"); err == nil {
		t.Fatal("the device certificate is still served after the import")
	}
	ownerFP := served["fingerprint_sha256"].(string)
	if resp, err := pinned(e, &ownerFP).hc.Get(e.url + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the imported certificate is not served: %v", err)
	}
	out = a.must(200, "DELETE", "/api/v1/system/certificate", nil)
	if out["served"].(map[string]any)["fingerprint_sha256"] != fp {
		t.Fatalf("after going back: %v", out)
	}
	audit := jsonString(a.must(200, "GET", "/api/v1/audit?limit=50", nil))
	for _, ev := range []string{"certificate_imported", "certificate_removed"} {
		if !strings.Contains(audit, ev) {
			t.Errorf("no %s in the audit log", ev)
		}
	}
}

// TestForeignHostRefused: a request naming a host that is not the
// device's (a DNS-rebinding page) is refused; the device's names, any
// address and localhost are served.
func TestForeignHostRefused(t *testing.T) {
	e, certs := tlsEnv(t)
	fp := certs.Info().Fingerprint
	b := pinned(e, &fp)
	port := e.url[strings.LastIndex(e.url, ":"):]
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"evil.example", false}, {"evil.example" + port, false}, {"rknas-test.evil.example", false},
		{"rknas-test", true}, {"RKNAS-TEST.local." + port, true}, {"localhost" + port, true},
		{"127.0.0.1" + port, true}, {"[::1]" + port, true}, {"192.0.2.7", true},
	} {
		req, _ := http.NewRequest("GET", e.url+"/api/v1/time/status", nil)
		req.Host = tc.host
		resp, err := b.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ok := resp.StatusCode != http.StatusMisdirectedRequest; ok != tc.ok {
			t.Errorf("Host %q: status %d, want served=%v", tc.host, resp.StatusCode, tc.ok)
		}
	}
	req, _ := http.NewRequest("POST", e.url+"/api/v1/login", strings.NewReader(`{"username":"admin","password":"x"}`))
	req.Host = "evil.example"
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 421 || errCode(out) != "wrong_host" || !strings.Contains(fmt.Sprint(out), `does not answer to the name "evil.example"`) {
		t.Fatalf("login under a foreign name: %d %v", resp.StatusCode, out)
	}
}

func ownerCertificate(t *testing.T, host string, now time.Time) (chainPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

// BenchmarkTLSLoginRatio measures a login on a new connection over HTTPS
// (handshake included) against the same login over plain HTTP, alternating
// short rounds in one run. Goal: ratio >= 0.8 (argon2 dominates both).
func BenchmarkTLSLoginRatio(b *testing.B) {
	e := newEnv(b, clock.System{})
	plainURL := e.url
	first := e.browser()
	first.setUpAdmin("correct horse")
	_, certs := tlsEnvOn(b, e)
	fp := certs.Info().Fingerprint
	newConn := func(c *browser) *browser {
		if tr, ok := c.hc.Transport.(*http.Transport); ok {
			tr.DisableKeepAlives = true
		} else {
			c.hc.Transport = &http.Transport{DisableKeepAlives: true}
		}
		return c
	}
	overTLS, plain := newConn(pinned(e, &fp)), newConn(e.browser())
	login := func(c *browser, base string) {
		saved := c.e.url
		c.e.url = base
		defer func() { c.e.url = saved }()
		if out := c.must(200, "POST", "/api/v1/login", login("admin", "correct horse")); out["status"] != "ok" {
			b.Fatalf("login: %v", out)
		}
	}
	const batch = 10
	collected := collectedRounds(b)
	interleave(b, batch, "http_logins/s", "https_logins/s",
		collected(func() {
			for range batch {
				login(plain, plainURL)
			}
		}),
		collected(func() {
			for range batch {
				login(overTLS, e.url)
			}
		}))
}

// BenchmarkTLSSessionGetRatio measures session-checked GET /api/v1/me over
// HTTPS (kept-alive connection) against a bare net/http handler served
// over TLS with the same certificate, alternating rounds in one run.
// Goal: ratio >= 0.85, as over plain HTTP.
func BenchmarkTLSSessionGetRatio(b *testing.B) {
	e, certs := tlsEnv(b)
	fp := certs.Info().Fingerprint
	br := pinned(e, &fp)
	br.setUpAdmin("correct horse")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name":"admin"}`)
	}), TLSConfig: &tls.Config{GetCertificate: certs.GetCertificate, MinVersion: tls.VersionTLS12}, ErrorLog: log.New(io.Discard, "", 0)}
	go bare.ServeTLS(ln, "", "")
	defer bare.Close()
	bareURL := "https://" + ln.Addr().String() + "/"
	compareGets(b, br.hc, bareURL, e.url+"/api/v1/me", "bare_tls_req/s", "me_tls_req/s")
}
