package netconf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/rknas/firmware/authd/atomicfile"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DefaultResolvConf is where the name servers are written.
const DefaultResolvConf = "/etc/resolv.conf"

// Route metrics: a static gateway wins over a DHCP one on another port.
const (
	staticMetric = 0
	dhcpMetric   = 100
)

// NetlinkOptions are the dependencies of the real Applier. The zero value
// configures the system itself.
type NetlinkOptions struct {
	// ResolvConf is the file the name servers are written to. Default
	// DefaultResolvConf.
	ResolvConf string
	// SetHostname sets the system's hostname. Default unix.Sethostname.
	SetHostname func(name string) error
	// Logger gets lease events and DHCP failures. Default slog.Default().
	Logger *slog.Logger
	// DHCPTimeout is how long one DHCP exchange waits for an answer before
	// sending again (DHCPRetries times). Default 3 s.
	DHCPTimeout time.Duration
	// DHCPRetries is how often one exchange is sent. Default 3.
	DHCPRetries int
	// DHCPBackoff is the longest wait between two failed rounds of DHCP
	// discovery; the wait starts at 1 s and doubles. Default 60 s.
	DHCPBackoff time.Duration
	// MinRenewAfter is the soonest a lease is renewed, whatever the
	// server says. Default 10 s.
	MinRenewAfter time.Duration
	// OnLease, if set, is called after a lease was obtained or renewed and
	// put on the link, from the interface's DHCP goroutine with no lock
	// held; it should return quickly.
	OnLease func(iface string, lease LeaseInfo)
}

// NetlinkApplier is the real Applier: it configures links, addresses and
// routes through netlink, runs a DHCPv4 client per DHCP interface, writes
// resolv.conf and sets the hostname.
type NetlinkApplier struct {
	o NetlinkOptions
	h *netlink.Handle

	// mu serialises every change to the system, by Apply and by the DHCP
	// clients alike.
	mu      sync.Mutex
	cfg     Config
	closed  bool
	workers map[string]*dhcpWorker
	wg      sync.WaitGroup
}

var _ Applier = (*NetlinkApplier)(nil)

// NewNetlinkApplier opens a netlink socket in the calling thread's network
// namespace.
func NewNetlinkApplier(o NetlinkOptions) (*NetlinkApplier, error) {
	if o.ResolvConf == "" {
		o.ResolvConf = DefaultResolvConf
	}
	if o.SetHostname == nil {
		o.SetHostname = func(name string) error { return unix.Sethostname([]byte(name)) }
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.DHCPTimeout <= 0 {
		o.DHCPTimeout = 3 * time.Second
	}
	if o.DHCPRetries <= 0 {
		o.DHCPRetries = 3
	}
	if o.DHCPBackoff <= 0 {
		o.DHCPBackoff = time.Minute
	}
	if o.MinRenewAfter <= 0 {
		o.MinRenewAfter = 10 * time.Second
	}
	// Only rtnetlink: asking for every family would also open XFRM and
	// netfilter sockets, which fail where those are modules not loaded.
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netconf: open netlink: %w", err)
	}
	return &NetlinkApplier{o: o, h: h, workers: map[string]*dhcpWorker{}}, nil
}

// Apply makes the system match c. It goes on past an interface that fails
// and returns all the errors joined. Interfaces that the previous
// configuration listed and c does not are cleared of their addresses and
// default routes.
func (a *NetlinkApplier) Apply(ctx context.Context, c Config) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	var errs []error
	if err := a.o.SetHostname(c.Hostname); err != nil {
		errs = append(errs, fmt.Errorf("netconf: set hostname %q: %w", c.Hostname, err))
	}
	// Stop the DHCP clients of interfaces that are no longer in DHCP mode.
	// A client that keeps its mode keeps its lease: re-running discovery
	// would drop the address the administrator may be connected through.
	for name, w := range a.workers {
		if ifc, ok := c.Interface(name); ok && ifc.Mode == ModeDHCP {
			w.hostname = c.Hostname
			continue
		}
		a.stopWorker(w)
	}
	// Interfaces the last configuration set up and c no longer lists lose
	// what we put on them, so the running system matches what the next
	// boot would build from c.
	for _, old := range a.cfg.Interfaces {
		if _, ok := c.Interface(old.Name); ok {
			continue
		}
		if err := a.clearInterface(old.Name); err != nil {
			errs = append(errs, fmt.Errorf("netconf: clear %s: %w", old.Name, err))
		}
	}
	for _, ifc := range c.Interfaces {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if err := a.applyInterface(ctx, c, ifc); err != nil {
			errs = append(errs, fmt.Errorf("netconf: interfaces[%s]: %w", ifc.Name, err))
		}
	}
	a.cfg = c.Clone()
	if err := a.writeResolvLocked(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// clearInterface removes the managed addresses and our default routes of a
// link; a link that is gone needs nothing.
func (a *NetlinkApplier) clearInterface(name string) error {
	link, err := a.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("find link: %w", err)
	}
	if err := a.syncAddrs(link, nil); err != nil {
		return err
	}
	if err := a.syncDefaultRoute(link, unix.AF_INET, nil, 0, 0); err != nil {
		return err
	}
	return a.syncDefaultRoute(link, unix.AF_INET6, nil, 0, 0)
}

func (a *NetlinkApplier) applyInterface(ctx context.Context, c Config, ifc Interface) error {
	link, err := a.h.LinkByName(ifc.Name)
	if err != nil {
		return fmt.Errorf("find link: %w", err)
	}
	if err := a.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set link up: %w", err)
	}
	switch ifc.Mode {
	case ModeStatic:
		return a.applyStatic(link, ifc)
	case ModeDHCP:
		if _, running := a.workers[ifc.Name]; running {
			return nil
		}
		// Whatever static configuration was there goes; the lease brings
		// the new one.
		if err := a.clearInterface(ifc.Name); err != nil {
			return err
		}
		a.startWorker(ifc.Name, c.Hostname)
		return nil
	}
	return fmt.Errorf("unknown mode %q", ifc.Mode)
}

func (a *NetlinkApplier) applyStatic(link netlink.Link, ifc Interface) error {
	want := make([]*net.IPNet, 0, len(ifc.Addresses))
	for _, s := range ifc.Addresses {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			return fmt.Errorf("address %q: %w", s, err)
		}
		n.IP = ip
		want = append(want, n)
	}
	if err := a.syncAddrs(link, want); err != nil {
		return err
	}
	var gw4, gw6 net.IP
	if ifc.Gateway4 != "" {
		gw4 = net.ParseIP(ifc.Gateway4)
	}
	if ifc.Gateway6 != "" {
		gw6 = net.ParseIP(ifc.Gateway6)
	}
	if err := a.syncDefaultRoute(link, unix.AF_INET, gw4, unix.RTPROT_STATIC, staticMetric); err != nil {
		return err
	}
	return a.syncDefaultRoute(link, unix.AF_INET6, gw6, unix.RTPROT_STATIC, staticMetric)
}

// managed reports whether an address on a link is ours to remove: every
// IPv4 address, and IPv6 global addresses set by hand. IPv6 link-local
// addresses and those the kernel made from router advertisements (which are
// not permanent) are the kernel's.
func managed(ad netlink.Addr) bool {
	if ad.IP.To4() != nil {
		return true
	}
	return ad.Scope == unix.RT_SCOPE_UNIVERSE && ad.Flags&unix.IFA_F_PERMANENT != 0
}

// syncAddrs makes the managed addresses of link exactly want.
func (a *NetlinkApplier) syncAddrs(link netlink.Link, want []*net.IPNet) error {
	have, err := a.addrList(link)
	if err != nil {
		return err
	}
	for _, ad := range have {
		if !managed(ad) || slices.ContainsFunc(want, func(n *net.IPNet) bool { return sameNet(n, ad.IPNet) }) {
			continue
		}
		if err := a.h.AddrDel(link, &ad); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove address %s: %w", ad.IPNet, err)
		}
	}
	for _, n := range want {
		if err := a.h.AddrReplace(link, &netlink.Addr{IPNet: n}); err != nil {
			return fmt.Errorf("add address %s: %w", n, err)
		}
	}
	return nil
}

func sameNet(a, b *net.IPNet) bool {
	return a.IP.Equal(b.IP) && bytes.Equal(normMask(a), normMask(b))
}

func normMask(n *net.IPNet) []byte {
	ones, bits := n.Mask.Size()
	return []byte{byte(ones), byte(bits)}
}

func (a *NetlinkApplier) addrList(link netlink.Link) ([]netlink.Addr, error) {
	for range 3 {
		addrs, err := a.h.AddrList(link, unix.AF_UNSPEC)
		if errors.Is(err, netlink.ErrDumpInterrupted) {
			continue // the list changed while it was read; read it again
		}
		if err != nil {
			return nil, fmt.Errorf("list addresses: %w", err)
		}
		return addrs, nil
	}
	return nil, fmt.Errorf("list addresses: %w", netlink.ErrDumpInterrupted)
}

func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

// syncDefaultRoute makes the default route of family through link go via gw
// (none when gw is nil). Default routes the kernel learnt from router
// advertisements are left alone.
func (a *NetlinkApplier) syncDefaultRoute(link netlink.Link, family int, gw net.IP, proto netlink.RouteProtocol, metric int) error {
	filter := &netlink.Route{LinkIndex: link.Attrs().Index, Table: unix.RT_TABLE_MAIN}
	var routes []netlink.Route
	var err error
	for range 3 {
		routes, err = a.h.RouteListFiltered(family, filter, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if !isDefault(r) || r.Protocol == unix.RTPROT_RA || r.Protocol == unix.RTPROT_KERNEL {
			continue
		}
		if gw != nil && r.Gw.Equal(gw) && r.Priority == metric && r.Protocol == proto {
			continue
		}
		if err := a.h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("remove default route via %s: %w", r.Gw, err)
		}
	}
	if gw == nil {
		return nil
	}
	bits := 32
	zero := net.IPv4zero.To4()
	if family == unix.AF_INET6 {
		bits, zero = 128, net.IPv6zero
	}
	r := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       &net.IPNet{IP: zero, Mask: net.CIDRMask(0, bits)},
		Gw:        gw,
		Protocol:  proto,
		Priority:  metric,
		Table:     unix.RT_TABLE_MAIN,
	}
	if err := a.h.RouteReplace(r); err != nil {
		return fmt.Errorf("set default route via %s: %w", gw, err)
	}
	return nil
}

// writeResolvLocked writes the configured name servers, or else those of
// the DHCP leases, to resolv.conf. It leaves the file alone when nothing
// changed, so renewals do not wear the flash.
func (a *NetlinkApplier) writeResolvLocked() error {
	servers := a.cfg.DNS
	if len(servers) == 0 {
		servers = nil
		for _, ifc := range a.cfg.Interfaces {
			if w := a.workers[ifc.Name]; w != nil {
				for _, s := range w.lease.DNS {
					if !slices.Contains(servers, s) {
						servers = append(servers, s)
					}
				}
			}
		}
	}
	var b strings.Builder
	b.WriteString("# Written by authd (netconf); changes here are overwritten.\n")
	for i, s := range servers {
		if i == MaxDNS {
			break
		}
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if old, err := os.ReadFile(a.o.ResolvConf); err == nil && string(old) == b.String() {
		return nil
	}
	if err := atomicfile.Write(a.o.ResolvConf, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("netconf: write %s: %w", a.o.ResolvConf, err)
	}
	return nil
}

// Status reports the interfaces of the configuration last applied.
func (a *NetlinkApplier) Status(ctx context.Context) ([]InterfaceStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
	}
	out := make([]InterfaceStatus, 0, len(a.cfg.Interfaces))
	for _, ifc := range a.cfg.Interfaces {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		st := InterfaceStatus{Name: ifc.Name, Mode: ifc.Mode, Addresses: []string{}}
		if w := a.workers[ifc.Name]; w != nil {
			l := w.lease
			l.DNS = slices.Clone(l.DNS)
			st.Lease = &l
		}
		link, err := a.h.LinkByName(ifc.Name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				out = append(out, st)
				continue
			}
			return nil, fmt.Errorf("netconf: find link %s: %w", ifc.Name, err)
		}
		st.Present = true
		st.Up = link.Attrs().Flags&net.FlagUp != 0
		if hw := link.Attrs().HardwareAddr; len(hw) > 0 {
			st.MAC = hw.String()
		}
		addrs, err := a.addrList(link)
		if err != nil {
			return nil, fmt.Errorf("netconf: %s: %w", ifc.Name, err)
		}
		for _, ad := range addrs {
			st.Addresses = append(st.Addresses, ad.IPNet.String())
		}
		out = append(out, st)
	}
	return out, nil
}

// ErrClosed is returned by a NetlinkApplier used after Close.
var ErrClosed = errors.New("netconf: applier closed")

// Close stops the DHCP clients and waits for them. Addresses stay. The
// applier cannot be used afterwards.
func (a *NetlinkApplier) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	for name, w := range a.workers {
		w.cancel()
		delete(a.workers, name)
	}
	a.mu.Unlock()
	a.wg.Wait()
	a.h.Close()
	return nil
}

// dhcpWorker is the DHCPv4 client of one interface. Its fields other than
// cancel are guarded by NetlinkApplier.mu.
type dhcpWorker struct {
	iface    string
	hostname string
	ctx      context.Context
	cancel   context.CancelFunc
	lease    LeaseInfo
	addr     *net.IPNet
	router   net.IP
}

func (a *NetlinkApplier) startWorker(iface, hostname string) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &dhcpWorker{iface: iface, hostname: hostname, ctx: ctx, cancel: cancel, lease: LeaseInfo{State: LeaseAcquiring}}
	a.workers[iface] = w
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.runWorker(w)
	}()
}

// stopWorker cancels w and removes what its lease put on the link. The
// caller holds a.mu; as w changes the system only under a.mu after checking
// its context, nothing of w's comes back after this.
func (a *NetlinkApplier) stopWorker(w *dhcpWorker) {
	w.cancel()
	delete(a.workers, w.iface)
	a.dropLeaseLocked(w)
}

func (a *NetlinkApplier) dropLeaseLocked(w *dhcpWorker) {
	link, err := a.h.LinkByName(w.iface)
	if err != nil {
		return
	}
	if w.addr != nil {
		if err := a.h.AddrDel(link, &netlink.Addr{IPNet: w.addr}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			a.o.Logger.Warn("netconf: remove leased address", "iface", w.iface, "addr", w.addr, "err", err)
		}
	}
	if w.router != nil {
		if err := a.syncDefaultRoute(link, unix.AF_INET, nil, 0, 0); err != nil {
			a.o.Logger.Warn("netconf: remove leased route", "iface", w.iface, "err", err)
		}
	}
	w.addr, w.router = nil, nil
}

func (a *NetlinkApplier) runWorker(w *dhcpWorker) {
	backoff := time.Second
	for w.ctx.Err() == nil {
		err := a.leaseLoop(w)
		if w.ctx.Err() != nil {
			return
		}
		a.mu.Lock()
		if w.ctx.Err() == nil {
			if w.lease.State == LeaseBound {
				// The lease is lost: its address and route go, and
				// discovery starts again soon.
				a.dropLeaseLocked(w)
				w.lease = LeaseInfo{State: LeaseAcquiring}
				backoff = time.Second
				if werr := a.writeResolvLocked(); werr != nil {
					a.o.Logger.Warn("netconf: DHCP name servers", "iface", w.iface, "err", werr)
				}
			}
			w.lease.LastError = err.Error()
		}
		a.mu.Unlock()
		a.o.Logger.Warn("netconf: DHCP", "iface", w.iface, "err", err, "retry_in", backoff)
		if !sleep(w.ctx, backoff) {
			return
		}
		backoff = min(2*backoff, a.o.DHCPBackoff)
	}
}

// leaseLoop obtains a lease and renews it until it is lost; it returns why.
func (a *NetlinkApplier) leaseLoop(w *dhcpWorker) error {
	client, err := nclient4.New(w.iface, nclient4.WithTimeout(a.o.DHCPTimeout), nclient4.WithRetry(a.o.DHCPRetries))
	if err != nil {
		return fmt.Errorf("open DHCP client: %w", err)
	}
	defer client.Close()
	lease, err := client.Request(w.ctx, a.modifiers(w)...)
	if err != nil {
		return fmt.Errorf("request lease: %w", err)
	}
	if err := a.install(w, lease); err != nil {
		return err
	}
	for {
		leaseTime, renewAfter := leaseTimes(lease.ACK, a.o.MinRenewAfter)
		t1 := lease.CreationTime.Add(renewAfter)
		expiry := lease.CreationTime.Add(leaseTime)
		if !sleep(w.ctx, time.Until(t1)) {
			return w.ctx.Err()
		}
		for {
			renewed, err := client.Renew(w.ctx, lease, a.modifiers(w)...)
			if err == nil {
				lease = renewed
				break
			}
			if w.ctx.Err() != nil {
				return w.ctx.Err()
			}
			var nak *nclient4.ErrNak
			if errors.As(err, &nak) {
				return fmt.Errorf("renew refused by the server: %w", err)
			}
			left := time.Until(expiry)
			if left <= 0 {
				return fmt.Errorf("lease expired: %w", err)
			}
			// RFC 2131 4.4.5: retry after half the remaining time, but
			// not more often than once a minute (here: 5 s).
			if !sleep(w.ctx, max(left/2, min(5*time.Second, left))) {
				return w.ctx.Err()
			}
		}
		if err := a.install(w, lease); err != nil {
			return err
		}
	}
}

func (a *NetlinkApplier) modifiers(w *dhcpWorker) []dhcpv4.Modifier {
	a.mu.Lock()
	h := w.hostname
	a.mu.Unlock()
	return []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptHostName(h))}
}

// install puts a lease on the link: address with the lease's lifetime (so
// the kernel drops it should renewal stop), default route, name servers.
func (a *NetlinkApplier) install(w *dhcpWorker, lease *nclient4.Lease) error {
	ack := lease.ACK
	ip := ack.YourIPAddr.To4()
	if ip == nil || ip.IsUnspecified() {
		return errors.New("lease without an IPv4 address")
	}
	mask := ack.SubnetMask()
	if len(mask) != net.IPv4len {
		mask = ip.DefaultMask()
	}
	leaseTime, _ := leaseTimes(ack, a.o.MinRenewAfter)
	secs := int(leaseTime / time.Second)
	addr := &net.IPNet{IP: ip, Mask: mask}
	var router net.IP
	if rs := ack.Router(); len(rs) > 0 && rs[0].To4() != nil {
		router = rs[0].To4()
	}
	var dns []string
	for _, d := range ack.DNS() {
		dns = append(dns, d.String())
	}

	a.mu.Lock()
	var notify *LeaseInfo
	defer func() {
		a.mu.Unlock()
		if notify != nil && a.o.OnLease != nil {
			a.o.OnLease(w.iface, *notify)
		}
	}()
	if w.ctx.Err() != nil {
		return w.ctx.Err()
	}
	link, err := a.h.LinkByName(w.iface)
	if err != nil {
		return fmt.Errorf("find link: %w", err)
	}
	if w.addr != nil && !sameNet(w.addr, addr) {
		_ = a.h.AddrDel(link, &netlink.Addr{IPNet: w.addr})
	}
	nlAddr := &netlink.Addr{IPNet: addr, ValidLft: secs, PreferedLft: secs}
	if bc := ack.BroadcastAddress(); bc.To4() != nil {
		nlAddr.Broadcast = bc.To4()
	}
	if err := a.h.AddrReplace(link, nlAddr); err != nil {
		return fmt.Errorf("add leased address %s: %w", addr, err)
	}
	w.addr = addr
	if err := a.syncDefaultRoute(link, unix.AF_INET, router, unix.RTPROT_DHCP, dhcpMetric); err != nil {
		return err
	}
	w.router = router
	now := time.Now()
	w.lease = LeaseInfo{
		State:   LeaseBound,
		Address: addr.String(),
		DNS:     dns,
		Server:  ack.ServerIdentifier().String(),
		Renewed: lease.CreationTime,
		Renew:   lease.CreationTime.Add(ack.IPAddressRenewalTime(leaseTime / 2)),
		Expires: lease.CreationTime.Add(leaseTime),
	}
	if router != nil {
		w.lease.Router = router.String()
	}
	if err := a.writeResolvLocked(); err != nil {
		a.o.Logger.Warn("netconf: DHCP name servers", "iface", w.iface, "err", err)
	}
	a.o.Logger.Info("netconf: DHCP lease", "iface", w.iface, "addr", w.lease.Address, "router", w.lease.Router,
		"expires_in", w.lease.Expires.Sub(now).Round(time.Second))
	l := w.lease
	l.DNS = slices.Clone(dns)
	notify = &l
	return nil
}

// minLeaseTime is the shortest lease taken as given: with a lease of 0 s,
// from a broken or hostile server, the device renewed over 4000 times a
// second (each renewal a broadcast, a netlink update and a log line).
const minLeaseTime = time.Minute

// leaseTimes returns how long the lease of ack lasts and when to renew it:
// as the server says (an hour and half of it when it says nothing), with
// the lease at least minLeaseTime and the renewal no sooner than minRenew
// nor later than the lease's end.
func leaseTimes(ack *dhcpv4.DHCPv4, minRenew time.Duration) (lease, renew time.Duration) {
	lease = max(ack.IPAddressLeaseTime(time.Hour), minLeaseTime)
	renew = min(max(ack.IPAddressRenewalTime(lease/2), minRenew), lease)
	return lease, renew
}

// sleep waits for d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
