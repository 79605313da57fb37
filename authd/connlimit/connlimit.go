// Package connlimit caps the connections authd's listeners keep open, in
// total and per client, and makes room for a newcomer by closing what the
// client holding the most has left idle, so that no client can take every
// connection (and file descriptor) and shut the owner out.
package connlimit

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/rknas/firmware/authd/regulate"
)

// Limits are the caps. Browsers keep up to 6 connections to one server
// over HTTP/1.1, so PerClient leaves room for several browsers and scripts
// behind one address.
type Limits struct {
	// Total is the most connections open at once over every listener
	// wrapped by one Limiter.
	Total int
	// PerClient is the most one client (regulate.ClientKey) keeps open.
	PerClient int
}

// DefaultLimits are authd's: far below a board's 4096 file descriptors,
// and about 256 × 40 KiB of buffers and TLS state at most.
var DefaultLimits = Limits{Total: 256, PerClient: 32}

// Limiter keeps the count. One Limiter serves every listener of a server,
// so the caps hold over all of them. It is safe for concurrent use.
type Limiter struct {
	limits Limits
	log    *slog.Logger

	mu       sync.Mutex
	clients  map[string][]*conn // each client's connections, oldest first
	total    int
	refused  int // since the last report
	closed   int
	reported time.Time
}

// New returns a Limiter with limits; log receives at most one line a
// minute while connections are being refused or closed.
func New(limits Limits, log *slog.Logger) *Limiter {
	return &Limiter{limits: limits, log: log, clients: map[string][]*conn{}}
}

// Listen wraps ln: its connections count towards the limits.
func (l *Limiter) Listen(ln net.Listener) net.Listener { return &listener{Listener: ln, l: l} }

// ConnState is for http.Server.ConnState: it tells the Limiter which
// connections are idle between requests, the first to close for room.
func (l *Limiter) ConnState(c net.Conn, s http.ConnState) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok { // TLS
		c = nc.NetConn()
	}
	tc, ok := c.(*conn)
	if !ok {
		return
	}
	l.mu.Lock()
	tc.idle = s == http.StateIdle
	l.mu.Unlock()
}

// Open returns the number of connections open.
func (l *Limiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

type listener struct {
	net.Listener
	l *Limiter
}

// Accept returns the next connection the limits admit; it closes the ones
// they refuse and goes on waiting.
func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &conn{Conn: c, l: ln.l, key: clientKey(c)}
		victim, ok := ln.l.admit(tc)
		if victim != nil {
			victim.Conn.Close() // its server goroutine ends on the error
		}
		if ok {
			return tc, nil
		}
		c.Close()
	}
}

func clientKey(c net.Conn) string {
	peer, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	var local netip.Addr
	if ap, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil {
		local = ap.Addr()
	}
	return regulate.ClientKey(peer.Addr(), regulate.OnLink(peer.Addr(), local))
}

// admit counts c in if the limits allow, possibly by giving up victim,
// which it has already uncounted.
func (l *Limiter) admit(c *conn) (victim *conn, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	mine := l.clients[c.key]
	switch {
	case len(mine) >= l.limits.PerClient:
		// A client at its own cap only recycles what it left idle.
		victim = oldestIdle(mine)
	case l.total >= l.limits.Total:
		victim = l.roomFor(len(mine))
	default:
		l.add(c)
		return nil, true
	}
	if victim == nil {
		l.refused++
		l.report()
		return nil, false
	}
	l.remove(victim)
	l.closed++
	l.report()
	l.add(c)
	return victim, true
}

// roomFor picks the connection to close for a newcomer holding held:
// an idle one of the client holding the most, else the oldest idle one,
// else the oldest of the client holding the most if it holds more than the
// newcomer would, else, for a newcomer holding none, the oldest of all.
// Requests in progress are cut only to even things out, and a client
// that holds nothing always gets in.
func (l *Limiter) roomFor(held int) *conn {
	var most []*conn
	var first, firstIdle *conn
	for _, cs := range l.clients {
		if len(cs) > len(most) || (len(cs) == len(most) && cs[0].since.Before(most[0].since)) {
			most = cs
		}
		if first == nil || cs[0].since.Before(first.since) {
			first = cs[0]
		}
		if v := oldestIdle(cs); v != nil && (firstIdle == nil || v.since.Before(firstIdle.since)) {
			firstIdle = v
		}
	}
	switch v := oldestIdle(most); {
	case v != nil:
		return v
	case firstIdle != nil:
		return firstIdle
	case len(most) > held+1:
		return most[0]
	case held == 0:
		return first
	}
	return nil
}

// oldestIdle returns the first idle connection of cs, or nil.
func oldestIdle(cs []*conn) *conn {
	for _, c := range cs {
		if c.idle {
			return c
		}
	}
	return nil
}

func (l *Limiter) add(c *conn) {
	c.since = time.Now()
	c.counted = true
	l.clients[c.key] = append(l.clients[c.key], c)
	l.total++
}

func (l *Limiter) remove(c *conn) {
	if !c.counted {
		return
	}
	c.counted = false
	cs := l.clients[c.key]
	for i, x := range cs {
		if x == c {
			cs = append(cs[:i:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(l.clients, c.key)
	} else {
		l.clients[c.key] = cs
	}
	l.total--
}

// report logs the refusals and closings, at most once a minute: a flood
// must not turn into a flood of log lines.
func (l *Limiter) report() {
	now := time.Now()
	if l.log == nil || now.Sub(l.reported) < time.Minute {
		return
	}
	l.log.Warn("connections at their limit: some refused or closed to make room",
		"refused", l.refused, "closed", l.closed, "open", l.total, "clients", len(l.clients),
		"limit_total", l.limits.Total, "limit_per_client", l.limits.PerClient)
	l.refused, l.closed, l.reported = 0, 0, now
}

// conn is a connection the Limiter counts until it is closed.
type conn struct {
	net.Conn
	l   *Limiter
	key string
	// Guarded by l.mu.
	idle    bool
	counted bool
	since   time.Time
}

// Close uncounts the connection and closes it.
func (c *conn) Close() error {
	c.l.mu.Lock()
	c.l.remove(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
