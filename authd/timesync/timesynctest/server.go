package timesynctest

import (
	"encoding/binary"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// Reply describes how a fake NTP server answers.
type Reply struct {
	// Offset is added to the real time in every timestamp: a liar.
	Offset time.Duration
	// Stratum of the answer; 0 is a kiss-of-death.
	Stratum uint8
	// Leap is the leap indicator; 3 means "not synchronised".
	Leap uint8
	// RefID is the 4-byte reference ID, the kiss code when Stratum is 0.
	RefID string
	// ZeroTransmit sends a transmit timestamp of zero.
	ZeroTransmit bool
	// Garbage sends these bytes instead of an NTP packet.
	Garbage []byte
	// Silent reads queries and never answers.
	Silent bool
}

// Canned answers.
var (
	Honest       = Reply{Stratum: 2, RefID: "GOOD"}
	KissOfDeath  = Reply{Stratum: 0, RefID: "RATE"}
	Stratum16    = Reply{Stratum: 16, RefID: "INIT"}
	Unsynced     = Reply{Stratum: 2, Leap: 3, RefID: "GOOD"}
	ZeroTransmit = Reply{Stratum: 2, RefID: "GOOD", ZeroTransmit: true}
	Garbage      = Reply{Garbage: []byte("HTTP/1.1 400 Bad Request\r\n\r\n")}
	Silent       = Reply{Silent: true}
)

// Liar answers well-formed packets whose time is off by offset.
func Liar(offset time.Duration) Reply {
	return Reply{Stratum: 2, RefID: "LIAR", Offset: offset}
}

// Server is a fake NTP server on a loopback UDP port.
type Server struct {
	// Addr is host:port to query.
	Addr    string
	conn    net.PacketConn
	queries atomic.Int64
	first   chan struct{}
}

// StartServer starts a fake NTP server answering with r on 127.0.0.1; it
// stops when the test ends.
func StartServer(tb testing.TB, r Reply) *Server {
	tb.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("timesynctest: listen: %v", err)
	}
	s := &Server{Addr: conn.LocalAddr().String(), conn: conn, first: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve(r)
	}()
	tb.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

// FirstQuery is closed when the first packet arrives.
func (s *Server) FirstQuery() <-chan struct{} { return s.first }

// Queries returns how many packets the server has received.
func (s *Server) Queries() int64 { return s.queries.Load() }

func (s *Server) serve(r Reply) {
	buf := make([]byte, 512)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		if s.queries.Add(1) == 1 {
			close(s.first)
		}
		recv := time.Now().Add(r.Offset)
		if r.Silent || n < 48 {
			continue
		}
		var out []byte
		if r.Garbage != nil {
			out = r.Garbage
		} else {
			out = packet(buf[:48], r, recv)
		}
		s.conn.WriteTo(out, from)
	}
}

// packet builds a server-mode NTPv4 answer to query q.
func packet(q []byte, r Reply, recv time.Time) []byte {
	p := make([]byte, 48)
	version := (q[0] >> 3) & 7
	p[0] = r.Leap<<6 | version<<3 | 4 // mode 4: server
	p[1] = r.Stratum
	p[2] = q[2]                                    // poll
	p[3] = 0xec                                    // precision 2^-20 s
	binary.BigEndian.PutUint32(p[4:], 0x0000_0100) // root delay: 1/256 s
	binary.BigEndian.PutUint32(p[8:], 0x0000_0100) // root dispersion
	copy(p[12:16], (r.RefID + "    ")[:4])
	xmit := time.Now().Add(r.Offset)
	putTime(p[16:], xmit.Add(-time.Minute)) // reference time
	copy(p[24:32], q[40:48])                // origin = the client's transmit
	putTime(p[32:], recv)
	if !r.ZeroTransmit {
		putTime(p[40:], xmit)
	}
	return p
}

// putTime writes t as a 64-bit NTP timestamp (era 0, 1900-2036).
func putTime(b []byte, t time.Time) {
	const ntpEpochOffset = 2208988800
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	binary.BigEndian.PutUint64(b, secs<<32|frac)
}
