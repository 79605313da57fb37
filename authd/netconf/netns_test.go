package netconf_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/netconf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The integration test runs in two network namespaces joined by a veth pair:
// the server side runs Debian's dnsmasq, the client side runs this test
// binary again (TestNetnsChild) under `ip netns exec` in a new UTS
// namespace, so the real applier changes only the namespace's link, the
// namespace's hostname and a resolv.conf in a temp dir.
const (
	childEnv   = "RKNAS_NETCONF_NETNS_CHILD"
	hostNSEnv  = "RKNAS_NETCONF_HOST_NS_"
	clientLink = "vc0"
	serverLink = "vs0"
	serverAddr = "10.77.0.1"
	leaseDNS   = "10.77.0.53"
	nsPrefix   = "rknasnc"
)

var nsName = regexp.MustCompile(`^` + nsPrefix + `(\d+)-[cs]$`)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	// make test runs as root (it installs packages); a developer without
	// root may skip these only by saying so.
	if os.Getenv("RKNAS_ALLOW_SKIP") != "1" || os.Getenv("RKNAS_REQUIRE_HW") == "1" {
		t.Fatal("network namespace tests need root: run make test as root (RKNAS_ALLOW_SKIP=1 skips them on purpose)")
	}
	t.Skip("network namespace tests need root; skipped because RKNAS_ALLOW_SKIP=1")
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// removeStaleNamespaces deletes namespaces left by an earlier run of this
// test that was killed before it could clean up.
func removeStaleNamespaces(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := nsName.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue // ours, or a run still going
		}
		_ = exec.Command("ip", "netns", "del", f[0]).Run()
	}
}

func TestNetns(t *testing.T) {
	needRoot(t)
	for _, bin := range []string{"ip", "/usr/sbin/dnsmasq"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is missing: install Debian's iproute2 and dnsmasq (scripts/deps.sh): %v", bin, err)
		}
	}
	removeStaleNamespaces(t)
	client := fmt.Sprintf("%s%d-c", nsPrefix, os.Getpid())
	server := fmt.Sprintf("%s%d-s", nsPrefix, os.Getpid())
	for _, ns := range []string{client, server} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
	}
	// The pair is created inside the client namespace with its peer sent
	// straight to the server namespace: the host's links are never touched.
	run(t, "ip", "-n", client, "link", "add", clientLink, "type", "veth", "peer", "name", serverLink, "netns", server)
	run(t, "ip", "-n", server, "addr", "add", serverAddr+"/24", "dev", serverLink)
	run(t, "ip", "-n", server, "-6", "addr", "add", "fd77::1/64", "dev", serverLink, "nodad")
	run(t, "ip", "-n", server, "link", "set", serverLink, "up")
	run(t, "ip", "-n", server, "link", "set", "lo", "up")

	dir := t.TempDir()
	startDnsmasq(t, server, dir)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", client, os.Args[0],
		"-test.run=^TestNetnsChild$", "-test.v", "-test.count=1", "-test.timeout=150s")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	for _, ns := range []string{"net", "uts"} {
		id, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, hostNSEnv+strings.ToUpper(ns)+"="+id)
	}
	// A UTS namespace of its own, so setting the hostname is real but
	// cannot change the host's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUTS}
	out, err := cmd.CombinedOutput()
	t.Logf("inside the namespace:\n%s", out)
	if err != nil {
		t.Fatalf("the test inside the namespace failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestNetnsChild") {
		t.Fatal("the test inside the namespace did not report a pass")
	}
}

// startDnsmasq runs dnsmasq in namespace ns and waits until it says it
// serves DHCP.
func startDnsmasq(t *testing.T, ns, dir string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "/usr/sbin/dnsmasq",
		"--no-daemon", "--conf-file=/dev/null", "--pid-file="+filepath.Join(dir, "dnsmasq.pid"),
		"--dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,2m", "--interface="+serverLink, "--bind-interfaces",
		"--no-resolv", "--dhcp-leasefile="+filepath.Join(dir, "leases"), "--port=0", "--no-ping",
		"--log-dhcp", "--log-facility=-", "--user=root", "--group=root",
		"--dhcp-option=option:router,"+serverAddr, "--dhcp-option=option:dns-server,"+leaseDNS,
		// A short renewal time (T1), so the test sees a renewal (the
		// applier is told to take one this short); dnsmasq does not
		// grant leases shorter than 2 minutes.
		"--dhcp-option=option:T1,3")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dnsmasq: %v", err)
	}
	// ip netns exec execs dnsmasq, so this is dnsmasq's own process.
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan struct{})
	var mu sync.Mutex
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), "DHCP, IP range") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		t.Logf("dnsmasq:\n%s", log.String())
	})
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("dnsmasq did not report serving DHCP within 10 s")
	}
}

// TestNetnsChild is the part of TestNetns that runs inside the client
// namespace. Run on its own it has nothing to work on and returns at once.
func TestNetnsChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		return
	}
	// Guard the host: refuse to run in the host's network or UTS
	// namespace.
	for _, ns := range []string{"net", "uts"} {
		self, err := os.Readlink("/proc/self/ns/" + ns)
		host := os.Getenv(hostNSEnv + strings.ToUpper(ns))
		if err != nil || host == "" || self == host {
			t.Fatalf("not in a %s namespace of its own (%s, host %q, %v); refusing to touch the host", ns, self, host, err)
		}
	}
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	leases := make(chan netconf.LeaseInfo, 16)
	rollbacks := make(chan string, 4)
	applier, err := netconf.NewNetlinkApplier(netconf.NetlinkOptions{
		ResolvConf:    resolv,
		MinRenewAfter: 3 * time.Second, // dnsmasq's T1 below
		Logger:        slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		OnLease: func(iface string, l netconf.LeaseInfo) {
			if iface == clientLink {
				leases <- l
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 3 * time.Second
	m, err := netconf.NewManager(netconf.Options{
		Dir: dir, Applier: applier,
		// The veth end is not an Ethernet port; the default is built as
		// if it were.
		Ports:           func() ([]string, error) { return []string{clientLink}, nil },
		DefaultHostname: "rknas-netns",
		ConfirmTimeout:  timeout,
		Logger:          slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		OnRollback:      func(id string) { rollbacks <- id },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()

	t.Run("ports", func(t *testing.T) {
		ports, err := netconf.EthernetPorts()
		if err != nil {
			t.Fatal(err)
		}
		if len(ports) != 0 {
			t.Errorf("EthernetPorts = %v in a namespace holding only lo and a veth; want none", ports)
		}
	})

	var first netconf.LeaseInfo
	t.Run("dhcp", func(t *testing.T) {
		start := time.Now()
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		first = waitLease(t, leases)
		t.Logf("lease %s from %s after %v", first.Address, first.Server, time.Since(start).Round(time.Millisecond))
		if _, _, err := net.ParseCIDR(first.Address); err != nil || !strings.HasPrefix(first.Address, "10.77.0.") || !strings.HasSuffix(first.Address, "/24") {
			t.Fatalf("lease address %q (%v), want one of 10.77.0.100-150/24", first.Address, err)
		}
		wantAddrs(t, []string{first.Address}, nil)
		wantDefaultRoute(t, unix.AF_INET, serverAddr)
		wantResolv(t, resolv, leaseDNS)
		wantHostname(t, "rknas-netns")
		dial(t, serverAddr)
		st, err := m.Status(ctx)
		if err != nil || len(st.Interfaces) != 1 || st.Interfaces[0].Lease == nil || st.Interfaces[0].Lease.State != netconf.LeaseBound ||
			!slices.Contains(st.Interfaces[0].Addresses, first.Address) || st.Interfaces[0].Lease.Router != serverAddr {
			t.Errorf("Status = %+v, %v", st, err)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("renewal", func(t *testing.T) {
		l := waitLease(t, leases)
		if l.Address != first.Address || !l.Renewed.After(first.Renewed) {
			t.Errorf("renewal gave %+v after %+v", l, first)
		}
		t.Logf("renewed %v after the first lease", l.Renewed.Sub(first.Renewed).Round(time.Millisecond))
	})

	staticCfg := netconf.Config{Hostname: "vault", Interfaces: []netconf.Interface{{
		Name: clientLink, Mode: netconf.ModeStatic, Addresses: []string{"10.77.0.9/24", "fd77::9/64"},
		Gateway4: serverAddr, Gateway6: "fd77::1"}}, DNS: []string{"192.0.2.53", "2001:db8::53"}}
	t.Run("static", func(t *testing.T) {
		id, _, err := m.Apply(ctx, staticCfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Confirm(id); err != nil {
			t.Fatalf("Confirm: %v", err)
		}
		wantAddrs(t, []string{"10.77.0.9/24", "fd77::9/64"}, []string{first.Address})
		wantDefaultRoute(t, unix.AF_INET, serverAddr)
		wantDefaultRoute(t, unix.AF_INET6, "fd77::1")
		wantResolv(t, resolv, "192.0.2.53", "2001:db8::53")
		wantHostname(t, "vault")
		dial(t, serverAddr)
		if saved, err := netconf.Load(netconf.Path(dir), netconf.Config{}); err != nil || !saved.Equal(staticCfg) {
			t.Errorf("saved %+v, %v", saved, err)
		}
	})

	t.Run("rollback", func(t *testing.T) {
		trial := netconf.Config{Hostname: "trial", Interfaces: []netconf.Interface{{
			Name: clientLink, Mode: netconf.ModeStatic, Addresses: []string{"10.77.0.20/24"}}}, DNS: []string{}}
		start := time.Now()
		id, _, err := m.Apply(ctx, trial)
		if err != nil {
			t.Fatal(err)
		}
		wantAddrs(t, []string{"10.77.0.20/24"}, []string{"10.77.0.9/24", "fd77::9/64"})
		wantNoDefaultRoute(t, unix.AF_INET)
		wantHostname(t, "trial")
		select {
		case got := <-rollbacks:
			if got != id {
				t.Fatalf("rolled back %s, want %s", got, id)
			}
		case <-time.After(timeout + 10*time.Second):
			t.Fatal("no rollback after the confirmation timeout")
		}
		t.Logf("rolled back %v after the change (timeout %v)", time.Since(start).Round(time.Millisecond), timeout)
		wantAddrs(t, []string{"10.77.0.9/24", "fd77::9/64"}, []string{"10.77.0.20/24"})
		wantDefaultRoute(t, unix.AF_INET, serverAddr)
		wantDefaultRoute(t, unix.AF_INET6, "fd77::1")
		wantResolv(t, resolv, "192.0.2.53", "2001:db8::53")
		wantHostname(t, "vault")
		dial(t, serverAddr)
		if err := m.Confirm(id); !errors.Is(err, netconf.ErrNoPending) {
			t.Errorf("Confirm after the rollback = %v", err)
		}
	})

	t.Run("removed interface", func(t *testing.T) {
		// A second link, made in this namespace only.
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vc1"}, PeerName: "vc1p"}); err != nil {
			t.Fatal(err)
		}
		two := staticCfg.Clone()
		two.Interfaces = append(two.Interfaces, netconf.Interface{Name: "vc1", Mode: netconf.ModeStatic, Addresses: []string{"10.88.0.2/24", "fd88::2/64"}})
		for _, c := range []netconf.Config{two, staticCfg} {
			id, _, err := m.Apply(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Confirm(id); err != nil {
				t.Fatal(err)
			}
			_, listed := c.Interface("vc1")
			addrs := linkAddrsOf(t, "vc1")
			for _, a := range []string{"10.88.0.2/24", "fd88::2/64"} {
				if slices.Contains(addrs, a) != listed {
					t.Errorf("vc1 listed %v, has %v", listed, addrs)
				}
			}
		}
		wantAddrs(t, []string{"10.77.0.9/24", "fd77::9/64"}, nil)
	})

	t.Run("unknown link", func(t *testing.T) {
		bad := staticCfg.Clone()
		bad.Hostname = "never"
		bad.Interfaces = append(bad.Interfaces, netconf.Interface{Name: "nosuch0", Mode: netconf.ModeDHCP})
		_, _, err := m.Apply(ctx, bad)
		if err == nil || !strings.Contains(err.Error(), "interfaces[nosuch0]") {
			t.Fatalf("Apply naming a missing link = %v", err)
		}
		wantHostname(t, "vault")
		wantAddrs(t, []string{"10.77.0.9/24", "fd77::9/64"}, nil)
	})

	t.Run("reset", func(t *testing.T) {
		start := time.Now()
		for i := range 2 {
			if err := m.ResetToDefault(ctx); err != nil {
				t.Fatalf("ResetToDefault #%d: %v", i+1, err)
			}
		}
		l := waitLeaseSince(t, leases, start)
		wantAddrs(t, []string{l.Address}, []string{"10.77.0.9/24", "fd77::9/64"})
		wantDefaultRoute(t, unix.AF_INET, serverAddr)
		wantResolv(t, resolv, leaseDNS)
		wantHostname(t, "rknas-netns")
		want := netconf.Default([]string{clientLink})
		want.Hostname = "rknas-netns"
		if saved, err := netconf.Load(netconf.Path(dir), netconf.Config{}); err != nil || !saved.Equal(want) {
			t.Errorf("saved %+v, %v", saved, err)
		}
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func waitLease(t *testing.T, leases <-chan netconf.LeaseInfo) netconf.LeaseInfo {
	t.Helper()
	select {
	case l := <-leases:
		return l
	case <-time.After(30 * time.Second):
		t.Fatal("no DHCP lease within 30 s")
		return netconf.LeaseInfo{}
	}
}

// waitLeaseSince waits for a lease obtained after since, passing over
// events a stopped client may have sent just before it stopped.
func waitLeaseSince(t *testing.T, leases <-chan netconf.LeaseInfo, since time.Time) netconf.LeaseInfo {
	t.Helper()
	for {
		if l := waitLease(t, leases); !l.Renewed.Before(since) {
			return l
		}
	}
}

func linkAddrs(t *testing.T) []string {
	t.Helper()
	return linkAddrsOf(t, clientLink)
}

func linkAddrsOf(t *testing.T, name string) []string {
	t.Helper()
	link, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := netlink.AddrList(link, unix.AF_UNSPEC)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.IPNet.String())
	}
	return out
}

// wantAddrs checks the addresses on the client link now: all of want, none
// of gone.
func wantAddrs(t *testing.T, want, gone []string) {
	t.Helper()
	have := linkAddrs(t)
	for _, w := range want {
		if !slices.Contains(have, w) {
			t.Errorf("%s lacks %s; it has %v", clientLink, w, have)
		}
	}
	for _, g := range gone {
		if slices.Contains(have, g) {
			t.Errorf("%s still has %s; it has %v", clientLink, g, have)
		}
	}
}

func defaultGateways(t *testing.T, family int) []string {
	t.Helper()
	routes, err := netlink.RouteList(nil, family)
	if err != nil {
		t.Fatal(err)
	}
	var gws []string
	for _, r := range routes {
		if ones, _ := maskOf(r); ones == 0 && r.Gw != nil {
			gws = append(gws, r.Gw.String())
		}
	}
	return gws
}

func maskOf(r netlink.Route) (int, int) {
	if r.Dst == nil {
		return 0, 0
	}
	return r.Dst.Mask.Size()
}

func wantDefaultRoute(t *testing.T, family int, gw string) {
	t.Helper()
	if gws := defaultGateways(t, family); !slices.Equal(gws, []string{gw}) {
		t.Errorf("default routes via %v, want exactly via %s", gws, gw)
	}
}

func wantNoDefaultRoute(t *testing.T, family int) {
	t.Helper()
	if gws := defaultGateways(t, family); len(gws) != 0 {
		t.Errorf("default routes via %v, want none", gws)
	}
}

func wantResolv(t *testing.T, path string, servers ...string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(string(data), "\n") {
		if s, ok := strings.CutPrefix(line, "nameserver "); ok {
			got = append(got, s)
		}
	}
	if !slices.Equal(got, servers) {
		t.Errorf("resolv.conf names %v, want %v:\n%s", got, servers, data)
	}
}

func wantHostname(t *testing.T, want string) {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	if got := unix.ByteSliceToString(u.Nodename[:]); got != want {
		t.Errorf("hostname %q, want %q", got, want)
	}
}

// dial proves IPv4 reaches the server namespace: nothing listens on the
// port, so a connection refused (an RST from the peer) is the answer.
func dial(t *testing.T, host string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, "9"), 5*time.Second)
	if err == nil {
		c.Close()
		return
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial %s: %v; want connection refused from the peer", host, err)
	}
}
