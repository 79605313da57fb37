package mdns_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/mdns"
	"github.com/rknas/firmware/internal/lockedbuf"
)

// The test runs the responder in one network namespace and Debian's
// python3-zeroconf, an independent mDNS implementation, in another, joined by a veth pair: the
// responder is this test binary again (TestResponderChild) under
// `ip netns exec`.
const (
	childEnv    = "RKNAS_MDNS_CHILD"
	nameFileEnv = "RKNAS_MDNS_NAME_FILE"
	deviceLink  = "md0"
	ownerLink   = "md1"
	deviceAddr  = "10.78.0.1"
	ownerAddr   = "10.78.0.2"
)

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// lan is a device namespace running the responder (this test binary
// again, TestResponderChild, under `ip netns exec`) and an owner's
// namespace, joined by a veth pair.
type lan struct {
	dev, owner string
	nameFile   string
	out        *lockedbuf.Buffer
}

func startLAN(t *testing.T) *lan {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test makes network namespaces and needs root (make test runs as root)")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import zeroconf").Run(); err != nil {
		t.Fatal("Debian's python3-zeroconf is the independent mDNS client here: run scripts/deps.sh")
	}
	l := &lan{dev: fmt.Sprintf("rknasmd%d-d", os.Getpid()), owner: fmt.Sprintf("rknasmd%d-o", os.Getpid()), out: &lockedbuf.Buffer{}}
	for _, ns := range []string{l.dev, l.owner} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	sh(t, "ip", "link", "add", deviceLink, "netns", l.dev, "type", "veth", "peer", "name", ownerLink, "netns", l.owner)
	sh(t, "ip", "-n", l.dev, "addr", "add", deviceAddr+"/24", "dev", deviceLink)
	sh(t, "ip", "-n", l.owner, "addr", "add", ownerAddr+"/24", "dev", ownerLink)
	sh(t, "ip", "-n", l.dev, "link", "set", deviceLink, "up", "multicast", "on")
	sh(t, "ip", "-n", l.owner, "link", "set", ownerLink, "up", "multicast", "on")
	sh(t, "ip", "-n", l.owner, "route", "add", "224.0.0.0/4", "dev", ownerLink)

	l.nameFile = filepath.Join(t.TempDir(), "hostname")
	if err := os.WriteFile(l.nameFile, []byte("rknas-test"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	child := exec.CommandContext(ctx, "ip", "netns", "exec", l.dev, os.Args[0], "-test.run=^TestResponderChild$", "-test.v")
	child.Env = append(os.Environ(), childEnv+"=1", nameFileEnv+"="+l.nameFile)
	child.Stdout, child.Stderr = l.out, l.out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		child.Wait()
		if t.Failed() {
			t.Logf("responder output:\n%s", l.out.String())
		}
	})
	return l
}

// TestAnnouncedOnTheLAN: an owner's computer on the same link resolves
// <hostname>.local and finds the _https._tcp service with its port and
// TXT records; after the hostname changes (a network change or a RESET),
// the new name answers and the old one no longer does.
func TestAnnouncedOnTheLAN(t *testing.T) {
	l := startLAN(t)
	nameFile := l.nameFile

	discover := func(want string) string { return l.discover(t, want) }
	begin := time.Now()
	got := discover(`service "Test NAS (rknas-test)._https._tcp.local." server "rknas-test.local." port 443 addresses ["` + deviceAddr + `"`)
	fmt.Printf("mdns: found and resolved by python3-zeroconf from another namespace %v after start\n", time.Since(begin).Round(time.Millisecond))
	if want := `txt {"board": "test-board", "model": "Test NAS", "version": "v1.2.3"}`; !strings.Contains(got, want) {
		t.Errorf("TXT: %s, want %s", got, want)
	}

	// A new hostname, as after a RESET: announced anew, the old one gone.
	if err := os.WriteFile(nameFile, []byte("rknas-renamed"), 0o644); err != nil {
		t.Fatal(err)
	}
	begin = time.Now()
	got = discover(`server "rknas-renamed.local." port 443 addresses ["` + deviceAddr + `"`)
	fmt.Printf("mdns: the new name found %v after the change\n", time.Since(begin).Round(time.Millisecond))
	if strings.Contains(got, `"rknas-test.local."`) {
		t.Errorf("the old name is still announced: %s", got)
	}
}

// discover browses with python3-zeroconf, an independent mDNS/DNS-SD
// implementation, from the owner's namespace: for _https._tcp, then
// resolving each instance to its host name, addresses, port and TXT. It
// tries until the answer holds want, for 30 s.
func (l *lan) discover(t *testing.T, want string) string {
	t.Helper()
	var got string
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
		out, err := exec.Command("ip", "netns", "exec", l.owner, "/usr/bin/python3", "-c", zeroconfClient, ownerAddr).CombinedOutput()
		got = strings.TrimSpace(string(out))
		if err == nil && strings.Contains(got, want) {
			return got
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("zeroconf found %q, want %q", got, want)
	return ""
}

// zeroconfClient browses for _https._tcp services for 2 seconds on the
// address given as its argument and prints each one resolved.
const zeroconfClient = `
import json, sys, time
from zeroconf import Zeroconf, ServiceBrowser, ServiceListener
zc = Zeroconf(interfaces=[sys.argv[1]])
names = set()
class Listener(ServiceListener):
    def add_service(self, zc, type_, name): names.add(name)
    def update_service(self, zc, type_, name): names.add(name)
    def remove_service(self, zc, type_, name): names.discard(name)
browser = ServiceBrowser(zc, "_https._tcp.local.", Listener())
time.sleep(2)
for name in sorted(names):
    info = zc.get_service_info("_https._tcp.local.", name, 3000)
    if info is None:
        print("service", json.dumps(name), "unresolved")
        continue
    txt = {k.decode(): (v or b"").decode() for k, v in sorted(info.properties.items())}
    print("service", json.dumps(name), "server", json.dumps(info.server), "port", info.port,
          "addresses", json.dumps(info.parsed_addresses()), "txt", json.dumps(txt, sort_keys=True))
zc.close()
`

// TestResponderChild is the device side of TestAnnouncedOnTheLAN; it does
// nothing in a normal run.
func TestResponderChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		return
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	current := func() (mdns.Config, error) {
		name, err := os.ReadFile(os.Getenv(nameFileEnv))
		if err != nil {
			return mdns.Config{}, err
		}
		host := strings.TrimSpace(string(name))
		return mdns.Config{Hostname: host, Instance: "Test NAS (" + host + ")", Port: 443, Ifaces: mdns.Interfaces([]string{deviceLink}),
			Text: map[string]string{"model": "Test NAS", "board": "test-board", "version": "v1.2.3"}}, nil
	}
	// Until the parent kills the process.
	mdns.Keep(context.Background(), current, 200*time.Millisecond, log)
}

// TestLANAbuseDrawsLittle: what a neighbour can send with real sockets.
// One query of 200 questions draws one answer of the device's records; a
// header announcing 235 questions it does not hold draws nothing; a query
// from an address off the link, which the device could route to, draws
// nothing (it would turn the answer on a victim); and another device
// claiming the name over and over neither renames nor silences the
// device: the name is kept, still found by python3-zeroconf, and the claim
// logged.
func TestLANAbuseDrawsLittle(t *testing.T) {
	l := startLAN(t)
	l.discover(t, `server "rknas-test.local." port 443`)
	// The device can reach the off-link address through the owner's side.
	sh(t, "ip", "-n", l.dev, "route", "add", "default", "via", ownerAddr)
	sh(t, "ip", "-n", l.owner, "addr", "add", "10.79.0.2/24", "dev", ownerLink)

	probe := func(mode, source string) (datagrams, bytes int) {
		t.Helper()
		out := sh(t, "ip", "netns", "exec", l.owner, "/usr/bin/python3", "-c", abuseClient, mode, source)
		if _, err := fmt.Sscanf(out, "%d %d", &datagrams, &bytes); err != nil {
			t.Fatalf("abuse client: %q: %v", out, err)
		}
		return datagrams, bytes
	}
	n, size := probe("many", ownerAddr)
	fmt.Printf("mdns: 200 questions in one query drew %d datagram(s), %d bytes\n", n, size)
	if n != 1 || size > 1024 {
		t.Errorf("200 questions drew %d datagrams, %d bytes; want one, under 1 KiB", n, size)
	}
	if n, _ := probe("header", ownerAddr); n != 0 {
		t.Errorf("a header announcing 235 questions drew %d datagrams", n)
	}
	if n, _ := probe("many", "10.79.0.2"); n != 0 {
		t.Errorf("a query from off the link drew %d datagrams", n)
	}

	n, _ = probe("claim", ownerAddr)
	if n != 0 {
		t.Errorf("a claim to the name drew %d datagrams", n)
	}
	got := l.discover(t, `server "rknas-test.local." port 443 addresses ["`+deviceAddr+`"`)
	if strings.Contains(got, "rknas-test-2") {
		t.Errorf("the device renamed itself: %s", got)
	}
	for end := time.Now().Add(10 * time.Second); !strings.Contains(l.out.String(), "another device on the LAN answers for this device's name"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the claims to the name were not logged")
		}
	}
	if c := strings.Count(l.out.String(), "another device on the LAN answers"); c != 1 {
		t.Errorf("50 claims logged %d times, want once a minute", c)
	}
}

// abuseClient sends, from the owner's side, one of: "many" (a one-shot
// query of 200 questions for the service, from the address given, port
// 40000), "header" (12 bytes announcing 235 questions), "claim" (50
// answers claiming rknas-test.local at 255.255.255.255); and prints the
// datagrams and bytes that came back to its port within 1.5 s.
const abuseClient = `
import socket, struct, sys, time
mode, source = sys.argv[1], sys.argv[2]
def name(n):
    return b"".join(bytes([len(p)]) + p.encode() for p in n.split(".")) + b"\x00"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(source))
s.bind((source, 40000))
group = ("224.0.0.251", 5353)
if mode == "many":
    q = name("_https._tcp.local") + struct.pack(">HH", 12, 1)
    s.sendto(struct.pack(">HHHHHH", 7, 0, 200, 0, 0, 0) + q * 200, group)
elif mode == "header":
    s.sendto(struct.pack(">HHHHHH", 0, 0, 235, 0, 0, 0), group)
elif mode == "claim":
    rr = name("rknas-test.local") + struct.pack(">HHIH", 1, 0x8001, 120, 4) + bytes([255, 255, 255, 255])
    for i in range(50):
        s.sendto(struct.pack(">HHHHHH", 0, 0x8400, 0, 1, 0, 0) + rr, group)
        time.sleep(0.02)
s.settimeout(0.1)
n = size = 0
end = time.time() + 1.5
while time.time() < end:
    try:
        d = s.recv(9000)
        n += 1
        size += len(d)
    except socket.timeout:
        pass
print(n, size)
`
