package netconf

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"

	"github.com/vishvananda/netlink"
)

// Port is what EthernetPorts needs to know about a link.
type Port struct {
	Name string
	// Type is netlink's link type: "device" for a physical link, "veth",
	// "bridge", "dummy" and so on for virtual ones.
	Type string
	// EncapType is "ether" for Ethernet, "loopback", "none" and so on.
	EncapType string
	Flags     net.Flags
	// DevType is DEVTYPE from the link's uevent in sysfs ("wlan", "wwan",
	// "bridge", ...), empty for plain Ethernet.
	DevType string
}

// IsEthernet reports whether p is a physical Ethernet port: netlink type
// "device" with Ethernet framing, not the loopback and not a wireless or
// mobile-broadband link (which are also of type "device").
func (p Port) IsEthernet() bool {
	return p.Type == "device" && p.EncapType == "ether" && p.Flags&net.FlagLoopback == 0 &&
		p.Name != "lo" && p.DevType == ""
}

// EthernetPorts lists the physical Ethernet ports of the system, sorted by
// name. It is the default Options.Ports.
func EthernetPorts() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("netconf: list links: %w", err)
	}
	ports := make([]Port, 0, len(links))
	for _, l := range links {
		a := l.Attrs()
		ports = append(ports, Port{Name: a.Name, Type: l.Type(), EncapType: a.EncapType, Flags: a.Flags,
			DevType: devType("/sys/class/net", a.Name)})
	}
	return FilterEthernet(ports), nil
}

// FilterEthernet returns the sorted names of the Ethernet ports among ports.
func FilterEthernet(ports []Port) []string {
	names := []string{}
	for _, p := range ports {
		if p.IsEthernet() {
			names = append(names, p.Name)
		}
	}
	sort.Strings(names)
	return names
}

// devType reads DEVTYPE from sysroot/name/uevent; a missing file or line
// gives "".
func devType(sysroot, name string) string {
	data, err := os.ReadFile(filepath.Join(sysroot, name, "uevent"))
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("DEVTYPE=")); ok {
			return string(v)
		}
	}
	return ""
}
