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

	dnssdlog "github.com/brutella/dnssd/log"

	"github.com/rknas/firmware/authd/mdns"
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

// TestAnnouncedOnTheLAN: an owner's computer on the same link resolves
// <hostname>.local and finds the _https._tcp service with its port and
// TXT records; after the hostname changes (a network change or a RESET),
// the new name answers and the old one no longer does.
func TestAnnouncedOnTheLAN(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test makes network namespaces and needs root (make test runs as root)")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import zeroconf").Run(); err != nil {
		t.Fatal("Debian's python3-zeroconf is the independent mDNS client here: run scripts/deps.sh")
	}
	dev, owner := fmt.Sprintf("rknasmd%d-d", os.Getpid()), fmt.Sprintf("rknasmd%d-o", os.Getpid())
	for _, ns := range []string{dev, owner} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	sh(t, "ip", "link", "add", deviceLink, "netns", dev, "type", "veth", "peer", "name", ownerLink, "netns", owner)
	sh(t, "ip", "-n", dev, "addr", "add", deviceAddr+"/24", "dev", deviceLink)
	sh(t, "ip", "-n", owner, "addr", "add", ownerAddr+"/24", "dev", ownerLink)
	sh(t, "ip", "-n", dev, "link", "set", deviceLink, "up", "multicast", "on")
	sh(t, "ip", "-n", owner, "link", "set", ownerLink, "up", "multicast", "on")
	sh(t, "ip", "-n", owner, "route", "add", "224.0.0.0/4", "dev", ownerLink)

	nameFile := filepath.Join(t.TempDir(), "hostname")
	if err := os.WriteFile(nameFile, []byte("rknas-test"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	child := exec.CommandContext(ctx, "ip", "netns", "exec", dev, os.Args[0], "-test.run=^TestResponderChild$", "-test.v")
	child.Env = append(os.Environ(), childEnv+"=1", nameFileEnv+"="+nameFile)
	var childOut strings.Builder
	child.Stdout, child.Stderr = &childOut, &childOut
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		child.Wait()
		if t.Failed() {
			t.Logf("responder output:\n%s", childOut.String())
		}
	})

	// Discover with python3-zeroconf, an independent mDNS/DNS-SD
	// implementation, from the owner's namespace: browse for _https._tcp,
	// then resolve each instance to its host name, addresses, port and TXT.
	discover := func(want string) string {
		t.Helper()
		var got string
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
			out, err := exec.Command("ip", "netns", "exec", owner, "/usr/bin/python3", "-c", zeroconfClient, ownerAddr).CombinedOutput()
			got = strings.TrimSpace(string(out))
			if err == nil && strings.Contains(got, want) {
				return got
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("zeroconf found %q, want %q", got, want)
		return ""
	}
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
	if os.Getenv("RKNAS_MDNS_DEBUG") == "1" {
		dnssdlog.Debug.Enable()
	}
	// Until the parent kills the process.
	mdns.Keep(context.Background(), current, 200*time.Millisecond, log)
}
