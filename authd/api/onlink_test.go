package api

import (
	"net"
	"net/http"
	"net/netip"
	"testing"

	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/clock"
)

// peerListener hands out loopback connections that say they come from
// peer and reached local, as a connection from an IPv6 neighbour would:
// the server's own peer and local addresses are what is under test, and
// no test can own a LAN's addresses.
type peerListener struct {
	net.Listener
	peer, local net.Addr
}

func (l peerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return peerConn{c, l.peer, l.local}, nil
}

type peerConn struct {
	net.Conn
	peer, local net.Addr
}

func (c peerConn) RemoteAddr() net.Addr { return c.peer }
func (c peerConn) LocalAddr() net.Addr  { return c.local }

// browserAs is a browser whose requests reach e's service through a real
// http.Server that sees them come from peer to the device's address local.
func (e *env) browserAs(peer, local string) *browser {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	hs := &http.Server{Handler: New(e.svc, discardLog(), auth.DefaultConfig().TrustedDeviceTTL).Handler()}
	go hs.Serve(peerListener{ln, net.TCPAddrFromAddrPort(mustAddrPort(e.t, peer)), net.TCPAddrFromAddrPort(mustAddrPort(e.t, local))})
	e.t.Cleanup(func() { hs.Close() })
	as := *e
	as.url = "http://" + ln.Addr().String()
	return as.browser()
}

// TestOneIPv6NeighbourBlocksOnlyItself: on the device's own link every
// host has its IPv6 addresses in one /64, so a neighbour's wrong passwords
// block its own address, not the owner's beside it (nor the owner's
// link-local address). A client from beyond a router is still counted by
// its /64, which it could otherwise rotate through.
func TestOneIPv6NeighbourBlocksOnlyItself(t *testing.T) {
	tests := []struct {
		name                   string
		attacker, owner, local string
		ownerBlocked           bool
	}{
		{"same /64 as the device", "[2001:db8:1:2::bad]:50000", "[2001:db8:1:2::a]:50001", "[2001:db8:1:2::10]:443", false},
		{"link-local", "[fe80::bad%eth0]:50000", "[fe80::a%eth0]:50001", "[fe80::10%eth0]:443", false},
		{"beyond a router", "[2001:db8:9:9::bad]:50000", "[2001:db8:9:9::a]:50001", "[2001:db8:1:2::10]:443", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, clock.System{})
			attacker := e.browserAs(tt.attacker, tt.local)
			for range 5 {
				// A made-up name: the admin account's own limit is not
				// what this test is about.
				attacker.wantErr(401, "invalid_credentials", "POST", "/api/v1/login", login("nobody", "guess"))
			}
			attacker.wantErr(429, "locked", "POST", "/api/v1/login", login("admin", testDefaultPassword))
			owner := e.browserAs(tt.owner, tt.local)
			if tt.ownerBlocked {
				owner.wantErr(429, "locked", "POST", "/api/v1/login", login("admin", testDefaultPassword))
				return
			}
			if out := owner.must(200, "POST", "/api/v1/login", login("admin", testDefaultPassword)); out["status"] != "password_change_required" {
				t.Fatalf("the owner's login beside a blocked neighbour: %v", out)
			}
		})
	}
}

func mustAddrPort(t testing.TB, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}
