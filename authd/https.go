package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rknas/firmware/authd/api"
	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/mdns"
	"github.com/rknas/firmware/authd/tlscert"
)

// tlsDir is where the certificates live, under the state directory.
const tlsDir = "tls"

// certCommand is "authd cert": it prints the certificate authd serves (or
// will serve) from the state directory, so the owner can compare its
// fingerprint with what the browser shows.
func certCommand(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("authd cert", flag.ContinueOnError)
	fset.SetOutput(stderr)
	state := fset.String("state", "/state/authd", "authd's state directory")
	if err := fset.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	dir := filepath.Join(*state, tlsDir)
	info, err := tlscert.Inspect(filepath.Join(dir, tlscert.OwnerFile))
	if errors.Is(err, fs.ErrNotExist) {
		info, err = tlscert.Inspect(filepath.Join(dir, tlscert.DeviceFile))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no certificate in %s yet: authd makes the device certificate at its first start with -tls auto", dir)
	}
	if err != nil {
		return err
	}
	printCert(stdout, info)
	return nil
}

func printCert(w io.Writer, info tlscert.Info) {
	source := "the device's own certificate (self-signed)"
	if info.Source == tlscert.SourceOwner {
		source = "the owner's imported certificate"
	}
	fmt.Fprintf(w, "certificate: %s\n", source)
	fmt.Fprintf(w, "SHA-256 fingerprint: %s\n", info.Fingerprint)
	fmt.Fprintf(w, "public key SHA-256 (base64): %s\n", info.SPKI)
	fmt.Fprintf(w, "names: %s\n", strings.Join(info.Names, ", "))
	notAfter := info.NotAfter.Format(time.DateOnly)
	if info.NotAfter.Year() == 9999 {
		notAfter = "no expiry"
	}
	fmt.Fprintf(w, "valid: from %s, %s\n", info.NotBefore.Format(time.DateOnly), notAfter)
}

// certNames are the names and addresses the device certificate is made
// for: the hostname and the addresses authd listens on (all of the
// machine's when it listens on every address).
func certNames(listen string) tlscert.Names {
	host, _ := os.Hostname()
	n := tlscert.Names{Hostname: host}
	h, _, _ := net.SplitHostPort(listen)
	if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
		n.Addrs = []net.IP{ip}
		return n
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
			n.Addrs = append(n.Addrs, ipn.IP)
		}
	}
	return n
}

// openCertificates opens the device certificate store for -tls auto.
func openCertificates(o *options, log *slog.Logger) (*tlscert.Store, error) {
	certs, err := tlscert.Open(filepath.Join(o.state, tlsDir), certNames(o.listen), clock.System{}, log.With("component", "tls"))
	if err != nil {
		return nil, err
	}
	info := certs.Info()
	log.Info("HTTPS certificate", "source", info.Source, "fingerprint_sha256", info.Fingerprint, "names", strings.Join(info.Names, ","))
	return certs, nil
}

// followHostname makes a new device certificate when the hostname changes
// (the network settings or a RESET set it). Polled: nothing else tells,
// and a rename is rare enough that a few seconds late costs nothing.
func followHostname(ctx context.Context, certs *tlscert.Store, listen string, log *slog.Logger) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if changed, err := certs.SetNames(certNames(listen)); err != nil {
			log.Error("new device certificate for the new hostname failed", "err", err)
		} else if changed {
			log.Info("hostname changed: new device certificate", "fingerprint_sha256", certs.Device().Fingerprint)
		}
	}
}

// tlsConfig is the HTTPS configuration: TLS 1.2 at least, and the
// certificate looked up at each handshake so an import or a regeneration
// applies to the next connection without a restart. TLS 1.2 is held to
// forward-secret AEAD suites: Go still offers the CBC ones with SHA-1 MACs,
// which every browser that speaks TLS 1.2 can do without. (TLS 1.3's suites
// are all AEAD and not configurable.)
func tlsConfig(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: get, CipherSuites: tls12Suites}
}

// tls12Suites are the TLS 1.2 suites served, for the device's ECDSA key and
// an imported RSA one.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// redirectHandler answers plain HTTP: health checks as they are, anything
// else with a redirect to the same path over HTTPS on the port httpsPort
// gives at the time. Nothing
// else is served in clear text, so no password or cookie crosses the LAN
// unencrypted.
func redirectHandler(health http.Handler, httpsPort func() int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			health.ServeHTTP(w, r)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" {
			http.Error(w, "this device answers over HTTPS only", http.StatusBadRequest)
			return
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		if port := httpsPort(); port != 443 {
			host += ":" + strconv.Itoa(port)
		}
		// Only the path and query go along: the host is checked by the
		// HTTPS side, and a redirect never carries a body.
		target := "https://" + host + r.URL.RequestURI()
		w.Header().Set("Cache-Control", "no-store")
		// 302, not 301: a browser keeps a 301 forever, and the HTTPS port
		// can change.
		http.Redirect(w, r, target, http.StatusFound)
	})
}

// servedPort is the HTTPS port to announce: the confirmed one of the
// owner's port settings (a change on trial is not announced until it is
// confirmed), -listen's when authd serves no port settings.
func servedPort(listen int, ports api.PortSettings) int {
	if ports != nil {
		if cur, _ := ports.Current(); cur.HTTPS != 0 {
			return cur.HTTPS
		}
	}
	return listen
}

// announce keeps the device announced over mDNS as <hostname>.local with an
// _https._tcp service on the port authd serves, on the interfaces authd
// manages (all when it manages none), until ctx ends.
func announce(ctx context.Context, o *options, sys *api.System, log *slog.Logger) {
	_, portText, _ := net.SplitHostPort(o.listen)
	port, err := strconv.Atoi(portText)
	if err != nil || port == 0 {
		log.Warn("not announced on the LAN: -listen names no fixed port", "listen", o.listen)
		return
	}
	current := func() (mdns.Config, error) {
		host, err := os.Hostname()
		if err != nil {
			return mdns.Config{}, err
		}
		host, _, _ = strings.Cut(host, ".")
		var managed []string
		if sys.Network != nil {
			for _, i := range sys.Network.Current().Interfaces {
				managed = append(managed, i.Name)
			}
		}
		ifaces := mdns.Interfaces(managed)
		if len(ifaces) == 0 {
			return mdns.Config{}, mdns.ErrNoInterface
		}
		model := sys.Board.Model
		if model == "" {
			model = "NAS"
		}
		// A dot would split the instance's DNS label.
		instance := strings.NewReplacer(".", " ", "\\", " ").Replace(model) + " (" + host + ")"
		if len(instance) > 63 {
			instance = host
		}
		// Looked up each time: the owner may move the HTTPS port.
		return mdns.Config{Hostname: host, Instance: instance, Port: servedPort(port, sys.Ports), Ifaces: ifaces,
			Text: map[string]string{"model": model, "board": sys.Board.Name, "version": sys.Version, "path": "/"}}, nil
	}
	mdns.Keep(ctx, current, 10*time.Second, log.With("component", "mdns"))
}
