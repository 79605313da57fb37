package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/api"
	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/recovery"
	"github.com/rknas/firmware/authd/store"
	"github.com/rknas/firmware/authd/tlscert"
)

// newTestService returns a login service on a fresh database in dir, with
// cheap hashing, and its database and hasher.
func newTestService(t *testing.T, dir, defaultPass string, log *slog.Logger) (*auth.Service, *store.Store, *account.Hasher) {
	t.Helper()
	db, err := store.Open(filepath.Join(dir, "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	hasher, err := account.NewHasher(account.Params{Time: 1, MemKiB: 8 * 1024, Threads: 1, KeyLen: 32, SaltLen: 16}, 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg := auth.DefaultConfig()
	cfg.DefaultPassword = defaultPass
	svc, err := auth.New(context.Background(), cfg, auth.Deps{Store: db, Clock: clock.System{}, Hasher: hasher, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return svc, db, hasher
}

type failingNetwork struct{}

func (failingNetwork) ResetToDefault(context.Context) error {
	return errors.New("the power went before the network was reset")
}

// TestStartFinishesAnInterruptedReset: a physical reset cut short after its
// admin step is finished when authd starts, before anything is served.
func TestStartFinishesAnInterruptedReset(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	const defaultPass = "Dflt-Pass-1234"
	svc, db, hasher := newTestService(t, dir, defaultPass, log)
	cut := recovery.Deps{Store: db, Hasher: hasher, DefaultPassword: defaultPass, Network: failingNetwork{}, Clock: clock.System{}, Log: log}
	if err := recovery.Run(ctx, cut, "button"); err == nil {
		t.Fatal("the recovery finished with its network step failing")
	}
	if _, ok, _ := recovery.LastRecovery(db); ok {
		t.Fatal("a half-done recovery is recorded as finished")
	}

	o := &options{state: dir, board: "none", ntp: "127.0.0.1:9", setClock: false}
	sys, err := startSystem(ctx, o, svc, hasher, defaultPass, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.close()
	last, ok, err := recovery.LastRecovery(db)
	if err != nil || !ok || last.Source != "button" {
		t.Fatalf("after start the interrupted reset is not finished: %+v ok=%v err=%v", last, ok, err)
	}
}

// TestPrecomputeHashWaitsForTheStart: the default password's hash is not
// computed while authd starts (it would take the CPU from the start on a
// slow board), but as soon as start is called, or at once when the reset
// asks for it first; either way it is computed once and matches.
func TestPrecomputeHashWaitsForTheStart(t *testing.T) {
	params := account.Params{Time: 1, MemKiB: 8 * 1024, Threads: 1, KeyLen: 32, SaltLen: 16}
	for _, tc := range []struct {
		name       string
		startFirst bool
	}{
		{"started once ready", true},
		{"asked for before the start", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			hasher, err := account.NewHasher(params, 2, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			get, start := precomputeHash(ctx, hasher, "default pass")
			time.Sleep(20 * time.Millisecond) // a hash started anyway would be counted by now or below
			if n := hasher.Runs(); n != 0 {
				t.Fatalf("%d hashes before the start", n)
			}
			if tc.startFirst {
				start()
				deadline := time.Now().Add(30 * time.Second)
				for hasher.Runs() == 0 && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				if hasher.Runs() != 1 {
					t.Fatalf("start: %d hashes, want 1", hasher.Runs())
				}
			}
			for range 2 {
				hash, err := get(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if ok, err := hasher.Verify(ctx, "default pass", hash); err != nil || !ok {
					t.Fatalf("the precomputed hash does not match the password: %v, %v", ok, err)
				}
			}
			start()
			if n := hasher.Runs(); n != 3 { // one hash and the two checks above
				t.Fatalf("%d argon2 runs, want 3", n)
			}
		})
	}
}

// TestConsoleNewCertificateRemovesAnImportedOne: the serial console's new
// certificate is the way back from an imported certificate that broke the
// pages: the imported one goes, a new device certificate is served, and the
// audit log says so.
func TestConsoleNewCertificateRemovesAnImportedOne(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, _, _ := newTestService(t, dir, "Dflt-Pass-1234", log)
	certs, err := tlscert.Open(filepath.Join(dir, "tls"), tlscert.Names{Hostname: "rknas-test"}, clock.System{}, log)
	if err != nil {
		t.Fatal(err)
	}
	device := certs.Info()

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "rknas-test"}, DNSNames: []string{"rknas-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	if _, err := certs.Import(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		t.Fatal(err)
	}

	fp, err := controlBackend{svc: svc, sys: &api.System{TLS: certs}}.NewCertificate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if now := certs.Info(); now.Source != tlscert.SourceDevice || now.Fingerprint != fp || fp == device.Fingerprint {
		t.Errorf("after the console's new certificate: %+v (the device's was %s)", now, device.Fingerprint)
	}
	if _, err := os.Stat(filepath.Join(dir, "tls", tlscert.OwnerFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the imported certificate's file is still there: %v", err)
	}
	entries, err := svc.AuditLogMatching(1, 0, store.AuditFilter{Event: "certificate_regenerated"})
	if err != nil || len(entries) != 1 || !strings.Contains(entries[0].Detail, "the imported certificate removed") {
		t.Errorf("audit: %+v (%v)", entries, err)
	}
}
