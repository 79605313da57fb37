// Package mdns announces the device on the LAN over multicast DNS, so a new
// owner finds it as <hostname>.local and in their computer's network
// browser, without the router's lease table or the serial cable.
package mdns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/brutella/dnssd"
	dnssdlog "github.com/brutella/dnssd/log"
)

// ServiceType is the DNS-SD service announced: the HTTPS login pages.
const ServiceType = "_https._tcp"

// Config is what is announced.
type Config struct {
	// Hostname is a single DNS label, announced as <Hostname>.local with
	// the addresses of Ifaces (A and AAAA).
	Hostname string
	// Instance is the service's name in network browsers, for example
	// "QNAP TS-433 (rknas-1a2b3c)".
	Instance string
	// Port is the HTTPS port.
	Port int
	// Ifaces are the interfaces answered on; empty means every multicast
	// interface but loopback.
	Ifaces []string
	// Text is the service's TXT record (model, board, version).
	Text map[string]string
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Hostname == "" || strings.ContainsAny(c.Hostname, ". ") || len(c.Hostname) > 63:
		return fmt.Errorf("mdns: hostname %q: one DNS label of 1 to 63 characters", c.Hostname)
	case c.Instance == "" || len(c.Instance) > 63:
		return fmt.Errorf("mdns: instance name %q: 1 to 63 bytes", c.Instance)
	case c.Port < 1 || c.Port > 65535:
		return fmt.Errorf("mdns: port %d: 1 to 65535", c.Port)
	}
	return nil
}

// Equal tells whether c and o announce the same.
func (c Config) Equal(o Config) bool {
	if c.Hostname != o.Hostname || c.Instance != o.Instance || c.Port != o.Port || !slices.Equal(c.Ifaces, o.Ifaces) || len(c.Text) != len(o.Text) {
		return false
	}
	for k, v := range c.Text {
		if w, ok := o.Text[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Announce answers for cfg until ctx ends. The responder probes for the
// names first and, if another device holds one, takes the next free one
// ("rknas-1a2b3c-2"), as RFC 6762 asks.
func Announce(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	quietLibrary(log)
	svc, err := dnssd.NewService(dnssd.Config{Name: cfg.Instance, Type: ServiceType, Host: cfg.Hostname, Text: cfg.Text, Port: cfg.Port, Ifaces: cfg.Ifaces})
	if err != nil {
		return fmt.Errorf("mdns: %w", err)
	}
	rp, err := dnssd.NewResponder()
	if err != nil {
		return fmt.Errorf("mdns: %w", err)
	}
	if _, err := rp.Add(svc); err != nil {
		return fmt.Errorf("mdns: %w", err)
	}
	log.Info("announcing on the LAN", "name", cfg.Hostname+".local", "service", cfg.Instance+"."+ServiceType+".local", "port", cfg.Port,
		"interfaces", strings.Join(cfg.Ifaces, ","))
	err = rp.Respond(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("mdns: %w", err)
}

// Keep announces what current returns, starting over whenever it changes
// (a new hostname after a network change or a RESET, an interface that
// came up) or the responder fails; it checks every interval and returns
// when ctx ends.
func Keep(ctx context.Context, current func() (Config, error), interval time.Duration, log *slog.Logger) {
	var r *responder
	defer func() {
		if r != nil {
			r.stop()
		}
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		cfg, err := current()
		switch {
		case err != nil:
			log.Warn("nothing to announce on the LAN", "err", err)
		case r == nil || r.ended() || !cfg.Equal(r.cfg):
			if r != nil {
				r.stop()
			}
			r = start(ctx, cfg, log)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// responder is one run of Announce.
type responder struct {
	cfg    Config
	cancel context.CancelFunc
	done   chan struct{}
}

func start(ctx context.Context, cfg Config, log *slog.Logger) *responder {
	rctx, cancel := context.WithCancel(ctx)
	r := &responder{cfg: cfg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := Announce(rctx, cfg, log); err != nil {
			log.Error("mDNS responder stopped; retrying", "err", err)
		}
	}()
	return r
}

func (r *responder) stop() {
	r.cancel()
	<-r.done
}

func (r *responder) ended() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Interfaces returns the names of the up, multicast-capable, non-loopback
// interfaces among names (all of the machine's when names is empty), in
// order: what a responder started now can answer on.
func Interfaces(names []string) []string {
	ifs, _ := net.Interfaces()
	var out []string
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagMulticast == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		if len(names) > 0 && !slices.Contains(names, i.Name) {
			continue
		}
		out = append(out, i.Name)
	}
	slices.Sort(out)
	return out
}

var quietOnce sync.Once

// quietLibrary sends the library's own log lines to log at debug level:
// by default it writes to standard output.
func quietLibrary(log *slog.Logger) {
	quietOnce.Do(func() {
		pr, pw := io.Pipe()
		dnssdlog.Info.SetOutput(pw)
		dnssdlog.Info.SetFlags(0)
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				log.Debug("mdns library", "msg", sc.Text())
			}
		}()
	})
}

// ErrNoInterface is returned by callers that find nothing to answer on.
var ErrNoInterface = errors.New("mdns: no up multicast interface to answer on")
