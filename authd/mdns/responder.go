package mdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Port is multicast DNS's UDP port.
const Port = 5353

var (
	groupV4 = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: Port}
	groupV6 = &net.UDPAddr{IP: net.ParseIP("ff02::fb"), Port: Port}
)

const (
	// maxUnicastPerSecond bounds the answers sent to single addresses,
	// whatever the number of neighbours asking.
	maxUnicastPerSecond = 50
	// linkRefresh is how long an interface's addresses are trusted before
	// they are read again: not once per packet, which a flood would turn
	// into a flood of netlink dumps.
	linkRefresh = 5 * time.Second
	// conflictLogGap is the least time between two warnings about another
	// device answering for the name.
	conflictLogGap = time.Minute
)

// Announce answers for cfg until ctx ends. It tells the link the device's
// records at the start (twice, a second apart, RFC 6762 §8.3), answers the
// queries for them from the link itself, and says goodbye (TTL 0) when it
// stops. The name is the owner's: another device answering for it is
// logged and the name is kept. RFC 6762 §9 would rename the device, which
// let any neighbour rename the NAS at will (its passkeys are bound to the
// name) and, after enough renames, silence it.
func Announce(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	rec, err := newRecords(cfg)
	if err != nil {
		return fmt.Errorf("mdns: %w", err)
	}
	var ifis []*net.Interface
	for _, name := range cfg.Ifaces {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return fmt.Errorf("mdns: interface %s: %w", name, err)
		}
		ifis = append(ifis, ifi)
	}
	if len(ifis) == 0 {
		return ErrNoInterface
	}
	a := &announcer{rec: rec, log: log, ifis: ifis, links: map[int]cachedLink{}, sent: map[string]time.Time{}}
	if err := a.open(ctx); err != nil {
		return err
	}
	defer a.close()
	var wg sync.WaitGroup
	if a.v4 != nil {
		wg.Go(func() { a.serve(false) })
	}
	if a.v6 != nil {
		wg.Go(func() { a.serve(true) })
	}
	log.Info("announcing on the LAN", "name", cfg.Hostname+".local", "service", cfg.Instance+"."+ServiceType+".local", "port", cfg.Port,
		"interfaces", strings.Join(cfg.Ifaces, ","))
	a.announce(false)
	select {
	case <-time.After(time.Second):
		a.announce(false)
	case <-ctx.Done():
	}
	<-ctx.Done()
	a.announce(true)
	a.close()
	wg.Wait()
	return nil
}

type cachedLink struct {
	link
	read time.Time
}

// announcer is one run of Announce.
type announcer struct {
	rec  records
	log  *slog.Logger
	ifis []*net.Interface
	v4   *ipv4.PacketConn
	v6   *ipv6.PacketConn

	mu             sync.Mutex
	links          map[int]cachedLink   // by interface index
	sent           map[string]time.Time // when a record was last multicast, by link and record
	unicastSecond  time.Time
	unicastSent    int
	conflictLogged time.Time
	closeOnce      sync.Once
}

// open binds port 5353 for each family and joins the group on every
// interface; a family no interface could join is left out (a kernel
// without IPv6), both left out is an error.
func (a *announcer) open(ctx context.Context) error {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// Another responder on the same host may hold the port too.
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	var errs []error
	if c, err := lc.ListenPacket(ctx, "udp4", fmt.Sprintf("0.0.0.0:%d", Port)); err != nil {
		errs = append(errs, err)
	} else {
		p := ipv4.NewPacketConn(c)
		joined := a.joinAll(groupV4, func(ifi *net.Interface) error { return p.JoinGroup(ifi, groupV4) }, &errs)
		err := errors.Join(p.SetControlMessage(ipv4.FlagInterface, true), p.SetMulticastTTL(255), p.SetTTL(255), p.SetMulticastLoopback(false))
		if joined == 0 || err != nil {
			errs = append(errs, err)
			c.Close()
		} else {
			a.v4 = p
		}
	}
	if c, err := lc.ListenPacket(ctx, "udp6", fmt.Sprintf("[::]:%d", Port)); err != nil {
		errs = append(errs, err)
	} else {
		p := ipv6.NewPacketConn(c)
		joined := a.joinAll(groupV6, func(ifi *net.Interface) error { return p.JoinGroup(ifi, groupV6) }, &errs)
		err := errors.Join(p.SetControlMessage(ipv6.FlagInterface, true), p.SetMulticastHopLimit(255), p.SetHopLimit(255), p.SetMulticastLoopback(false))
		if joined == 0 || err != nil {
			errs = append(errs, err)
			c.Close()
		} else {
			a.v6 = p
		}
	}
	if a.v4 == nil && a.v6 == nil {
		return fmt.Errorf("mdns: no interface joined the mDNS group: %w", errors.Join(errs...))
	}
	if len(errs) > 0 {
		a.log.Debug("mDNS on some interfaces or families only", "err", errors.Join(errs...))
	}
	return nil
}

// joinAll joins group on every interface with join; it returns how many
// joined and adds the failures to errs.
func (a *announcer) joinAll(group *net.UDPAddr, join func(*net.Interface) error, errs *[]error) int {
	joined := 0
	for _, ifi := range a.ifis {
		if err := join(ifi); err != nil {
			*errs = append(*errs, fmt.Errorf("join %s on %s: %w", group.IP, ifi.Name, err))
			continue
		}
		joined++
	}
	return joined
}

func (a *announcer) close() {
	a.closeOnce.Do(func() {
		if a.v4 != nil {
			a.v4.Close()
		}
		if a.v6 != nil {
			a.v6.Close()
		}
	})
}

// serve reads one family's packets until the connection is closed.
func (a *announcer) serve(v6 bool) {
	buf := make([]byte, 9000) // the largest mDNS message, RFC 6762 §17
	for {
		var n, ifIndex int
		var src net.Addr
		var err error
		if v6 {
			var cm *ipv6.ControlMessage
			n, cm, src, err = a.v6.ReadFrom(buf)
			if cm != nil {
				ifIndex = cm.IfIndex
			}
		} else {
			var cm *ipv4.ControlMessage
			n, cm, src, err = a.v4.ReadFrom(buf)
			if cm != nil {
				ifIndex = cm.IfIndex
			}
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// A packet too big for the buffer, an ICMP error: the next.
			// Not at once, should the error stay.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		ua, ok := src.(*net.UDPAddr)
		if !ok {
			continue
		}
		l, ok := a.link(ifIndex)
		if !ok {
			continue
		}
		a.handle(buf[:n], ua, l)
	}
}

// handle answers one packet.
func (a *announcer) handle(packet []byte, src *net.UDPAddr, l link) {
	rep, conflict, err := a.rec.answer(packet, src.AddrPort(), l, func(key string) bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return time.Since(a.sent[sentKey(l, src, key)]) < multicastGap
	})
	if conflict.IsValid() {
		a.mu.Lock()
		warn := time.Since(a.conflictLogged) >= conflictLogGap
		if warn {
			a.conflictLogged = time.Now()
		}
		a.mu.Unlock()
		if warn {
			a.log.Warn("another device on the LAN answers for this device's name; the name is kept (a device with the same name, or someone pretending)",
				"name", a.rec.host.String(), "their_address", conflict.String(), "from", src.String())
		}
	}
	if err != nil {
		return
	}
	if rep.unicast {
		a.mu.Lock()
		now := time.Now()
		if now.Sub(a.unicastSecond) >= time.Second {
			a.unicastSecond, a.unicastSent = now, 0
		}
		a.unicastSent++
		over := a.unicastSent > maxUnicastPerSecond
		a.mu.Unlock()
		if !over {
			a.send(rep.msg, l, src)
		}
		return
	}
	a.mu.Lock()
	for _, key := range rep.names {
		a.sent[sentKey(l, src, key)] = time.Now()
	}
	a.mu.Unlock()
	group := groupV4
	if src.IP.To4() == nil {
		group = groupV6
	}
	a.send(rep.msg, l, group)
}

// sentKey names a record multicast on one link in one family.
func sentKey(l link, src *net.UDPAddr, key string) string {
	return fmt.Sprint(l.index, " ", src.IP.To4() == nil, " ", key)
}

// send sends msg on l to dst: a neighbour, or the group of a family.
func (a *announcer) send(msg []byte, l link, dst *net.UDPAddr) {
	if dst.IP.To4() == nil {
		if a.v6 != nil {
			_, _ = a.v6.WriteTo(msg, &ipv6.ControlMessage{IfIndex: l.index}, dst)
		}
		return
	}
	if a.v4 != nil {
		_, _ = a.v4.WriteTo(msg, &ipv4.ControlMessage{IfIndex: l.index}, dst)
	}
}

// announce multicasts the device's records (or, with goodbye, their end)
// on every interface, in both families.
func (a *announcer) announce(goodbye bool) {
	for _, ifi := range a.ifis {
		l, ok := a.link(ifi.Index)
		if !ok {
			continue
		}
		msg, err := a.rec.announcement(l, goodbye)
		if err != nil {
			a.log.Warn("mDNS announcement not built", "interface", ifi.Name, "err", err)
			continue
		}
		a.send(msg, l, groupV4)
		a.send(msg, l, groupV6)
	}
}

// link returns the interface of index with its addresses, read again when
// older than linkRefresh; only the interfaces announced on are known.
func (a *announcer) link(index int) (link, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.links[index]; ok && time.Since(c.read) < linkRefresh {
		return c.link, true
	}
	for _, ifi := range a.ifis {
		if ifi.Index != index {
			continue
		}
		l := link{index: index}
		addrs, _ := ifi.Addrs()
		for _, ad := range addrs {
			if n, ok := ad.(*net.IPNet); ok {
				if p, err := netip.ParsePrefix(n.String()); err == nil {
					l.prefixes = append(l.prefixes, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()))
				}
			}
		}
		a.links[index] = cachedLink{l, time.Now()}
		return l, true
	}
	return link{}, false
}
