package connlimit

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// server serves "ok" over HTTP/1.1 on loopback through a Limiter with
// limits, as authd does.
func server(t *testing.T, limits Limits) (string, *Limiter) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(limits, nil)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ConnState: l.ConnState, ReadHeaderTimeout: time.Minute}
	go hs.Serve(l.Listen(ln))
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String(), l
}

// client is one TCP connection from a loopback address of its own.
type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr, from string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

// get sends one request and reports whether it was answered; a connection
// the limits refused or closed is not.
func (c *client) get() bool {
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.c, "GET / HTTP/1.1\r\nHost: nas\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "reset") {
			return false
		}
		c.t.Fatalf("read: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode == 200 && string(body) == "ok"
}

// closed reports whether the server closed the connection: a read that
// waits for nothing (no request was sent) ends at once with EOF, not at
// the deadline.
func (c *client) closed() bool {
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// waitOpen waits until the Limiter counts n connections: Accept runs on the
// server's goroutine, after the client's connect has returned.
func waitOpen(t *testing.T, l *Limiter, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); l.Open() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections counted, want %d", l.Open(), n)
		}
	}
}

// waitIdle waits until the Limiter counts n connections idle: the server
// marks a connection idle after writing its answer, which the client may
// read first.
func waitIdle(t *testing.T, l *Limiter, n int) {
	t.Helper()
	count := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		idle := 0
		for _, cs := range l.clients {
			for _, c := range cs {
				if c.idle {
					idle++
				}
			}
		}
		return idle
	}
	for deadline := time.Now().Add(10 * time.Second); count() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections idle, want %d", count(), n)
		}
	}
}

// hold opens n connections from from that send nothing yet: as the server
// sees them, new and not idle.
func hold(t *testing.T, addr, from string, n int) []*client {
	var cs []*client
	for range n {
		cs = append(cs, dial(t, addr, from))
	}
	return cs
}

func TestAClientIsHeldToItsShare(t *testing.T) {
	addr, l := server(t, Limits{Total: 100, PerClient: 4})
	held := hold(t, addr, "127.0.0.2", 4)
	waitOpen(t, l, 4)
	if dial(t, addr, "127.0.0.2").get() {
		t.Fatal("a fifth connection of a client holding 4 busy ones was served")
	}
	if !dial(t, addr, "127.0.0.3").get() {
		t.Fatal("another client was refused")
	}
	for i, c := range held {
		if !c.get() {
			t.Errorf("held connection %d was closed", i)
		}
	}
}

// TestRoomIsMade: at a limit, which connection is closed for a newcomer,
// and which are kept.
func TestRoomIsMade(t *testing.T) {
	type group struct {
		from string
		n    int
		idle bool // a request made on each: idle between requests; else open, nothing sent
	}
	type conn struct{ group, index int }
	tests := []struct {
		name     string
		limits   Limits
		groups   []group
		newcomer string
		closed   conn
		kept     []conn
	}{
		{"a client at its share recycles its oldest idle connection", Limits{Total: 100, PerClient: 4},
			[]group{{"127.0.0.2", 4, true}}, "127.0.0.2", conn{0, 0}, []conn{{0, 1}}},
		{"the client holding the most gives one up", Limits{Total: 6, PerClient: 6},
			[]group{{"127.0.0.3", 1, false}, {"127.0.0.2", 5, false}}, "127.0.0.3", conn{1, 0}, []conn{{0, 0}}},
		{"the idle ones of the client holding the most go first", Limits{Total: 4, PerClient: 4},
			[]group{{"127.0.0.3", 1, true}, {"127.0.0.2", 3, true}}, "127.0.0.4", conn{1, 0}, []conn{{0, 0}}},
		{"idle connections go before requests in progress", Limits{Total: 4, PerClient: 4},
			[]group{{"127.0.0.2", 2, false}, {"127.0.0.3", 2, true}}, "127.0.0.4", conn{1, 0}, []conn{{0, 0}, {0, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, l := server(t, tt.limits)
			var groups [][]*client
			open, idle := 0, 0
			for _, g := range tt.groups {
				cs := hold(t, addr, g.from, g.n)
				if g.idle {
					for _, c := range cs {
						if !c.get() {
							t.Fatal("not served")
						}
					}
					idle += g.n
				}
				open += g.n
				waitOpen(t, l, open) // in this order, oldest first
				waitIdle(t, l, idle)
				groups = append(groups, cs)
			}
			if !dial(t, addr, tt.newcomer).get() {
				t.Fatal("the newcomer was refused")
			}
			if !groups[tt.closed.group][tt.closed.index].closed() {
				t.Fatalf("connection %d of %s was not the one closed", tt.closed.index, tt.groups[tt.closed.group].from)
			}
			for _, k := range tt.kept {
				if !groups[k.group][k.index].get() {
					t.Errorf("connection %d of %s was closed", k.index, tt.groups[k.group].from)
				}
			}
			if n := l.Open(); n > tt.limits.Total {
				t.Errorf("%d connections open, limit %d", n, tt.limits.Total)
			}
		})
	}
}

func TestANewcomerGetsInAmongEquals(t *testing.T) {
	addr, l := server(t, Limits{Total: 4, PerClient: 4})
	var first []*client
	for i, from := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		first = append(first, hold(t, addr, from, 1)...)
		waitOpen(t, l, i+1)
	}
	newcomer := dial(t, addr, "127.0.0.6")
	if !first[0].closed() {
		t.Fatal("a client holding nothing did not get the oldest connection's place")
	}
	waitOpen(t, l, 4)
	// A client that already holds as many as anyone is not let in by
	// cutting another's request.
	if dial(t, addr, "127.0.0.3").get() {
		t.Fatal("a client holding one connection cut another's to get a second")
	}
	if !newcomer.get() {
		t.Fatal("the newcomer was not served")
	}
}
