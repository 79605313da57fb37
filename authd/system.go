package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/api"
	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/button"
	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/control"
	"github.com/rknas/firmware/authd/netconf"
	"github.com/rknas/firmware/authd/recovery"
	"github.com/rknas/firmware/authd/store"
	"github.com/rknas/firmware/authd/timesync"
	"github.com/rknas/firmware/authd/tlscert"
	"github.com/rknas/firmware/board"
)

// selectBoard resolves the -board flag.
func selectBoard(name string) (board.Profile, error) {
	switch name {
	case "auto", "":
		return board.Detect(), nil
	case "none":
		return board.NoneProfile("chosen with -board none"), nil
	}
	p, err := board.ByName(name)
	if err != nil {
		return p, fmt.Errorf("%w: -board %q: %v", errConfig, name, err)
	}
	return p, nil
}

// boardCommand prints the board profile authd would use.
func boardCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("authd board", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the profile as JSON")
	name := fs.String("board", "auto", "board profile: a name or auto")
	list := fs.Bool("list", false, "list the supported boards")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	if *list {
		for _, p := range board.All() {
			fmt.Fprintf(stdout, "%-26s %s\n", p.Name, p.Model)
		}
		return nil
	}
	p, err := selectBoard(*name)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	}
	fmt.Fprintln(stdout, p.Describe())
	return nil
}

// clockState lets the auth core ask timesync how far to trust the clock.
type clockState struct{ ts *timesync.Service }

func (c clockState) Synchronized() bool { return c.ts.State() == timesync.StateSynchronized }
func (c clockState) Trusted() bool      { return c.ts.State() != timesync.StateUntrusted }

// reportOnlySetter measures without touching the clock: for development
// hosts, whose clock belongs to the host.
type reportOnlySetter struct{ log *slog.Logger }

func (r reportOnlySetter) Step(t time.Time) error {
	r.log.Info("clock step not applied (-set-clock=false)", "to", t.UTC())
	return nil
}

func (r reportOnlySetter) Slew(d time.Duration) error {
	r.log.Info("clock slew not applied (-set-clock=false)", "by", d)
	return nil
}

// system is everything besides the login core: clock, network, button.
type system struct {
	api     *api.System
	closers []func()
	// ready run once authd answers: work that need not delay its start.
	ready []func()
	wg    sync.WaitGroup
}

func (s *system) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.wg.Wait()
}

func startSystem(ctx context.Context, o *options, svc *auth.Service, hasher *account.Hasher, defaultPass string, log *slog.Logger) (*system, error) {
	prof, err := selectBoard(o.board)
	if err != nil {
		return nil, err
	}
	log.Info("board", "profile", prof.Name, "reason", prof.Reason)
	s := &system{api: &api.System{Version: version, Started: time.Now(), Board: prof}}

	// Time first: TOTP codes depend on it.
	settings := timesync.DefaultSettings()
	if o.ntp != "" {
		servers, err := timesync.ParseServers(o.ntp)
		if err != nil {
			return nil, fmt.Errorf("%w: -ntp: %v", errConfig, err)
		}
		settings.Servers = servers
	}
	var setter timesync.Setter = timesync.SystemSetter{}
	var rtc timesync.RTC
	if o.setClock {
		rtc = timesync.DetectRTC(timesync.DefaultRTCPath)
	} else {
		setter = reportOnlySetter{log: log}
	}
	ts, err := timesync.New(timesync.Config{StateDir: o.state, Settings: settings},
		timesync.Deps{Setter: setter, RTC: rtc, Clock: clock.System{}, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("%w: time: %v", errConfig, err)
	}
	svc.SetClockState(clockState{ts})
	s.api.Time = ts
	runCtx, cancel := context.WithCancel(ctx)
	s.closers = append(s.closers, cancel)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := ts.Run(runCtx); err != nil {
			log.Error("time keeping stopped", "err", err)
		}
	}()

	// The network, if authd owns it.
	var network recovery.Network
	if o.manageNetwork {
		// Optional: a network that cannot be managed must not stop the
		// button, the console or local logins.
		if m, err := startNetwork(ctx, o, log); err != nil {
			log.Error("network configuration unavailable; the physical reset will not reset it", "err", err)
		} else {
			s.closers = append(s.closers, func() { m.Close() })
			s.api.Network, network = m, m
		}
	}

	defaultHash, startHash := precomputeHash(ctx, hasher, defaultPass)
	s.ready = append(s.ready, startHash)
	rdeps := recovery.Deps{Store: svc.Store(), Hasher: hasher, DefaultPassword: defaultPass, Network: network, Live: svc,
		DefaultHash: defaultHash, Clock: clock.System{}, Log: log.With("component", "recovery"),
		Durable: button.Durable}
	if resumed, err := recovery.Resume(ctx, rdeps); err != nil {
		log.Error("interrupted recovery could not be finished; it is retried at the next start or press", "err", err)
	} else if resumed {
		log.Warn("an interrupted physical reset was finished")
	}
	s.api.LastReset = func() any {
		l, ok, err := recovery.LastRecovery(svc.Store())
		if err != nil || !ok {
			return nil
		}
		return l
	}

	// The RESET button: optional, its failure is reported, never fatal.
	src, err := button.SourceFor(prof)
	if err != nil && !errors.Is(err, button.ErrNoButton) {
		log.Error("reset button unavailable", "board", prof.Name, "err", err)
	}
	led, lerr := button.LEDFor(prof, "status")
	if lerr != nil {
		log.Warn("status LED unavailable", "err", lerr)
		led = nil
	}
	if led != nil {
		s.closers = append(s.closers, func() { led.Close() })
	}
	presses := &control.Presses{}
	w, err := button.NewWatcher(button.Config{
		Source: src, LED: led, Thresholds: button.ThresholdsFor(prof), Logger: log,
		Recover: func(ctx context.Context) error { return recovery.Run(ctx, rdeps, "button") },
		Notify: func(e button.Effect) {
			if e.Kind == button.EffectPressed {
				presses.Pressed()
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("button: %w", err)
	}
	s.api.Button = w.Status
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := w.Run(runCtx); err != nil && !errors.Is(err, button.ErrNoButton) {
			log.Error("reset button watcher stopped", "err", err)
		}
	}()
	if o.controlSocket != "" {
		var pr *control.Presses
		if src != nil {
			pr = presses
		}
		cs, err := control.Listen(o.controlSocket, controlBackend{svc: svc, sys: s.api, rdeps: rdeps, network: network}, pr, log)
		if err != nil {
			// Optional: only the serial console needs it.
			log.Error("control socket unavailable; the rescue console cannot reach authd", "err", err)
		} else {
			s.closers = append(s.closers, func() { cs.Close() })
			log.Info("control socket", "path", o.controlSocket)
		}
	}
	return s, nil
}

// startNetwork applies the stored network configuration and returns its
// manager.
func startNetwork(ctx context.Context, o *options, log *slog.Logger) (*netconf.Manager, error) {
	applier, err := netconf.NewNetlinkApplier(netconf.NetlinkOptions{Logger: log.With("component", "netconf")})
	if err != nil {
		return nil, err
	}
	m, err := netconf.NewManager(netconf.Options{Dir: o.state, Applier: applier, ConfirmTimeout: o.confirmTimeout,
		DefaultHostname: o.defaultHostname, RunDefaultIfCorrupt: true, Logger: log.With("component", "netconf")})
	if err != nil {
		applier.Close()
		return nil, err
	}
	if err := m.Start(ctx); err != nil {
		log.Error("network configuration applied with errors", "err", err)
	}
	return m, nil
}

// precomputeHash hashes the default password in the background, so the
// physical reset costs only a database write when the button is released.
// The hash starts when start is called (once authd is ready: on a slow
// board it would otherwise take the CPU from the start itself) or when the
// hash is first asked for, whichever comes first.
func precomputeHash(ctx context.Context, h *account.Hasher, password string) (get func(context.Context) (string, error), start func()) {
	type result struct {
		hash string
		err  error
	}
	done := make(chan result, 1)
	start = sync.OnceFunc(func() {
		go func() {
			// For the RESET button: before any login flood.
			hash, err := h.Hash(account.Urgent(ctx), password)
			done <- result{hash, err}
		}()
	})
	var mu sync.Mutex
	var cached string
	pending := true
	get = func(ctx context.Context) (string, error) {
		start()
		mu.Lock()
		defer mu.Unlock()
		if cached != "" {
			return cached, nil
		}
		if pending {
			select {
			case r := <-done:
				pending = false
				if r.err == nil {
					cached = r.hash
					return cached, nil
				}
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		hash, err := h.Hash(account.Urgent(ctx), password)
		if err == nil {
			cached = hash
		}
		return hash, err
	}
	return get, start
}

// controlBackend serves the rescue console through the control socket.
type controlBackend struct {
	svc     *auth.Service
	sys     *api.System
	rdeps   recovery.Deps
	network recovery.Network
}

func (c controlBackend) Status(context.Context) (control.Status, error) {
	st := control.Status{Version: c.sys.Version, Board: c.sys.Board.Name, NetworkManaged: c.network != nil}
	if c.sys.Time != nil {
		ts := c.sys.Time.Status()
		st.Clock = string(ts.State) + " (" + string(ts.Source) + ")"
	}
	if c.sys.TLS != nil {
		st.Certificate = c.sys.TLS.Info().Fingerprint
	}
	if c.sys.Ports != nil {
		cur, _ := c.sys.Ports.Current()
		st.HTTPSPort = cur.HTTPS
	}
	if c.sys.Button != nil {
		b := c.sys.Button()
		st.Button = b.Source
		if !b.Available {
			st.Button += " (unavailable: " + b.Error + ")"
		}
	}
	return st, nil
}

func (c controlBackend) ResetAdmin(ctx context.Context) (string, error) {
	if err := recovery.Run(ctx, c.rdeps, "rescue"); err != nil {
		return "", err
	}
	return recovery.Done(c.rdeps.Network != nil), nil
}

func (c controlBackend) ResetNetwork(ctx context.Context) error {
	if c.network == nil {
		return errors.New("the login service does not manage the network on this NAS")
	}
	if err := c.network.ResetToDefault(ctx); err != nil {
		return err
	}
	c.svc.Audit(store.AuditEntry{Event: "network_reset", Actor: "rescue", Detail: "network back to DHCP from the serial console"})
	return nil
}

func (c controlBackend) NewCertificate(context.Context) (string, error) {
	if c.sys.TLS == nil {
		return "", errors.New("authd serves no certificate of its own here (it runs without -tls auto)")
	}
	// The console is the way back from an imported certificate that
	// broke the pages: it goes too.
	imported := c.sys.TLS.Info().Source == tlscert.SourceOwner
	if imported {
		if _, err := c.sys.TLS.UseDevice(); err != nil {
			return "", err
		}
	}
	info, err := c.sys.TLS.Regenerate()
	if err != nil {
		return "", err
	}
	detail := "SHA-256 " + info.Fingerprint
	if imported {
		detail += "; the imported certificate removed"
	}
	c.svc.Audit(store.AuditEntry{Event: "certificate_regenerated", Actor: "rescue", Detail: detail})
	return info.Fingerprint, nil
}

func (c controlBackend) Audit(_ context.Context, n int) ([]string, error) {
	entries, err := c.svc.AuditLog(n, 0)
	if err != nil {
		return nil, err
	}
	lines := make([]string, 0, len(entries))
	for i := len(entries) - 1; i >= 0; i-- {
		lines = append(lines, entries[i].String())
	}
	return lines, nil
}
