// Package mdns announces the device on the LAN over multicast DNS, so a new
// owner finds it as <hostname>.local and in their computer's network
// browser, without the router's lease table or the serial cable.
package mdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"
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
	case c.Instance == "" || len(c.Instance) > 63 || strings.ContainsAny(c.Instance, ".\\"):
		return fmt.Errorf("mdns: instance name %q: 1 to 63 bytes, no dot or backslash", c.Instance)
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

// ErrNoInterface is returned by callers that find nothing to answer on.
var ErrNoInterface = errors.New("mdns: no up multicast interface to answer on")
