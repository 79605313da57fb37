package netconf

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestFilterEthernet(t *testing.T) {
	ports := []Port{
		{Name: "lo", Type: "device", EncapType: "loopback", Flags: net.FlagLoopback | net.FlagUp},
		{Name: "eth1", Type: "device", EncapType: "ether"},
		{Name: "eth0", Type: "device", EncapType: "ether", Flags: net.FlagUp},
		{Name: "enP4p65s0", Type: "device", EncapType: "ether"},
		{Name: "wlan0", Type: "device", EncapType: "ether", DevType: "wlan"},
		{Name: "wwan0", Type: "device", EncapType: "none", DevType: "wwan"},
		{Name: "br0", Type: "bridge", EncapType: "ether", DevType: "bridge"},
		{Name: "veth1", Type: "veth", EncapType: "ether"},
		{Name: "dummy0", Type: "dummy", EncapType: "ether"},
		{Name: "eth0.10", Type: "vlan", EncapType: "ether", DevType: "vlan"},
		{Name: "tun0", Type: "tuntap", EncapType: "none"},
		{Name: "ifb0", Type: "ifb", EncapType: "ether"},
		{Name: "can0", Type: "can", EncapType: "can"},
	}
	got := FilterEthernet(ports)
	want := []string{"enP4p65s0", "eth0", "eth1"}
	if !slices.Equal(got, want) {
		t.Errorf("FilterEthernet = %v, want %v", got, want)
	}
	if got := FilterEthernet(nil); got == nil || len(got) != 0 {
		t.Errorf("FilterEthernet(nil) = %#v, want an empty list", got)
	}
}

func TestDevType(t *testing.T) {
	root := t.TempDir()
	for name, uevent := range map[string]string{
		"eth0":  "INTERFACE=eth0\nIFINDEX=2\n",
		"wlan0": "DEVTYPE=wlan\nINTERFACE=wlan0\nIFINDEX=3\n",
	} {
		if err := os.MkdirAll(filepath.Join(root, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name, "uevent"), []byte(uevent), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{"eth0": "", "wlan0": "wlan", "missing": ""} {
		if got := devType(root, name); got != want {
			t.Errorf("devType(%s) = %q, want %q", name, got, want)
		}
	}
}

// TestEthernetPortsHost reads the links of the machine the test runs on (it
// changes nothing) and checks the answer against sysfs: every port listed
// is backed by a device, and the loopback is never listed.
func TestEthernetPortsHost(t *testing.T) {
	ports, err := EthernetPorts()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Ethernet ports here: %v", ports)
	for _, p := range ports {
		if p == "lo" {
			t.Error("the loopback is listed")
		}
		if _, err := os.Stat(filepath.Join("/sys/class/net", p, "device")); err != nil {
			t.Errorf("%s is listed but has no device in sysfs: %v", p, err)
		}
	}
}
