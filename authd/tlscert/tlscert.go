// Package tlscert keeps the certificate authd serves HTTPS with: the
// device's own self-signed one, made on first start and kept across
// restarts and resets, or one the owner imported, switched without a
// restart.
package tlscert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rknas/firmware/authd/atomicfile"
	"github.com/rknas/firmware/authd/clock"
)

// File names in the store's directory. Each holds the certificate chain and
// its private key in one PEM file, written in one atomic step, so a power
// cut can never pair a new key with an old certificate.
const (
	DeviceFile = "device.pem"
	OwnerFile  = "owner.pem"
)

// Sources of the certificate being served.
const (
	SourceDevice = "device"
	SourceOwner  = "owner"
)

// MaxImport caps an imported chain or key.
const MaxImport = 64 << 10

// Validity of the device certificate. It starts well in the past and never
// ends (RFC 5280's 99991231235959Z): a box whose clock is wrong at first
// start (1970, or the build date) must not mint a certificate a browser
// finds not yet valid or expired, and a fingerprint the owner checked once
// should stay the same.
var (
	deviceNotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	deviceNotAfter  = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// ErrInvalid wraps every refusal of an imported certificate; the message
// names what is wrong.
var ErrInvalid = errors.New("tlscert: certificate refused")

// Names are what the device certificate is made for.
type Names struct {
	// Hostname is the device's hostname; the certificate also names
	// <hostname>.local when it is a single label.
	Hostname string
	// Addrs are the addresses authd serves on, when it knows them.
	Addrs []net.IP
}

// DNSNames returns the DNS names of n, hostname first ("nas" when it has
// none).
func (n Names) DNSNames() []string {
	h := strings.ToLower(strings.TrimSuffix(n.Hostname, "."))
	if h == "" {
		h = "nas"
	}
	out := []string{h}
	if !strings.Contains(h, ".") {
		out = append(out, h+".local")
	}
	return out
}

// Info describes the certificate being served.
type Info struct {
	Source string `json:"source"`
	// Fingerprint is the SHA-256 of the leaf certificate, in the
	// colon-separated hex browsers show.
	Fingerprint string `json:"fingerprint_sha256"`
	// SPKI is the base64 SHA-256 of the leaf's public key, as pinned by
	// HPKP-style tools and Chromium's --ignore-certificate-errors-spki-list.
	SPKI      string    `json:"spki_sha256"`
	Subject   string    `json:"subject"`
	Names     []string  `json:"names"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

type served struct {
	cert *tls.Certificate
	info Info
}

// Store holds the served certificate. It is safe for concurrent use.
type Store struct {
	dir   string
	clock clock.Clock
	log   *slog.Logger

	mu     sync.Mutex // serialises changes; reads go through cur
	names  Names
	device served
	cur    atomic.Pointer[served]
}

// Open loads the certificates in dir (created 0700 if missing), making the
// device certificate if it is missing, unreadable or made for another
// hostname. An imported certificate that no longer loads or has expired is
// left on disk, reported, and the device certificate is served instead.
func Open(dir string, names Names, clk clock.Clock, log *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlscert: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlscert: %w", err)
	}
	s := &Store{dir: dir, clock: clk, log: log, names: names}
	dev, err := loadFile(filepath.Join(dir, DeviceFile), SourceDevice)
	switch {
	case err != nil && !errors.Is(err, os.ErrNotExist):
		log.Warn("device certificate unreadable; making a new one", "err", err)
		dev = served{}
	case err == nil && !slices.Equal(dev.cert.Leaf.DNSNames, names.DNSNames()):
		log.Info("hostname changed; making a new device certificate", "was", dev.info.Subject, "now", names.Hostname)
		dev = served{}
	}
	if dev.cert == nil {
		if dev, err = s.makeDevice(); err != nil {
			return nil, err
		}
	}
	s.device = dev
	s.cur.Store(&s.device)
	own, err := loadFile(filepath.Join(dir, OwnerFile), SourceOwner)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		log.Error("imported certificate unreadable; serving the device certificate", "err", err)
	case !clk.Now().Before(own.info.NotAfter):
		log.Error("imported certificate expired; serving the device certificate", "not_after", own.info.NotAfter)
	default:
		s.cur.Store(&own)
	}
	return s, nil
}

// GetCertificate is tls.Config's GetCertificate: the current certificate.
func (s *Store) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load().cert, nil
}

// Info describes the certificate being served.
func (s *Store) Info() Info { return s.cur.Load().info }

// Device describes the device certificate, served or not.
func (s *Store) Device() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.device.info
}

// Hostname is the hostname the device certificate is made for.
func (s *Store) Hostname() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.names.Hostname
}

// Regenerate makes a new device key and certificate. It is served at once
// unless an imported certificate is in use, which stays.
func (s *Store) Regenerate() (Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.regenerate()
}

// SetNames makes a new device certificate when the hostname changed, and
// tells whether it did.
func (s *Store) SetNames(n Names) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Equal(n.DNSNames(), s.names.DNSNames()) {
		return false, nil
	}
	s.names = n
	_, err := s.regenerate()
	return err == nil, err
}

func (s *Store) regenerate() (Info, error) {
	dev, err := s.makeDevice()
	if err != nil {
		return Info{}, err
	}
	ownerServed := s.cur.Load().info.Source == SourceOwner
	s.device = dev
	if !ownerServed {
		s.cur.Store(&s.device)
	}
	s.log.Warn("new device certificate", "fingerprint_sha256", dev.info.Fingerprint, "names", dev.info.Names)
	return dev.info, nil
}

// Import checks and serves the owner's certificate: chainPEM holds the
// leaf first, then any intermediates; keyPEM its private key. The key must
// match, the leaf must be valid now and name the device's hostname. It is
// stored before it is served.
func (s *Store) Import(chainPEM, keyPEM []byte) (Info, error) {
	if len(chainPEM) > MaxImport || len(keyPEM) > MaxImport {
		return Info{}, fmt.Errorf("%w: the chain and the key are limited to %d KiB each", ErrInvalid, MaxImport>>10)
	}
	pair, err := keyPair(chainPEM, keyPEM)
	if err != nil {
		return Info{}, fmt.Errorf("%w: %s", ErrInvalid, plainPairError(err))
	}
	leaf := pair.Leaf
	now := s.clock.Now()
	switch {
	case now.Before(leaf.NotBefore):
		return Info{}, fmt.Errorf("%w: it is not valid before %s", ErrInvalid, leaf.NotBefore.UTC().Format(time.RFC3339))
	case !now.Before(leaf.NotAfter):
		return Info{}, fmt.Errorf("%w: it expired on %s", ErrInvalid, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if err := checkServerLeaf(leaf); err != nil {
		return Info{}, fmt.Errorf("%w: %s", ErrInvalid, err)
	}
	host := s.Hostname()
	if err := leaf.VerifyHostname(host); err != nil {
		return Info{}, fmt.Errorf("%w: it does not name this device's hostname %q (it names %s)", ErrInvalid, host, strings.Join(leafNames(leaf), ", "))
	}
	var file bytes.Buffer
	for _, der := range pair.Certificate {
		_ = pem.Encode(&file, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(pair.PrivateKey)
	if err != nil {
		return Info{}, fmt.Errorf("%w: the private key: %v", ErrInvalid, err)
	}
	_ = pem.Encode(&file, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := atomicfile.Write(filepath.Join(s.dir, OwnerFile), file.Bytes(), 0o600); err != nil {
		return Info{}, fmt.Errorf("tlscert: store the imported certificate: %w", err)
	}
	own := served{cert: &pair, info: describe(leaf, SourceOwner)}
	s.cur.Store(&own)
	s.log.Warn("serving an imported certificate", "fingerprint_sha256", own.info.Fingerprint, "names", own.info.Names)
	return own.info, nil
}

// checkServerLeaf refuses a certificate the browsers would not take from a
// server, as they would refuse it only at the next connection, with no
// way past the error and no page left to import another: a key type they
// do not speak (Ed25519), a weak or oversized RSA key, key usages without
// the signature a TLS server makes, extended key usages without serverAuth.
func checkServerLeaf(leaf *x509.Certificate) error {
	switch k := leaf.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("its ECDSA key is on %s; browsers take P-256 and P-384", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > 4096 {
			return fmt.Errorf("its RSA key has %d bits; 2048 to 4096 are accepted", n)
		}
	default:
		return fmt.Errorf("its key is %s; browsers take ECDSA (P-256, P-384) and RSA", leaf.PublicKeyAlgorithm)
	}
	// TLS 1.3 and every ECDHE exchange sign with the key; browsers hold
	// RSA certificates to it too.
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return errors.New("its key usage does not allow digital signatures, which a TLS server makes")
	}
	if len(leaf.ExtKeyUsage) > 0 || len(leaf.UnknownExtKeyUsage) > 0 {
		if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
			return errors.New("its extended key usage does not include TLS server authentication (serverAuth)")
		}
	}
	return nil
}

// UseDevice goes back to the device certificate and deletes the imported
// one.
func (s *Store) UseDevice() (Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := filepath.Join(s.dir, OwnerFile)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Info{}, fmt.Errorf("tlscert: remove the imported certificate: %w", err)
	}
	if err := atomicfile.SyncDir(s.dir); err != nil {
		return Info{}, fmt.Errorf("tlscert: %w", err)
	}
	s.cur.Store(&s.device)
	return s.device.info, nil
}

// makeDevice makes, stores and returns a new device certificate for
// s.names.
func (s *Store) makeDevice() (served, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return served{}, fmt.Errorf("tlscert: key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return served{}, fmt.Errorf("tlscert: serial: %w", err)
	}
	dns := s.names.DNSNames()
	notBefore := deviceNotBefore
	if now := s.clock.Now().Add(-24 * time.Hour); now.Before(notBefore) {
		notBefore = now
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: dns[0]},
		NotBefore:             notBefore,
		NotAfter:              deviceNotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           s.names.Addrs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return served{}, fmt.Errorf("tlscert: certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return served{}, fmt.Errorf("tlscert: key: %w", err)
	}
	file := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	file = append(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	if err := atomicfile.Write(filepath.Join(s.dir, DeviceFile), file, 0o600); err != nil {
		return served{}, fmt.Errorf("tlscert: store the device certificate: %w", err)
	}
	return parsePair(file, SourceDevice)
}

// loadFile reads a stored chain-and-key file.
func loadFile(path, source string) (served, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return served{}, err
	}
	sv, err := parsePair(raw, source)
	if err != nil {
		return served{}, fmt.Errorf("%s: %w", path, err)
	}
	return sv, nil
}

func parsePair(raw []byte, source string) (served, error) {
	pair, err := keyPair(raw, raw)
	if err != nil {
		return served{}, fmt.Errorf("tlscert: %s", plainPairError(err))
	}
	return served{cert: &pair, info: describe(pair.Leaf, source)}, nil
}

// keyPair is tls.X509KeyPair with the leaf always parsed: it is left nil
// where GODEBUG x509keypairleaf=0 (the default of a GOPATH-mode build).
func keyPair(chainPEM, keyPEM []byte) (tls.Certificate, error) {
	pair, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil || pair.Leaf != nil {
		return pair, err
	}
	pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0])
	return pair, err
}

// Inspect describes the certificate stored at path (authd cert).
func Inspect(path string) (Info, error) {
	source := SourceDevice
	if filepath.Base(path) == OwnerFile {
		source = SourceOwner
	}
	sv, err := loadFile(path, source)
	return sv.info, err
}

func describe(leaf *x509.Certificate, source string) Info {
	return Info{Source: source, Fingerprint: Fingerprint(leaf.Raw), SPKI: SPKIHash(leaf), Subject: leaf.Subject.CommonName,
		Names: leafNames(leaf), NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC()}
}

func leafNames(leaf *x509.Certificate) []string {
	names := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = []string{leaf.Subject.CommonName}
	}
	return names
}

// Fingerprint is the SHA-256 of a DER certificate as colon-separated
// upper-case hex, the form browsers show.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// SPKIHash is the base64 SHA-256 of a certificate's public key.
func SPKIHash(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// plainPairError words tls.X509KeyPair's errors for an owner.
func plainPairError(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "private key does not match public key"):
		return "the private key does not belong to the certificate"
	case strings.Contains(msg, "failed to find any PEM data in certificate input"):
		return "no PEM certificate found (expected -----BEGIN CERTIFICATE-----)"
	case strings.Contains(msg, "failed to find any PEM data in key input"), strings.Contains(msg, "failed to find PEM block with type ending in \"PRIVATE KEY\""):
		return "no PEM private key found (expected -----BEGIN ... PRIVATE KEY-----)"
	}
	return strings.TrimPrefix(msg, "tls: ")
}
