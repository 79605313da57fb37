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
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/api"
	"github.com/rknas/firmware/authd/atomicfile"
	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/connlimit"
	"github.com/rknas/firmware/authd/control"
	"github.com/rknas/firmware/authd/mail"
	"github.com/rknas/firmware/authd/netconf"
	"github.com/rknas/firmware/authd/portconf"
	"github.com/rknas/firmware/authd/store"
	"github.com/rknas/firmware/authd/tlscert"
	"github.com/rknas/firmware/authd/web"
	"github.com/rknas/firmware/board/provision"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// errConfig marks errors a restart cannot fix.
var errConfig = errors.New("configuration error")

type options struct {
	state           string
	listen          string
	defaultPassFile string
	defaultHostname string
	secretConsole   string
	board           string
	deviceName      string
	tls             string
	tlsCert         string
	tlsKey          string
	httpRedirect    string
	mdns            bool
	hashTime        uint
	hashMemKiB      uint
	hashThreads     uint
	hashCap         int
	deviceTTL       time.Duration
	logLevel        string
	ntp             string
	setClock        bool
	manageNetwork   bool
	confirmTimeout  time.Duration
	controlSocket   string
	startGate       int
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("authd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: authd [flags]\n       authd version\n       authd board [-json] [-board NAME|auto]\n       authd cert [-state DIR]\n\nauthd serves the NAS login API (see docs/api.yaml).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.state, "state", "/state/authd", "directory for the database and other state (created 0700)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to serve the API on, host:port")
	fs.StringVar(&o.defaultPassFile, "default-password-file", "", "file holding this device's default admin password, provisioned by the firmware; "+
		"without it a random password is generated on first start, stored 0600 in the state directory and printed once")
	fs.StringVar(&o.defaultHostname, "default-hostname", "", "this device's hostname, provisioned by the flasher: the network configuration's default, "+
		"which a RESET puts back (default: "+netconf.DefaultHostname+")")
	fs.StringVar(&o.secretConsole, "secret-console", "", "where a generated default password is shown, once: a terminal no log "+
		"collects (the firmware passes /dev/console); default: standard error")
	fs.StringVar(&o.board, "board", "auto", "board profile: a name, auto (detect from the device tree) or none")
	fs.StringVar(&o.deviceName, "device-name", "", "name shown in authenticator apps and mails (default: the hostname)")
	fs.StringVar(&o.tls, "tls", "off", "auto: serve HTTPS on -listen with the device's own certificate, made on first start in the state directory "+
		"(authd cert prints its fingerprint); off: plain HTTP, for development")
	fs.StringVar(&o.httpRedirect, "http-redirect", "", "also listen on this host:port for plain HTTP, answered only with a redirect to HTTPS (and /healthz); needs HTTPS")
	fs.BoolVar(&o.mdns, "mdns", false, "announce <hostname>.local and an _https._tcp service over multicast DNS on the managed interfaces (the firmware sets it)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM) instead of the device's own; needs -tls-key")
	fs.StringVar(&o.tlsKey, "tls-key", "", "private key (PEM) for -tls-cert")
	fs.UintVar(&o.hashTime, "argon2-time", uint(account.DefaultParams.Time), "argon2id passes")
	fs.UintVar(&o.hashMemKiB, "argon2-memory", uint(account.DefaultParams.MemKiB), "argon2id memory in KiB")
	fs.UintVar(&o.hashThreads, "argon2-threads", uint(account.DefaultParams.Threads), "argon2id lanes")
	fs.IntVar(&o.hashCap, "hash-concurrency", 0, "password hashes allowed at once (0: sized from available memory)")
	fs.DurationVar(&o.deviceTTL, "trusted-device-ttl", 30*24*time.Hour, "how long \"trust this device\" skips the code step")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.ntp, "ntp", "", "NTP servers, comma-separated host[:port] (default: pool.ntp.org,time.cloudflare.com); "+
		"settings saved through the API take precedence")
	fs.BoolVar(&o.setClock, "set-clock", true, "correct the system clock and RTC from NTP (false: measure and report only, for development hosts)")
	fs.BoolVar(&o.manageNetwork, "manage-network", false, "own the network configuration: apply it at start, serve /api/v1/settings/network, reset it to DHCP on a physical reset")
	fs.StringVar(&o.controlSocket, "control-socket", control.DefaultPath, "Unix socket (root only) through which the serial rescue console reaches authd; empty: none")
	fs.DurationVar(&o.confirmTimeout, "network-confirm-timeout", 120*time.Second, "a network change not confirmed within this time is rolled back")
	fs.IntVar(&o.startGate, "start-gate-fd", 0, "open the database, then wait until this inherited file descriptor reads \"go\" before "+
		"starting anything else (uinit starts authd during the boot's failsafe window); closed without it: end")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w: %v", errConfig, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", errConfig, fs.Arg(0))
	}
	if _, _, err := net.SplitHostPort(o.listen); err != nil {
		return nil, fmt.Errorf("%w: -listen %q: %v", errConfig, o.listen, err)
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, fmt.Errorf("%w: -tls-cert and -tls-key go together", errConfig)
	}
	switch {
	case o.tls != "auto" && o.tls != "off":
		return nil, fmt.Errorf("%w: -tls %q: auto or off", errConfig, o.tls)
	case o.tls == "auto" && o.tlsCert != "":
		return nil, fmt.Errorf("%w: -tls auto and -tls-cert exclude each other", errConfig)
	case o.httpRedirect != "" && o.tls == "off" && o.tlsCert == "":
		return nil, fmt.Errorf("%w: -http-redirect needs HTTPS (-tls auto or -tls-cert)", errConfig)
	}
	if o.httpRedirect != "" {
		host, port, err := splitPort(o.httpRedirect)
		listenHost, _, _ := net.SplitHostPort(o.listen)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%w: -http-redirect %q: %v", errConfig, o.httpRedirect, err)
		case port == 0:
			return nil, fmt.Errorf("%w: -http-redirect %q: name a port", errConfig, o.httpRedirect)
		case host != listenHost:
			return nil, fmt.Errorf("%w: -http-redirect %q: use the address of -listen (%q)", errConfig, o.httpRedirect, listenHost)
		}
	}
	if o.hashThreads > 255 {
		return nil, fmt.Errorf("%w: -argon2-threads %d: at most 255", errConfig, o.hashThreads)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "version" {
		fmt.Fprintln(stdout, "authd", version)
		return nil
	}
	if len(args) > 0 && args[0] == "board" {
		return boardCommand(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "cert" {
		return certCommand(args[1:], stdout, stderr)
	}
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) || (err != nil && strings.Contains(err.Error(), flag.ErrHelp.Error())) {
		return nil
	}
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("%w: -log-level %q: %v", errConfig, o.logLevel, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if err := control.PrivateDir(o.state); err != nil {
		return fmt.Errorf("%w: -state %s: %v", errConfig, o.state, err)
	}
	secretOut, closeSecret := secretConsole(o.secretConsole, stderr)
	defaultPass, source, err := defaultPassword(o, secretOut)
	closeSecret()
	if err != nil {
		return err
	}
	log.Info("default admin password available", "source", source)

	params := account.Params{Time: uint32(o.hashTime), MemKiB: uint32(o.hashMemKiB), Threads: uint8(o.hashThreads),
		KeyLen: account.DefaultParams.KeyLen, SaltLen: account.DefaultParams.SaltLen}
	if err := params.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	hashCap := o.hashCap
	if hashCap <= 0 {
		hashCap = account.CapFromMemory(params)
	}
	hasher, err := account.NewHasher(params, hashCap, 3*time.Second)
	if err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	hasher.OnIdle(returnMemoryWhenIdle(ctx, 500*time.Millisecond))
	// A soft memory limit makes the garbage collector hand argon2's
	// buffers back before the heap grows past what the cap allows.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(hashCap)*int64(params.MemKiB)*1024 + 16<<20)
	}
	log.Info("password hashing", "argon2_time", params.Time, "argon2_memory_kib", params.MemKiB, "argon2_threads", params.Threads, "concurrency", hashCap)

	db, err := store.Open(filepath.Join(o.state, "auth.db"))
	if err != nil {
		if errors.Is(err, store.ErrCorrupt) {
			return fmt.Errorf("%w: %v (the file was left untouched; the rescue console's set-aside-database keeps it aside so a new one is made)", errConfig, err)
		}
		if errors.Is(err, store.ErrForeign) || errors.Is(err, store.ErrTooNew) {
			return fmt.Errorf("%w: %v (the file was left untouched; move it away to start with a fresh database)", errConfig, err)
		}
		return err
	}
	defer db.Close()

	cfg := auth.DefaultConfig()
	cfg.DefaultPassword = defaultPass
	cfg.TrustedDeviceTTL = o.deviceTTL
	cfg.DeviceName = o.deviceName
	if cfg.DeviceName == "" {
		cfg.DeviceName, _ = os.Hostname()
		if cfg.DeviceName == "" {
			cfg.DeviceName = "NAS"
		}
	}
	svc, err := auth.New(ctx, cfg, auth.Deps{Store: db, Clock: clock.System{}, Hasher: hasher, Log: log})
	if err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	srv := api.New(svc, log, cfg.TrustedDeviceTTL)
	web.Attach(srv)
	if o.startGate > 0 {
		if err := waitStartGate(ctx, os.NewFile(uintptr(o.startGate), "start-gate"), log); err != nil {
			return err
		}
	}
	sys, err := startSystem(ctx, o, svc, hasher, defaultPass, log)
	if err != nil {
		return err
	}
	defer sys.close()
	sys.ready = append(sys.ready, func() { go web.Prepare() })
	// The certificate follows the hostname, which the network settings
	// applied by startSystem may have just set.
	var certs *tlscert.Store
	if o.tls == "auto" {
		if certs, err = openCertificates(o, log); err != nil {
			return err
		}
		sys.api.TLS = certs
		hostCtx, stopHost := context.WithCancel(ctx)
		defer stopHost()
		go followHostname(hostCtx, certs, o.listen, log)
	}
	srv.SetHostNames(func() []string { return hostNames(certs) })
	srv.AttachSystem(sys.api)
	if o.mdns {
		// Announced once authd answers: a name that leads to no listener
		// helps no one, and on a slow board the responder's start (its
		// probes and interface scans) took a fifth of authd's.
		mdnsCtx, stopMDNS := context.WithCancel(ctx)
		mdnsDone, answering := make(chan struct{}), make(chan struct{})
		sys.ready = append(sys.ready, func() { close(answering) })
		go func() {
			defer close(mdnsDone)
			select {
			case <-answering:
				announce(mdnsCtx, o, sys.api, log)
			case <-mdnsCtx.Done():
			}
		}()
		defer func() { stopMDNS(); <-mdnsDone }()
	}

	mailer, err := mail.New(mail.Config{StateDir: o.state, DeviceName: cfg.DeviceName, Clock: clock.System{}, Logger: log})
	if err != nil {
		return fmt.Errorf("%w: mail: %v", errConfig, err)
	}
	svc.SetCodeMailer(mailer)
	svc.SetNotifier(auth.MailNotifier{Mailer: mailer, Log: log})
	srv.AttachMail(mailer)
	mailCtx, stopMail := context.WithCancel(ctx)
	mailDone := make(chan struct{})
	go func() {
		defer close(mailDone)
		if err := mailer.Run(mailCtx); err != nil {
			log.Error("mail outbox stopped", "err", err)
		}
	}()
	defer func() { stopMail(); <-mailDone }()
	return serve(ctx, o, srv.Handler(), certs, sys, log)
}

// hostNames are the names the device answers to besides its addresses:
// its hostname, <hostname>.local, and an imported certificate's names.
func hostNames(certs *tlscert.Store) []string {
	if certs == nil {
		host, _ := os.Hostname()
		return tlscert.Names{Hostname: host}.DNSNames()
	}
	names := tlscert.Names{Hostname: certs.Hostname()}.DNSNames()
	if info := certs.Info(); info.Source == tlscert.SourceOwner {
		names = append(names, info.Names...)
	}
	return names
}

func serve(ctx context.Context, o *options, h http.Handler, certs *tlscert.Store, sys *system, log *slog.Logger) error {
	var tc *tls.Config
	switch {
	case certs != nil:
		tc = tlsConfig(certs.GetCertificate)
	case o.tlsCert != "":
		pair, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("%w: -tls-cert %s, -tls-key %s: %v", errConfig, o.tlsCert, o.tlsKey, err)
		}
		tc = tlsConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &pair, nil })
	}
	if tc == nil {
		return servePlain(ctx, o, h, sys, log)
	}
	// HTTPS: the ports are the owner's to change (portconf), starting from
	// -listen and -http-redirect.
	host, httpsPort, _ := splitPort(o.listen)
	def := portconf.Ports{HTTPS: httpsPort}
	if o.httpRedirect != "" {
		_, def.HTTP, _ = splitPort(o.httpRedirect)
	}
	var ports atomic.Pointer[portconf.Manager]
	errc := make(chan error, 4)
	// One limit over every port served, a trial port's included.
	conns := connlimit.New(connlimit.DefaultLimits, log.With("component", "connections"))
	errLog := newHTTPErrorLog(log)
	serveOne := func(ln net.Listener, secure bool) portconf.Server {
		ln = conns.Listen(ln)
		var hs *http.Server
		if secure {
			hs = newHTTPServer(h, errLog, conns)
			hs.TLSConfig = tc
		} else {
			hs = newHTTPServer(redirectHandler(h, func() int {
				if m := ports.Load(); m != nil {
					cur, _ := m.Current()
					return cur.HTTPS
				}
				return def.HTTPS
			}), errLog, conns)
			log.Info("plain HTTP answered with redirects", "listen", ln.Addr().String())
		}
		go func() {
			var err error
			if secure {
				err = hs.ServeTLS(ln, "", "")
			} else {
				err = hs.Serve(ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
		return hs
	}
	m, err := portconf.New(portconf.Options{Dir: o.state, Host: host, Default: def, ConfirmTimeout: o.confirmTimeout,
		Serve: serveOne, Log: log.With("component", "ports")})
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ports.Store(m)
	sys.api.Ports = m
	defer m.Close()
	cur, _ := m.Current()
	shown := host
	if shown == "" {
		shown = "::"
	}
	attrs := []any{"url", "https://" + net.JoinHostPort(shown, strconv.Itoa(cur.HTTPS)), "version", version}
	if certs != nil {
		attrs = append(attrs, "certificate_sha256", certs.Info().Fingerprint)
	}
	log.Info("authd ready", attrs...)
	sys.started()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	return nil
}

// errGateClosed: the start gate closed without "go" (the board starts in
// failsafe mode, without authd).
var errGateClosed = fmt.Errorf("%w: the boot did not let authd start (failsafe mode): nothing was started", errConfig)

// waitStartGate reads the gate to its end: "go" lets the start go on, as
// the network, the reset button, the recovery journal and the listeners
// come after it; anything else, or ctx ending, stops it.
func waitStartGate(ctx context.Context, gate *os.File, log *slog.Logger) error {
	defer gate.Close()
	log.Info("waiting for the boot's failsafe window before starting")
	read := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(gate, 64))
		read <- strings.TrimSpace(string(b))
	}()
	select {
	case got := <-read:
		if got != "go" {
			return errGateClosed
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// started runs once authd answers: it gives the start's garbage back to
// the system, so an idle authd stays small (a full collection is a
// noticeable part of a start on a slow board, and the first login need not
// wait for it), then starts the work that was left for after the start.
func (s *system) started() {
	debug.FreeOSMemory()
	for _, f := range s.ready {
		f()
	}
}

// servePlain serves plain HTTP on -listen: development only.
func servePlain(ctx context.Context, o *options, h http.Handler, sys *system, log *slog.Logger) error {
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	conns := connlimit.New(connlimit.DefaultLimits, log.With("component", "connections"))
	hs := newHTTPServer(h, newHTTPErrorLog(log), conns)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(conns.Listen(ln)) }()
	log.Info("authd ready", "url", "http://"+ln.Addr().String(), "version", version)
	sys.started()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}

// splitPort splits host:port with a numeric port.
func splitPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q: a number from 0 to 65535", p)
	}
	return host, port, nil
}

// secretConsole opens where a generated password may be shown: path (a
// console device whose output no log collects) or, when empty, w. When path
// cannot be opened it says so on w and returns nil: w is where the log goes
// on a board, so the password is not shown at all, only kept in its file.
func secretConsole(path string, w io.Writer) (io.Writer, func()) {
	if path == "" {
		return w, func() {}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOCTTY, 0)
	if err != nil {
		fmt.Fprintf(w, "authd: -secret-console %s: %v; a generated default password is not shown: it is kept in %s, mode 0600, in the state directory\n",
			path, err, account.DefaultPasswordFile)
		return nil, func() {}
	}
	return f, func() { f.Close() }
}

// defaultPassword returns the device's default admin password and where it
// came from: the provisioned file, or one generated on first start.
func defaultPassword(o *options, console io.Writer) (string, string, error) {
	if o.defaultPassFile != "" {
		p, err := account.ReadPasswordFile(o.defaultPassFile)
		if err != nil {
			return "", "", fmt.Errorf("%w: -default-password-file: %v", errConfig, err)
		}
		return p, o.defaultPassFile, nil
	}
	path := filepath.Join(o.state, account.DefaultPasswordFile)
	p, err := account.ReadPasswordFile(path)
	if err == nil {
		return p, path + " (generated on first start)", nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("%w: %v", errConfig, err)
	}
	p, err = provision.NewPassword()
	if err != nil {
		return "", "", fmt.Errorf("generate default password: %w", err)
	}
	if err := atomicfile.Write(path, []byte(p+"\n"), 0o600); err != nil {
		return "", "", err
	}
	// Printed once, on the console only (never through the logger): this
	// is how the owner learns it when no password was provisioned.
	if console != nil {
		fmt.Fprintf(console, "authd: default admin password: %s (generated on first start, stored in %s)\n", p, path)
	}
	return p, path + " (generated now)", nil
}

// returnMemoryWhenIdle returns a hook for the hasher's idle moments: once
// no hash has run for quiet, it gives the freed argon2 buffers back to the
// system (debug.FreeOSMemory), so an idle authd keeps only what it uses.
// The wait keeps a burst of logins from paying a collection after each.
func returnMemoryWhenIdle(ctx context.Context, quiet time.Duration) func() {
	kick := make(chan struct{}, 1)
	go func() {
		t := time.NewTimer(quiet)
		t.Stop()
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-kick:
				t.Reset(quiet)
			case <-t.C:
				debug.FreeOSMemory()
			}
		}
	}()
	return func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
}
