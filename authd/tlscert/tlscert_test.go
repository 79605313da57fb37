package tlscert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
)

var (
	now   = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
	names = Names{Hostname: "rknas-1234", Addrs: []net.IP{net.ParseIP("192.0.2.10"), net.ParseIP("fd00::10")}}
)

func open(t *testing.T, dir string, n Names) *Store {
	t.Helper()
	s, err := Open(dir, n, clocktest.New(now), quiet)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDeviceCertificate: made on first start with the hostname, its .local
// name and the addresses, key 0600; the same one after a restart; openssl
// reads the names.
func TestDeviceCertificate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	s := open(t, dir, names)
	info := s.Info()
	if info.Source != SourceDevice || info.Subject != "rknas-1234" {
		t.Fatalf("info %+v", info)
	}
	if got := strings.Join(info.Names, " "); got != "rknas-1234 rknas-1234.local 192.0.2.10 fd00::10" {
		t.Errorf("names %q", got)
	}
	if !info.NotBefore.Before(now) || info.NotAfter.Year() != 9999 {
		t.Errorf("validity %v to %v", info.NotBefore, info.NotAfter)
	}
	path := filepath.Join(dir, DeviceFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want 0600", path, fi.Mode(), err)
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v, want 0700", dir, err)
	}
	cert, _ := s.GetCertificate(nil)
	if k, ok := cert.PrivateKey.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", cert.PrivateKey)
	}

	out, err := exec.Command("openssl", "x509", "-in", path, "-noout", "-ext", "subjectAltName", "-fingerprint", "-sha256").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
	for _, want := range []string{"DNS:rknas-1234", "DNS:rknas-1234.local", "IP Address:192.0.2.10", "IP Address:FD00:0:0:0:0:0:0:10",
		"sha256 Fingerprint=" + info.Fingerprint} {
		if !strings.Contains(string(out), want) {
			t.Errorf("openssl shows no %q:\n%s", want, out)
		}
	}

	again := open(t, dir, names)
	if again.Info().Fingerprint != info.Fingerprint {
		t.Error("a restart made a new device certificate")
	}
	if inspected, err := Inspect(path); err != nil || inspected.Fingerprint != info.Fingerprint {
		t.Errorf("Inspect = %+v, %v", inspected, err)
	}
}

// TestDeviceCertificateFollowsTheHostname: a new hostname, at start or
// while running, gets a new certificate; addresses alone do not change it.
func TestDeviceCertificateFollowsTheHostname(t *testing.T) {
	dir := t.TempDir()
	first := open(t, dir, names).Info().Fingerprint
	moved := names
	moved.Addrs = []net.IP{net.ParseIP("198.51.100.7")}
	if open(t, dir, moved).Info().Fingerprint != first {
		t.Error("a new address alone made a new certificate")
	}
	renamed := open(t, dir, Names{Hostname: "attic"})
	if i := renamed.Info(); i.Fingerprint == first || i.Subject != "attic" {
		t.Errorf("after a rename at start: %+v", i)
	}
	changed, err := renamed.SetNames(Names{Hostname: "cellar"})
	if err != nil || !changed || renamed.Info().Subject != "cellar" {
		t.Errorf("SetNames: %v %v %+v", changed, err, renamed.Info())
	}
	if changed, err := renamed.SetNames(Names{Hostname: "CELLAR"}); err != nil || changed {
		t.Errorf("SetNames with the same name: %v %v", changed, err)
	}
}

func TestRegenerate(t *testing.T) {
	s := open(t, t.TempDir(), names)
	before := s.Info()
	after, err := s.Regenerate()
	if err != nil || after.Fingerprint == before.Fingerprint || s.Info().Fingerprint != after.Fingerprint {
		t.Fatalf("Regenerate: %+v %v (served %s)", after, err, s.Info().Fingerprint)
	}
}

// TestBrokenDeviceFileIsReplaced: a device file cut short (it cannot be,
// but a disk can fail) is replaced, not served and not fatal.
func TestBrokenDeviceFileIsReplaced(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, DeviceFile), []byte("-----BEGIN CERTIFICATE-----\nAAAA"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s := open(t, dir, names); s.Info().Subject != "rknas-1234" {
		t.Fatalf("info %+v", s.Info())
	}
}

// issue makes a certificate signed by a throwaway CA, as an owner's
// own CA or Let's Encrypt would.
func issue(t *testing.T, dnsNames []string, notBefore, notAfter time.Time) (chainPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return issueLeaf(t, key, func(c *x509.Certificate) {
		c.Subject.CommonName, c.DNSNames, c.NotBefore, c.NotAfter = dnsNames[0], dnsNames, notBefore, notAfter
	})
}

// issueLeaf returns a certificate for key, issued by a CA of its own (the
// chain holds both), and key as PKCS#8: a leaf for rknas-1234, valid for
// the hour around now, for TLS servers, changed by edit.
func issueLeaf(t *testing.T, key crypto.Signer, edit func(*x509.Certificate)) (chainPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Owner CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour * 24 * 365), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "rknas-1234"}, DNSNames: []string{"rknas-1234"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	edit(leaf)
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chainPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	return chainPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

// TestImportRefusesWhatBrowsersRefuse: a certificate a browser would not
// take from a server is refused at the import, not served: the owner would
// meet the error only at the next connection, with no page left to put
// another one in.
func TestImportRefusesWhatBrowsersRefuse(t *testing.T) {
	s := open(t, t.TempDir(), names)
	device := s.Info()
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	same := func(*x509.Certificate) {}
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		edit func(*x509.Certificate)
		want string // "" for accepted
	}{
		{"Ed25519", edKey, same, "its key is Ed25519"},
		{"ECDSA P-224", p224, same, "P-224"},
		{"RSA 1024", rsa1024, same, "1024 bits"},
		{"client authentication only", p384, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} }, "serverAuth"},
		{"certificate signing only", rsa2048, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCertSign }, "digital signatures"},
		{"RSA 2048", rsa2048, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment }, ""},
		{"ECDSA P-384, no extended key usage", p384, func(c *x509.Certificate) { c.ExtKeyUsage = nil }, ""},
	} {
		chain, key := issueLeaf(t, tc.key, tc.edit)
		_, err := s.Import(chain, key)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want it served", tc.name, err)
		case tc.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		case tc.want != "" && s.Info().Source != device.Source:
			t.Errorf("%s: refused, yet what is served changed", tc.name)
		}
		if _, err := s.UseDevice(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestImport(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, names)
	device := s.Info()
	good, goodKey := issue(t, []string{"nas.example.org", "rknas-1234"}, now.Add(-time.Hour), now.Add(90*24*time.Hour))
	_, otherKey := issue(t, []string{"rknas-1234"}, now.Add(-time.Hour), now.Add(time.Hour))
	expired, expiredKey := issue(t, []string{"rknas-1234"}, now.Add(-48*time.Hour), now.Add(-time.Hour))
	early, earlyKey := issue(t, []string{"rknas-1234"}, now.Add(time.Hour), now.Add(48*time.Hour))
	foreign, foreignKey := issue(t, []string{"other.example.org"}, now.Add(-time.Hour), now.Add(time.Hour))
	for _, tc := range []struct {
		name       string
		chain, key []byte
		want       string
	}{
		{"key of another certificate", good, otherKey, "the private key does not belong to the certificate"},
		{"expired", expired, expiredKey, "it expired on"},
		{"not yet valid", early, earlyKey, "it is not valid before"},
		{"another name", foreign, foreignKey, `does not name this device's hostname "rknas-1234" (it names other.example.org)`},
		{"no certificate", []byte("hello"), goodKey, "no PEM certificate found"},
		{"no key", good, []byte("hello"), "no PEM private key found"},
		{"too big", make([]byte, MaxImport+1), goodKey, "limited to 64 KiB"},
	} {
		_, err := s.Import(tc.chain, tc.key)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if s.Info().Fingerprint != device.Fingerprint {
		t.Fatal("a refused import changed what is served")
	}
	info, err := s.Import(good, goodKey)
	if err != nil || info.Source != SourceOwner || s.Info().Fingerprint != info.Fingerprint || info.Fingerprint == device.Fingerprint {
		t.Fatalf("Import: %+v %v", info, err)
	}
	cert, _ := s.GetCertificate(nil)
	if len(cert.Certificate) != 2 {
		t.Errorf("served chain has %d certificates, want leaf and CA", len(cert.Certificate))
	}
	if fi, err := os.Stat(filepath.Join(dir, OwnerFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("owner file: %v %v", fi, err)
	}
	// Kept across a restart; a regenerated device certificate does not
	// displace it.
	s = open(t, dir, names)
	if s.Info().Fingerprint != info.Fingerprint {
		t.Fatal("the imported certificate is not served after a restart")
	}
	if _, err := s.Regenerate(); err != nil || s.Info().Source != SourceOwner {
		t.Fatalf("after Regenerate: %+v %v", s.Info(), err)
	}
	// And back to the device certificate.
	back, err := s.UseDevice()
	if err != nil || back.Source != SourceDevice || s.Info().Fingerprint != s.Device().Fingerprint {
		t.Fatalf("UseDevice: %+v %v", back, err)
	}
	if _, err := os.Stat(filepath.Join(dir, OwnerFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("owner file still there: %v", err)
	}
}

// TestExpiredImportFallsBack: an imported certificate that expired while
// the box was off is not served; the device certificate is.
func TestExpiredImportFallsBack(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, names)
	chain, key := issue(t, []string{"rknas-1234"}, now.Add(-time.Hour), now.Add(time.Hour))
	if _, err := s.Import(chain, key); err != nil {
		t.Fatal(err)
	}
	later, err := Open(dir, names, clocktest.New(now.Add(2*time.Hour)), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if later.Info().Source != SourceDevice {
		t.Fatalf("an expired import is served: %+v", later.Info())
	}
}

func FuzzImport(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"))
	s, err := Open(f.TempDir(), names, clocktest.New(now), quiet)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, chain, key []byte) {
		if _, err := s.Import(chain, key); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %v is not ErrInvalid", err)
		}
	})
}
