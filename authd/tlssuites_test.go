package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// TestTLS12OnlyForwardSecretAEAD: over TLS 1.2 authd agrees only to ECDHE
// suites with AES-GCM or ChaCha20-Poly1305, with the device's ECDSA key and
// with an imported RSA one; TLS 1.3 is served as before.
func TestTLS12OnlyForwardSecretAEAD(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	suites := append(tls.CipherSuites(), tls.InsecureCipherSuites()...)
	for _, key := range []struct {
		name string
		priv crypto.Signer
	}{{"ECDSA", ecKey}, {"RSA", rsaKey}} {
		cert := selfSigned(t, key.priv)
		config := tlsConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil })
		for _, s := range suites {
			if !supports(s, tls.VersionTLS12) {
				continue
			}
			want := strings.HasPrefix(s.Name, "TLS_ECDHE_"+key.name+"_") &&
				(strings.Contains(s.Name, "_GCM_") || strings.Contains(s.Name, "CHACHA20_POLY1305"))
			err := handshake(config, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{s.ID}})
			if got := err == nil; got != want {
				t.Errorf("%s key, TLS 1.2 with only %s offered: agreed %v (%v), want %v", key.name, s.Name, got, err, want)
			}
		}
		if err := handshake(config, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}); err != nil {
			t.Errorf("%s key, TLS 1.3: %v", key.name, err)
		}
	}
}

func supports(s *tls.CipherSuite, version uint16) bool {
	for _, v := range s.SupportedVersions {
		if v == version {
			return true
		}
	}
	return false
}

// handshake runs one TLS handshake between server and client over a pipe.
func handshake(server, client *tls.Config) error {
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		srv := tls.Server(s, server)
		done <- srv.Handshake()
		s.Close()
	}()
	cli := tls.Client(c, client)
	err := cli.Handshake()
	c.Close()
	if serr := <-done; err == nil {
		err = serr
	}
	return err
}

func selfSigned(t *testing.T, key crypto.Signer) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rknas.local"},
		DNSNames: []string{"rknas.local"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
