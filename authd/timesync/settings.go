package timesync

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rknas/firmware/authd/atomicfile"
)

// SettingsFile is the name of the settings file in the state directory. This
// package owns it.
const SettingsFile = "timesync.json"

// DefaultPort is the NTP port used when a server entry names none.
const DefaultPort = "123"

// MaxServers is the most servers a configuration may list. Every server is
// queried at each sync, so the list stays short.
const MaxServers = 8

// maxServerLen bounds one entry: a 253-character DNS name plus ":65535".
const maxServerLen = 253 + 6

// Settings is what the admin may change at run time: whether the clock is
// synchronised by NTP and from which servers. It is persisted as JSON in
// SettingsFile.
type Settings struct {
	// Enabled turns NTP synchronisation on.
	Enabled bool `json:"enabled"`
	// Servers are host[:port] entries: a DNS name, an IPv4 address or an
	// IPv6 address in brackets; the port defaults to 123.
	Servers []string `json:"servers"`
}

// DefaultSettings returns NTP enabled with two independent public services:
// the NTP Pool (many volunteer servers, answered by the nearest ones) and
// Cloudflare's anycast service. Two unrelated operators mean a single broken
// one is noticed: the sync refuses to act when they disagree instead of
// following either.
func DefaultSettings() Settings {
	return Settings{Enabled: true, Servers: []string{"pool.ntp.org", "time.cloudflare.com"}}
}

// Clone returns a deep copy, so callers can not change the service's slice.
func (s Settings) Clone() Settings {
	s.Servers = append([]string(nil), s.Servers...)
	return s
}

// Validate checks every server entry and the list as a whole. Its errors
// name the offending entry.
func (s Settings) Validate() error {
	if len(s.Servers) > MaxServers {
		return fmt.Errorf("timesync: servers: %d listed, at most %d allowed", len(s.Servers), MaxServers)
	}
	if s.Enabled && len(s.Servers) == 0 {
		return errors.New("timesync: servers: NTP is enabled but no server is listed")
	}
	seen := make(map[string]int, len(s.Servers))
	for i, srv := range s.Servers {
		if err := ValidateServer(srv); err != nil {
			return fmt.Errorf("timesync: servers: entry %d: %w", i+1, err)
		}
		addr, _ := serverAddr(srv)
		key := strings.ToLower(addr)
		if j, dup := seen[key]; dup {
			return fmt.Errorf("timesync: servers: entry %d %q repeats entry %d", i+1, srv, j+1)
		}
		seen[key] = i
	}
	return nil
}

// ValidateServer checks one host[:port] entry. The error quotes the entry
// and says what is wrong with it.
func ValidateServer(entry string) error {
	_, _, err := splitServer(entry)
	return err
}

// ParseServers parses the comma-separated server list of the -ntp flag.
// Spaces around entries are ignored; an empty string means no servers.
func ParseServers(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	parts := strings.Split(list, ",")
	if len(parts) > MaxServers {
		return nil, fmt.Errorf("timesync: servers: %d listed, at most %d allowed", len(parts), MaxServers)
	}
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		out = append(out, strings.TrimSpace(p))
	}
	s := Settings{Servers: out}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return out, nil
}

// serverAddr returns the host:port address to query for a valid entry.
func serverAddr(entry string) (string, error) {
	host, port, err := splitServer(entry)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, port), nil
}

// splitServer validates entry and splits it into host (without brackets)
// and port.
func splitServer(entry string) (host, port string, err error) {
	switch {
	case entry == "":
		return "", "", errors.New("server is empty")
	case len(entry) > maxServerLen:
		return "", "", fmt.Errorf("server %.20q... is too long (%d characters, at most %d)", entry, len(entry), maxServerLen)
	case strings.ContainsFunc(entry, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return "", "", fmt.Errorf("server %q contains spaces or control characters", entry)
	}
	host, port = entry, DefaultPort
	if strings.HasPrefix(entry, "[") {
		end := strings.IndexByte(entry, ']')
		if end < 0 {
			return "", "", fmt.Errorf("server %q: missing ] after the IPv6 address", entry)
		}
		host = entry[1:end]
		rest := entry[end+1:]
		if rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return "", "", fmt.Errorf("server %q: expected :port after ]", entry)
			}
			port = p
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return "", "", fmt.Errorf("server %q: %q is not an IPv6 address", entry, host)
		}
	} else {
		switch strings.Count(entry, ":") {
		case 0:
		case 1:
			host, port, _ = strings.Cut(entry, ":")
		default:
			return "", "", fmt.Errorf("server %q: an IPv6 address must be written in brackets, e.g. [2001:db8::1]:123", entry)
		}
		if err := checkHost(host); err != nil {
			return "", "", fmt.Errorf("server %q: %w", entry, err)
		}
	}
	if err := checkPort(port); err != nil {
		return "", "", fmt.Errorf("server %q: %w", entry, err)
	}
	return host, port, nil
}

func checkPort(port string) error {
	if port == "" {
		return errors.New("port is empty")
	}
	if len(port) > 5 || strings.ContainsFunc(port, func(r rune) bool { return r < '0' || r > '9' }) {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	n, _ := strconv.Atoi(port)
	if n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

// checkHost accepts an IPv4 address or a DNS host name (RFC 1123 labels,
// an optional final dot).
func checkHost(host string) error {
	if host == "" {
		return errors.New("host name is empty")
	}
	name := strings.TrimSuffix(host, ".")
	if len(name) > 253 {
		return fmt.Errorf("host name is too long (%d characters, at most 253)", len(name))
	}
	numeric := true
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return fmt.Errorf("host %q has an empty label", host)
		}
		if len(label) > 63 {
			return fmt.Errorf("host %q has a label longer than 63 characters", host)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q: a label may not start or end with '-'", host)
		}
		for _, r := range label {
			switch {
			case r >= '0' && r <= '9':
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-':
				numeric = false
			default:
				return fmt.Errorf("host %q contains the invalid character %q", host, r)
			}
		}
	}
	// Digits and dots only: it must be a real IPv4 address, not "999.1.1.1".
	if numeric {
		if ip, err := netip.ParseAddr(name); err != nil || !ip.Is4() {
			return fmt.Errorf("host %q is not a valid IPv4 address", host)
		}
	}
	return nil
}

// LoadSettings reads SettingsFile from dir and validates it. When the file
// does not exist the error matches fs.ErrNotExist and the caller uses its
// defaults.
func LoadSettings(dir string) (Settings, error) {
	path := filepath.Join(dir, SettingsFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return Settings{}, fmt.Errorf("timesync: load settings: %w", err)
	}
	var s Settings
	if err := json.Unmarshal(data, &s); err != nil {
		return Settings{}, fmt.Errorf("timesync: load settings %s: %w", path, err)
	}
	if err := s.Validate(); err != nil {
		return Settings{}, fmt.Errorf("timesync: load settings %s: %w", path, err)
	}
	return s, nil
}

// SaveSettings validates s and writes it to SettingsFile in dir, atomically
// and readable by root only.
func SaveSettings(dir string, s Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if s.Servers == nil {
		s.Servers = []string{}
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("timesync: save settings: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, SettingsFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("timesync: save settings: %w", err)
	}
	return nil
}
