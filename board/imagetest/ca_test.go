//go:build imagetest

package imagetest

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// caBundle is where the initramfs carries the root certificates authd's
// SMTP client verifies mail servers with.
const caBundle = "etc/ssl/certs/ca-certificates.crt"

// TestCABundleIsDebians checks the firmware's base initramfs, which every
// board's image carries as its first archive: its CA bundle holds exactly the
// certificates of the pinned Debian ca-certificates package (fetched and
// checked by apt through scripts/kernel.sh), in sorted file order, and
// nothing else lies under etc/ssl. A CA the build host added locally (a
// company's interception CA, a development root) would let its holder read
// the mail that carries emergency login codes.
func TestCABundleIsDebians(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	out, err := exec.Command(filepath.Join(root, "scripts", "kernel.sh"), "--deb", "ca-certificates:all").Output()
	if err != nil {
		t.Fatalf("scripts/kernel.sh --deb ca-certificates:all: %v", err)
	}
	deb := strings.TrimSpace(string(out))
	cmd := exec.Command(filepath.Join(root, "scripts", "build-image.sh"))
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("scripts/build-image.sh: %v\n%s", err, stderr.String())
	}
	checkCABundle(t, strings.TrimSpace(string(out)), deb)
}

// checkCABundle compares the CA bundle in the initramfs img (cpio.zst) with
// the certificates of the ca-certificates package deb.
func checkCABundle(t *testing.T, img, deb string) {
	t.Helper()
	dir := t.TempDir()

	// What Debian ships: usr/share/ca-certificates/mozilla/*.crt, all of
	// which its default /etc/ca-certificates.conf enables.
	x := filepath.Join(dir, "deb")
	run(t, "dpkg-deb", "-x", deb, x)
	crts, err := filepath.Glob(filepath.Join(x, "usr/share/ca-certificates/mozilla/*.crt"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(crts)
	if len(crts) < 100 {
		t.Fatalf("%s holds %d certificates; Debian ships well over 100", deb, len(crts))
	}
	var want []*x509.Certificate
	var wantBundle []byte
	for _, c := range crts {
		b, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		certs := parsePEMCerts(t, filepath.Base(c), b)
		if len(certs) != 1 {
			t.Fatalf("%s holds %d certificates, want 1", filepath.Base(c), len(certs))
		}
		want = append(want, certs[0])
		wantBundle = append(wantBundle, b...)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			wantBundle = append(wantBundle, '\n')
		}
	}

	// What the image carries, read with cpio.
	cpio := filepath.Join(dir, "initramfs.cpio")
	if err := os.WriteFile(cpio, run(t, "zstd", "-dc", img), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range strings.Fields(string(run(t, "cpio", "-t", "--quiet", "-F", cpio))) {
		n = strings.TrimPrefix(n, "./")
		if strings.HasPrefix(n, "etc/ssl/") && n != "etc/ssl/certs" && n != caBundle {
			t.Errorf("the initramfs carries %s; under etc/ssl only %s belongs", n, caBundle)
		}
	}
	bundle := run(t, "cpio", "-i", "--quiet", "--to-stdout", "-F", cpio, caBundle)
	got := parsePEMCerts(t, caBundle, bundle)

	wantSet := map[string]*x509.Certificate{}
	for _, c := range want {
		wantSet[string(c.Raw)] = c
	}
	gotSet := map[string]bool{}
	for _, c := range got {
		if gotSet[string(c.Raw)] {
			t.Errorf("the bundle holds %q twice", c.Subject)
		}
		gotSet[string(c.Raw)] = true
		if wantSet[string(c.Raw)] == nil {
			t.Errorf("the bundle holds %q, which is not in %s", c.Subject, filepath.Base(deb))
		}
	}
	for _, c := range want {
		if !gotSet[string(c.Raw)] {
			t.Errorf("the bundle lacks %q from %s", c.Subject, filepath.Base(deb))
		}
	}
	if t.Failed() {
		return
	}
	if !bytes.Equal(bundle, wantBundle) {
		t.Errorf("the bundle holds the package's certificates, but not as their files concatenated in sorted order")
	}
	fmt.Printf("imagetest: CA bundle: the %d certificates of %s\n", len(got), filepath.Base(deb))
}

// parsePEMCerts parses every block of b, which must all be certificates with
// nothing but white space between them.
func parsePEMCerts(t *testing.T, name string, b []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				t.Fatalf("%s: %d bytes that are not PEM", name, len(bytes.TrimSpace(rest)))
			}
			return certs
		}
		if blk.Type != "CERTIFICATE" {
			t.Fatalf("%s: a PEM block of type %q", name, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		certs = append(certs, c)
	}
}
