package netconf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func static(name string, addrs []string, gw4, gw6 string) Interface {
	return Interface{Name: name, Mode: ModeStatic, Addresses: addrs, Gateway4: gw4, Gateway6: gw6}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", 65)
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" means valid
	}{
		{"default", Default([]string{"eth0", "end1"}), ""},
		{"no interfaces", Config{Hostname: "nas"}, ""},
		{"static full", Config{Hostname: "nas.example.org", Interfaces: []Interface{
			static("eth0", []string{"192.168.1.10/24", "10.0.0.2/8", "fd00::10/64"}, "192.168.1.1", "fd00::1"),
			{Name: "enP4p65s0", Mode: ModeDHCP},
		}, DNS: []string{"1.1.1.1", "2606:4700:4700::1111"}}, ""},
		{"link-local gateway6", Config{Hostname: "nas", Interfaces: []Interface{static("eth0", []string{"fd00::10/64"}, "", "fe80::1")}}, ""},
		{"point to point /31", Config{Hostname: "nas", Interfaces: []Interface{static("eth0", []string{"10.0.0.0/31"}, "10.0.0.1", "")}}, ""},
		{"bad address", Config{Hostname: "nas", Interfaces: []Interface{static("eth0", []string{"10.0.0.2/24", "10.0.0.300/24"}, "", "")}},
			`interfaces[eth0].addresses[1]: "10.0.0.300/24" is not an IPv4 or IPv6 prefix`},
		{"address without prefix", Config{Hostname: "nas", Interfaces: []Interface{static("eth0", []string{"10.0.0.2"}, "", "")}},
			`interfaces[eth0].addresses[0]: "10.0.0.2" is not an IPv4 or IPv6 prefix`},
		{"network address", Config{Hostname: "nas", Interfaces: []Interface{static("eth0", []string{"10.0.0.0/24"}, "", "")}},
			`interfaces[eth0].addresses[0]: "10.0.0.0/24" is the network or broadcast address`},
		{"broadcast address", Config{Hostname: "nas", Interfaces: []Interface{static("eth0", []string{"10.0.0.255/24"}, "", "")}},
			`is the network or broadcast address`},
		{"loopback address", Config{Hostname: "nas", Interfaces: []Interface{static("eth0", []string{"127.0.0.2/8"}, "", "")}},
			`interfaces[eth0].addresses[0]: "127.0.0.2/8" is not a host address`},
		{"mapped address", Config{Hostname: "nas", Interfaces: []Interface{static("eth0", []string{"::ffff:10.0.0.2/120"}, "", "")}},
			`dotted form`},
		{"prefix 0", Config{Hostname: "nas", Interfaces: []Interface{static("eth0", []string{"10.0.0.2/0"}, "", "")}}, `prefix length 0`},
		{"duplicate address", Config{Hostname: "nas", Interfaces: []Interface{static("eth0", []string{"10.0.0.2/24", "10.0.0.2/16"}, "", "")}},
			`interfaces[eth0].addresses[1]: "10.0.0.2/16" repeats addresses[0]`},
		{"too many addresses", Config{Hostname: "nas", Interfaces: []Interface{static("eth0", make([]string, MaxAddresses+1), "", "")}},
			`interfaces[eth0].addresses: 17 addresses, at most 16`},
		{"gateway outside subnet", Config{Hostname: "nas", Interfaces: []Interface{static("eth0", []string{"192.168.1.10/24"}, "192.168.2.1", "")}},
			`interfaces[eth0].gateway4: "192.168.2.1" is not in any of the interface's IPv4 subnets`},
		{"gateway6 outside subnet", Config{Hostname: "nas", Interfaces: []Interface{static("eth0", []string{"192.168.1.10/24", "fd00::10/64"}, "", "fd01::1")}},
			`interfaces[eth0].gateway6: "fd01::1" is not in any of the interface's IPv6 subnets`},
		{"gateway4 is v6", Config{Hostname: "nas", Interfaces: []Interface{static("eth0", []string{"fd00::10/64"}, "fd00::1", "")}},
			`interfaces[eth0].gateway4: "fd00::1" is not an IPv4 address`},
		{"gateway is own address", Config{Hostname: "nas", Interfaces: []Interface{static("eth0", []string{"192.168.1.10/24"}, "192.168.1.10", "")}},
			`is the interface's own address`},
		{"two gateway4", Config{Hostname: "nas", Interfaces: []Interface{
			static("eth0", []string{"192.168.1.10/24"}, "192.168.1.1", ""),
			static("eth1", []string{"192.168.2.10/24"}, "192.168.2.1", "")}},
			`interfaces[eth1].gateway4: only one interface may have an IPv4 gateway; interfaces[eth0]`},
		{"static without address", Config{Hostname: "nas", Interfaces: []Interface{{Name: "eth0", Mode: ModeStatic}}},
			`interfaces[eth0].addresses: mode "static" needs at least one address`},
		{"dhcp with address", Config{Hostname: "nas", Interfaces: []Interface{{Name: "eth0", Mode: ModeDHCP, Addresses: []string{"10.0.0.2/24"}}}},
			`interfaces[eth0].addresses: only allowed with mode "static"`},
		{"dhcp with gateway", Config{Hostname: "nas", Interfaces: []Interface{{Name: "eth0", Mode: ModeDHCP, Gateway6: "fe80::1"}}},
			`interfaces[eth0].gateway6: only allowed with mode "static"`},
		{"unknown mode", Config{Hostname: "nas", Interfaces: []Interface{{Name: "eth0", Mode: "bootp"}}},
			`interfaces[eth0].mode: unknown mode "bootp"`},
		{"missing mode", Config{Hostname: "nas", Interfaces: []Interface{{Name: "eth0"}}}, `interfaces[eth0].mode: missing`},
		{"duplicate interface", Config{Hostname: "nas", Interfaces: []Interface{{Name: "eth0", Mode: ModeDHCP}, {Name: "eth0", Mode: ModeDHCP}}},
			`interfaces[1].name: "eth0" is already configured by interfaces[0]`},
		{"empty ifname", Config{Hostname: "nas", Interfaces: []Interface{{Mode: ModeDHCP}}}, `interfaces[0].name: "" is empty`},
		{"long ifname", Config{Hostname: "nas", Interfaces: []Interface{{Name: "abcdefghijklmnop", Mode: ModeDHCP}}}, `longer than 15`},
		{"slash ifname", Config{Hostname: "nas", Interfaces: []Interface{{Name: "eth0/x", Mode: ModeDHCP}}}, `interfaces[0].name: "eth0/x" is not a link name`},
		{"too many interfaces", Config{Hostname: "nas", Interfaces: make([]Interface, MaxInterfaces+1)}, `interfaces: 33 interfaces`},
		{"empty hostname", Config{}, `hostname: "" is empty`},
		{"hostname underscore", Config{Hostname: "my_nas"}, `hostname: "my_nas" may hold only letters`},
		{"hostname hyphen", Config{Hostname: "-nas"}, `starts or ends with '-'`},
		{"hostname empty label", Config{Hostname: "nas..lan"}, `empty label`},
		{"hostname too long", Config{Hostname: long}, `longer than 64`},
		{"hostname label too long", Config{Hostname: strings.Repeat("b", 64)}, `longer than 63`},
		{"dns not ip", Config{Hostname: "nas", DNS: []string{"1.1.1.1", "dns.google"}}, `dns[1]: "dns.google" is not an IPv4 or IPv6 address`},
		{"dns zone", Config{Hostname: "nas", DNS: []string{"fe80::1%eth0"}}, `dns[0]`},
		{"dns duplicate", Config{Hostname: "nas", DNS: []string{"1.1.1.1", "1.1.1.1"}}, `dns[1]: "1.1.1.1" repeats dns[0]`},
		{"dns too many", Config{Hostname: "nas", DNS: []string{"1.1.1.1", "1.0.0.1", "8.8.8.8", "9.9.9.9"}}, `dns: 4 servers, at most 3`},
		{"dns unspecified", Config{Hostname: "nas", DNS: []string{"0.0.0.0"}}, `cannot be a name server`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not a *FieldError wrapping ErrInvalid", err)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	c := Default([]string{"eth0", "eth1"})
	if c.Hostname != DefaultHostname || len(c.Interfaces) != 2 || len(c.DNS) != 0 {
		t.Fatalf("Default = %+v", c)
	}
	for _, ifc := range c.Interfaces {
		if ifc.Mode != ModeDHCP || len(ifc.Addresses) != 0 {
			t.Errorf("interface %+v is not plain DHCP", ifc)
		}
	}
	if err := Default(nil).Validate(); err != nil {
		t.Errorf("Default(nil) invalid: %v", err)
	}
}

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"ok", `{"hostname":"nas","interfaces":[{"name":"eth0","mode":"dhcp"}],"dns":[]}`, ""},
		{"ok nested", `{"interfaces":[{"name":"eth0","mode":"static","addresses":["10.0.0.2/24"]},{"name":"eth1","mode":"dhcp"}],"dns":["1.1.1.1"],"hostname":"nas"}`, ""},
		{"unknown top field", `{"hostname":"nas","interfaces":[],"gateway":"1.2.3.4"}`, `unknown field "gateway"`},
		{"unknown nested field", `{"hostname":"nas","interfaces":[{"name":"eth0","mode":"dhcp","mtu":9000}]}`, `unknown field "mtu"`},
		{"duplicate key", `{"hostname":"nas","hostname":"other"}`, `key "hostname" given twice`},
		{"duplicate nested key", `{"hostname":"nas","interfaces":[{"name":"eth0","mode":"dhcp","mode":"static"}]}`, `key "mode" given twice`},
		{"key in other case", `{"Hostname":"nas"}`, `unknown field "Hostname"`},
		{"nested key in other case", `{"hostname":"nas","interfaces":[{"NAME":"eth0","mode":"dhcp"}]}`, `unknown field "NAME"`},
		{"trailing", `{"hostname":"nas"} {}`, "trailing data"},
		{"wrong type", `{"hostname":7}`, "cannot unmarshal"},
		{"not json", `hostname=nas`, "invalid character"},
		{"empty", ``, "EOF"},
		{"too large", `{"hostname":"` + strings.Repeat("a", MaxConfigBytes) + `"}`, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tt.in))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalid) {
				t.Errorf("Decode = %v, want an ErrInvalid containing %q", err, tt.want)
			}
		})
	}
}

func TestParseNamesField(t *testing.T) {
	_, err := Parse([]byte(`{"hostname":"nas","interfaces":[{"name":"eth0","mode":"static","addresses":["10.0.0.2/24","10.0.0.300/24"]}]}`))
	want := `interfaces[eth0].addresses[1]: "10.0.0.300/24" is not an IPv4 or IPv6 prefix`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Parse = %v, want %q", err, want)
	}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := Path(dir)
	def := Default([]string{"eth0"})

	got, err := Load(path, def)
	if err != nil || !got.Equal(def) {
		t.Fatalf("Load without a file = %+v, %v; want the default", got, err)
	}
	c := Config{Hostname: "nas", Interfaces: []Interface{static("eth0", []string{"10.1.2.3/16", "fd00::3/64"}, "10.1.0.1", "")}, DNS: []string{"10.1.0.53"}}
	if err := Save(path, c); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	got, err = Load(path, def)
	if err != nil || !got.Equal(c) {
		t.Fatalf("Load = %+v, %v; want %+v", got, err, c)
	}
	if err := Save(path, Config{Hostname: "bad_name"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Save of an invalid config = %v, want ErrInvalid", err)
	}
	if got, _ := Load(path, def); !got.Equal(c) {
		t.Errorf("a refused Save changed the file")
	}
}

func TestLoadCorrupt(t *testing.T) {
	for name, content := range map[string]string{
		"truncated":     `{"hostname":"nas","interf`,
		"invalid":       `{"hostname":"nas","interfaces":[{"name":"eth0","mode":"static"}]}`,
		"unknown field": `{"hostname":"nas","extra":1}`,
		"empty":         ``,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, Default([]string{"eth0"}))
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Load = %v, want ErrCorrupt naming %s", err, path)
			}
			after, _ := os.ReadFile(path)
			if string(after) != content {
				t.Errorf("Load changed the corrupt file")
			}
		})
	}
}

func TestConfigRoundTrip(t *testing.T) {
	c := Config{Hostname: "nas", Interfaces: []Interface{
		static("eth0", []string{"10.1.2.3/16"}, "10.1.0.1", ""), {Name: "eth1", Mode: ModeDHCP}}, DNS: []string{"9.9.9.9"}}
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil || !got.Equal(c) {
		t.Fatalf("Parse(Marshal(c)) = %+v, %v", got, err)
	}
	// Clone must not share slices.
	cl := c.Clone()
	cl.Interfaces[0].Addresses[0] = "10.9.9.9/8"
	cl.DNS[0] = "1.1.1.1"
	if c.Interfaces[0].Addresses[0] != "10.1.2.3/16" || c.DNS[0] != "9.9.9.9" {
		t.Error("Clone shares slices with the original")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"hostname":"nas","interfaces":[{"name":"eth0","mode":"dhcp"}],"dns":[]}`))
	f.Add([]byte(`{"hostname":"nas","interfaces":[{"name":"eth0","mode":"static","addresses":["10.0.0.2/24","fd00::2/64"],"gateway4":"10.0.0.1","gateway6":"fe80::1"}],"dns":["1.1.1.1"]}`))
	f.Add([]byte(`{"hostname":"a-b.c","interfaces":[{"name":"e","mode":"static","addresses":["10.0.0.0/31"]}]}`))
	f.Add([]byte(`{"interfaces":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// What was accepted encodes, decodes to the same thing and is
		// still valid: the stored file can always be read back.
		out, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("re-Parse of %s: %v", out, err)
		}
		if !back.Equal(c) {
			t.Fatalf("round trip changed %+v into %+v", c, back)
		}
	})
}

// BenchmarkParse measures decoding and validating a typical configuration,
// the work a PUT of the network settings costs before anything is applied.
func BenchmarkParse(b *testing.B) {
	data := []byte(`{"hostname":"nas","interfaces":[{"name":"eth0","mode":"static","addresses":["192.168.1.10/24","fd00::10/64"],"gateway4":"192.168.1.1","gateway6":"fe80::1"},{"name":"eth1","mode":"dhcp"}],"dns":["1.1.1.1","9.9.9.9"]}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
