// Package netconf owns the network configuration of the NAS: it decodes,
// validates, stores and applies it, and rolls back changes that are not
// confirmed in time.
package netconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// Mode says how an interface gets its IPv4 configuration.
type Mode string

// The interface modes.
const (
	// ModeDHCP asks a DHCPv4 server for the address, the default route and
	// the DNS servers. IPv6 is left to the kernel (SLAAC from router
	// advertisements).
	ModeDHCP Mode = "dhcp"
	// ModeStatic uses the addresses and gateways of the configuration.
	ModeStatic Mode = "static"
)

// DefaultHostname is the hostname of a device that has not been given one.
const DefaultHostname = "rknas"

// Bounds on sizes, so that a configuration from outside cannot make the
// daemon do unbounded work.
const (
	// MaxConfigBytes bounds the encoded configuration.
	MaxConfigBytes = 64 << 10
	// MaxInterfaces bounds the number of interfaces in a configuration.
	MaxInterfaces = 32
	// MaxAddresses bounds the static addresses of one interface.
	MaxAddresses = 16
	// MaxDNS is the number of name servers the C libraries read from
	// resolv.conf (MAXNS in glibc and musl); more would be ignored.
	MaxDNS = 3
	// MaxHostnameLen is the kernel's HOST_NAME_MAX.
	MaxHostnameLen = 64
	// maxIfnameLen is IFNAMSIZ-1.
	maxIfnameLen = 15
)

// Config is the network configuration of the device.
//
// Interfaces not listed are left alone. DNS, when not empty, replaces the name
// servers learnt by DHCP; when empty, resolv.conf lists the servers of the
// DHCP leases.
type Config struct {
	Hostname   string      `json:"hostname"`
	Interfaces []Interface `json:"interfaces"`
	DNS        []string    `json:"dns"`
}

// Interface is the configuration of one network interface.
type Interface struct {
	// Name is the kernel's name of the link, such as "eth0" or "end0".
	Name string `json:"name"`
	Mode Mode   `json:"mode"`
	// Addresses are IPv4 and IPv6 addresses with their prefix length, such
	// as "192.168.1.10/24" or "fd00::10/64". Only with ModeStatic.
	Addresses []string `json:"addresses,omitempty"`
	// Gateway4 is the IPv4 default gateway; it must lie in one of the
	// IPv4 subnets of Addresses. Only with ModeStatic.
	Gateway4 string `json:"gateway4,omitempty"`
	// Gateway6 is the IPv6 default gateway; it must lie in one of the IPv6
	// subnets of Addresses or be link-local. Only with ModeStatic.
	Gateway6 string `json:"gateway6,omitempty"`
}

// Default returns the configuration that a reset puts back: DHCP on every
// Ethernet port given, the default hostname, no fixed DNS servers.
func Default(ifaces []string) Config {
	c := Config{Hostname: DefaultHostname, Interfaces: []Interface{}, DNS: []string{}}
	for _, name := range ifaces {
		c.Interfaces = append(c.Interfaces, Interface{Name: name, Mode: ModeDHCP})
	}
	return c
}

// Clone returns a deep copy of c, so that callers cannot change a
// configuration held by the Manager through shared slices.
func (c Config) Clone() Config {
	out := Config{Hostname: c.Hostname, DNS: append([]string{}, c.DNS...)}
	out.Interfaces = make([]Interface, len(c.Interfaces))
	for i, ifc := range c.Interfaces {
		ifc.Addresses = append([]string(nil), ifc.Addresses...)
		out.Interfaces[i] = ifc
	}
	return out
}

// Interface returns the configuration of the interface called name.
func (c Config) Interface(name string) (Interface, bool) {
	for _, ifc := range c.Interfaces {
		if ifc.Name == name {
			return ifc, true
		}
	}
	return Interface{}, false
}

// Equal reports whether c and o configure the same thing.
func (c Config) Equal(o Config) bool {
	a, _ := json.Marshal(c.normalized())
	b, _ := json.Marshal(o.normalized())
	return bytes.Equal(a, b)
}

func (c Config) normalized() Config {
	c = c.Clone()
	for i := range c.Interfaces {
		if len(c.Interfaces[i].Addresses) == 0 {
			c.Interfaces[i].Addresses = nil
		}
	}
	return c
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid network configuration")

// FieldError is a validation error naming the field at fault, such as
// `interfaces[eth0].addresses[1]`.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks c and returns the first problem found, as a *FieldError
// naming the field.
func (c Config) Validate() error {
	if err := validateHostname(c.Hostname); err != nil {
		return fieldErr("hostname", "%q %v", c.Hostname, err)
	}
	if len(c.Interfaces) > MaxInterfaces {
		return fieldErr("interfaces", "%d interfaces, at most %d allowed", len(c.Interfaces), MaxInterfaces)
	}
	seen := map[string]int{}
	gw4Owner := ""
	for i, ifc := range c.Interfaces {
		if err := validateIfname(ifc.Name); err != nil {
			return fieldErr(fmt.Sprintf("interfaces[%d].name", i), "%q %v", ifc.Name, err)
		}
		if j, dup := seen[ifc.Name]; dup {
			return fieldErr(fmt.Sprintf("interfaces[%d].name", i), "%q is already configured by interfaces[%d]", ifc.Name, j)
		}
		seen[ifc.Name] = i
		if err := ifc.validate(); err != nil {
			return err
		}
		if ifc.Gateway4 != "" {
			if gw4Owner != "" {
				// Two IPv4 default routes would fight each other; the
				// second interface reaches only its own subnets.
				return fieldErr("interfaces["+ifc.Name+"].gateway4", "only one interface may have an IPv4 gateway; interfaces[%s] already has one", gw4Owner)
			}
			gw4Owner = ifc.Name
		}
	}
	if len(c.DNS) > MaxDNS {
		return fieldErr("dns", "%d servers, at most %d allowed", len(c.DNS), MaxDNS)
	}
	dns := map[netip.Addr]int{}
	for i, s := range c.DNS {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return fieldErr(fmt.Sprintf("dns[%d]", i), "%q is not an IPv4 or IPv6 address", s)
		}
		if a.IsUnspecified() || a.IsMulticast() {
			return fieldErr(fmt.Sprintf("dns[%d]", i), "%q cannot be a name server", s)
		}
		if j, dup := dns[a]; dup {
			return fieldErr(fmt.Sprintf("dns[%d]", i), "%q repeats dns[%d]", s, j)
		}
		dns[a] = i
	}
	return nil
}

func (ifc Interface) validate() error {
	f := "interfaces[" + ifc.Name + "]"
	switch ifc.Mode {
	case ModeDHCP:
		for _, field := range []struct {
			name string
			set  bool
		}{{"addresses", len(ifc.Addresses) > 0}, {"gateway4", ifc.Gateway4 != ""}, {"gateway6", ifc.Gateway6 != ""}} {
			if field.set {
				return fieldErr(f+"."+field.name, "only allowed with mode %q", ModeStatic)
			}
		}
		return nil
	case ModeStatic:
	case "":
		return fieldErr(f+".mode", "missing; want %q or %q", ModeDHCP, ModeStatic)
	default:
		return fieldErr(f+".mode", "unknown mode %q; want %q or %q", ifc.Mode, ModeDHCP, ModeStatic)
	}
	if len(ifc.Addresses) == 0 {
		return fieldErr(f+".addresses", "mode %q needs at least one address", ModeStatic)
	}
	if len(ifc.Addresses) > MaxAddresses {
		return fieldErr(f+".addresses", "%d addresses, at most %d allowed", len(ifc.Addresses), MaxAddresses)
	}
	prefixes := make([]netip.Prefix, 0, len(ifc.Addresses))
	seen := map[netip.Addr]int{}
	for i, s := range ifc.Addresses {
		field := fmt.Sprintf("%s.addresses[%d]", f, i)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fieldErr(field, "%q is not an IPv4 or IPv6 prefix (such as 192.168.1.10/24 or fd00::10/64)", s)
		}
		a := p.Addr()
		switch {
		case a.Is4In6():
			return fieldErr(field, "%q: write IPv4 addresses in dotted form", s)
		case a.IsUnspecified(), a.IsLoopback(), a.IsMulticast():
			return fieldErr(field, "%q is not a host address", s)
		case p.Bits() == 0:
			return fieldErr(field, "%q: prefix length 0 is not allowed", s)
		case a.Is4() && p.Bits() < 31 && (a == p.Masked().Addr() || a == broadcast(p)):
			return fieldErr(field, "%q is the network or broadcast address of its subnet", s)
		}
		if j, dup := seen[a]; dup {
			return fieldErr(field, "%q repeats addresses[%d]", s, j)
		}
		seen[a] = i
		prefixes = append(prefixes, p)
	}
	if err := checkGateway(f+".gateway4", ifc.Gateway4, prefixes, true); err != nil {
		return err
	}
	return checkGateway(f+".gateway6", ifc.Gateway6, prefixes, false)
}

func checkGateway(field, s string, prefixes []netip.Prefix, v4 bool) error {
	if s == "" {
		return nil
	}
	family := "IPv6"
	if v4 {
		family = "IPv4"
	}
	gw, err := netip.ParseAddr(s)
	if err != nil || gw.Zone() != "" || gw.Is4() != v4 || gw.Is4In6() {
		return fieldErr(field, "%q is not an %s address", s, family)
	}
	if gw.IsUnspecified() || gw.IsMulticast() || gw.IsLoopback() {
		return fieldErr(field, "%q cannot be a gateway", s)
	}
	if !v4 && gw.IsLinkLocalUnicast() {
		// IPv6 routers usually announce themselves by their link-local
		// address, which is on every link.
		return nil
	}
	for _, p := range prefixes {
		if p.Addr().Is4() == v4 && p.Contains(gw) {
			if gw == p.Addr() {
				return fieldErr(field, "%q is the interface's own address", s)
			}
			return nil
		}
	}
	return fieldErr(field, "%q is not in any of the interface's %s subnets", s, family)
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// validateHostname checks RFC 1123 host name syntax, limited to the kernel's
// 64 bytes.
func validateHostname(h string) error {
	if h == "" {
		return errors.New("is empty")
	}
	if len(h) > MaxHostnameLen {
		return fmt.Errorf("is longer than %d characters", MaxHostnameLen)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return errors.New("has an empty label")
		}
		if len(label) > 63 {
			return errors.New("has a label longer than 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("has a label that starts or ends with '-'")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return errors.New("may hold only letters, digits, '-' and '.' (RFC 1123)")
			}
		}
	}
	return nil
}

// validateIfname checks what the kernel accepts as a link name.
func validateIfname(n string) error {
	if n == "" {
		return errors.New("is empty")
	}
	if len(n) > maxIfnameLen {
		return fmt.Errorf("is longer than %d characters", maxIfnameLen)
	}
	if n == "." || n == ".." {
		return errors.New("is not a link name")
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c <= ' ' || c >= 0x7f || c == '/' || c == ':' || c == '%' || c == '"' || c == '[' || c == ']' {
			return errors.New("is not a link name")
		}
	}
	return nil
}

// Decode reads one configuration from r strictly: unknown fields, trailing
// data and documents over MaxConfigBytes are refused. It does not validate;
// call Parse for both.
func Decode(r io.Reader) (Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxConfigBytes+1))
	if err != nil {
		return Config{}, fmt.Errorf("netconf: read configuration: %w", err)
	}
	if len(data) > MaxConfigBytes {
		return Config{}, fmt.Errorf("netconf: decode: configuration is larger than %d bytes: %w", MaxConfigBytes, ErrInvalid)
	}
	if err := checkKeys(data); err != nil {
		return Config{}, fmt.Errorf("netconf: decode: %v: %w", err, ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("netconf: decode: %v: %w", err, ErrInvalid)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, fmt.Errorf("netconf: decode: trailing data after the configuration: %w", ErrInvalid)
	}
	if c.Interfaces == nil {
		c.Interfaces = []Interface{}
	}
	if c.DNS == nil {
		c.DNS = []string{}
	}
	return c, nil
}

// Parse decodes and validates a configuration from outside, such as the body
// of an API request.
func Parse(data []byte) (Config, error) {
	c, err := Decode(bytes.NewReader(data))
	if err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Marshal encodes c as indented JSON.
func (c Config) Marshal() ([]byte, error) {
	c = c.Clone()
	if c.DNS == nil {
		c.DNS = []string{}
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("netconf: encode: %w", err)
	}
	return append(b, '\n'), nil
}

// knownKeys are the JSON names of Config and Interface fields.
var knownKeys = map[string]bool{"hostname": true, "interfaces": true, "dns": true,
	"name": true, "mode": true, "addresses": true, "gateway4": true, "gateway6": true}

// checkKeys refuses what encoding/json would let through silently: a key
// given twice in one object (the last would win) and a key in another case
// ("Hostname" would fill hostname). Malformed JSON is left to the decoder.
func checkKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // the next token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			if k, ok := tok.(string); ok {
				if top.keys[k] {
					return fmt.Errorf("key %q given twice", k)
				}
				if !knownKeys[k] {
					return fmt.Errorf("unknown field %q", k)
				}
				top.keys[k] = true
				top.key = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			if top != nil && top.object {
				top.key = true
			}
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, key: true})
			continue
		case json.Delim('['):
			if top != nil && top.object {
				top.key = true
			}
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].key = true
			}
			continue
		}
		if top != nil && top.object {
			top.key = true // a value was read; a key comes next
		}
	}
}
