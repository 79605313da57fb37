package timesync

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestValidateServer(t *testing.T) {
	tests := []struct {
		entry   string
		wantErr string // substring; empty: valid
	}{
		{"pool.ntp.org", ""},
		{"pool.ntp.org.", ""},
		{"time.cloudflare.com:123", ""},
		{"ntp1", ""},
		{"192.0.2.1", ""},
		{"192.0.2.1:11123", ""},
		{"[2001:db8::1]", ""},
		{"[2001:db8::1]:123", ""},
		{"[::1]:65535", ""},
		{"a-b.example", ""},
		{"", "empty"},
		{"pool .ntp.org", "spaces"},
		{" pool.ntp.org", "spaces"},
		{"pool.ntp.org\t", "spaces"},
		{"pool.ntp.org:", "port is empty"},
		{"pool.ntp.org:0", `port "0"`},
		{"pool.ntp.org:65536", `port "65536"`},
		{"pool.ntp.org:12a", `port "12a"`},
		{"pool.ntp.org:-1", `port "-1"`},
		{"pool.ntp.org:000123", `port "000123"`},
		{strings.Repeat("a", 300), "too long"},
		{strings.Repeat("a", 64) + ".example", "longer than 63"},
		{strings.Repeat("abcdefghi.", 26) + "com", "too long"},
		{"pool_ntp.org", `invalid character '_'`},
		{"pool.ntp.org/x", `invalid character '/'`},
		{"pööl.ntp.org", `invalid character 'ö'`},
		{"-pool.ntp.org", "start or end with '-'"},
		{"pool-.ntp.org", "start or end with '-'"},
		{"pool..ntp.org", "empty label"},
		{".pool.ntp.org", "empty label"},
		{":123", "host name is empty"},
		{"999.1.1.1", "not a valid IPv4"},
		{"1.2.3", "not a valid IPv4"},
		{"2001:db8::1", "in brackets"},
		{"[2001:db8::1", "missing ]"},
		{"[2001:db8::1]x", "expected :port"},
		{"[192.0.2.1]:123", "not an IPv6"},
		{"[fe80::1%eth0]:123", "not an IPv6"},
		{"[]:123", "not an IPv6"},
		{"[::1]:", "port is empty"},
	}
	for _, tt := range tests {
		err := ValidateServer(tt.entry)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("ValidateServer(%q) = %v, want nil", tt.entry, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ValidateServer(%q) = %v, want error containing %q", tt.entry, err, tt.wantErr)
			continue
		}
		// The error names the bad entry (long ones are abbreviated).
		name := tt.entry
		if len(name) > 20 {
			name = name[:10]
		}
		if quoted := strings.Trim(strconv.Quote(name), `"`); tt.entry != "" && !strings.Contains(err.Error(), quoted) {
			t.Errorf("ValidateServer(%q) error %q does not name the entry", tt.entry, err)
		}
	}
}

func TestParseServers(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"", nil, ""},
		{"  ", nil, ""},
		{"pool.ntp.org", []string{"pool.ntp.org"}, ""},
		{"pool.ntp.org, time.cloudflare.com:123 ,[::1]:1123", []string{"pool.ntp.org", "time.cloudflare.com:123", "[::1]:1123"}, ""},
		{"a.example,,b.example", nil, "entry 2: server is empty"},
		{"a.example,", nil, "entry 2: server is empty"},
		{"a.example,b_x", nil, `entry 2: server "b_x"`},
		{"a.example,A.example:123", nil, "entry 2 \"A.example:123\" repeats entry 1"},
		{"1,2,3,4,5,6,7,8,9", nil, "at most 8"},
		{"a.example,b.example,c.example,d.example,e.example,f.example,g.example,h.example,i.example", nil, "at most 8"},
	}
	for _, tt := range tests {
		got, err := ParseServers(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseServers(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseServers(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	tests := []struct {
		name    string
		s       Settings
		wantErr string
	}{
		{"defaults", DefaultSettings(), ""},
		{"disabled without servers", Settings{}, ""},
		{"enabled without servers", Settings{Enabled: true}, "no server"},
		{"bad entry named", Settings{Enabled: true, Servers: []string{"ok.example", "bad host"}}, `entry 2: server "bad host"`},
		{"duplicate with default port", Settings{Enabled: true, Servers: []string{"a.example", "a.example:123"}}, "repeats entry 1"},
	}
	for _, tt := range tests {
		err := tt.s.Validate()
		if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestSettingsLoadSave(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadSettings(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadSettings(empty dir) = %v, want fs.ErrNotExist", err)
	}
	want := Settings{Enabled: false, Servers: []string{"[2001:db8::1]:123", "ntp.example"}}
	if err := SaveSettings(dir, want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, SettingsFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	got, err := LoadSettings(dir)
	if err != nil || got.Enabled != want.Enabled || !slices.Equal(got.Servers, want.Servers) {
		t.Fatalf("LoadSettings = %+v, %v; want %+v", got, err, want)
	}
	if err := SaveSettings(dir, Settings{Enabled: true, Servers: []string{"bad host"}}); err == nil {
		t.Fatal("SaveSettings accepted an invalid entry")
	}
	for name, content := range map[string]string{
		"garbage": "{not json",
		"invalid": `{"enabled":true,"servers":["a b"]}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, SettingsFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadSettings(dir); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: LoadSettings = %v, want a parse or validation error", name, err)
		}
	}
}

func FuzzParseServers(f *testing.F) {
	for _, s := range []string{
		"", "pool.ntp.org", "pool.ntp.org,time.cloudflare.com", "[::1]:123", "1.2.3.4:0", "a,,b",
		"[fe80::1%eth0]", "x:y:z", "a.b.c:65535, d", strings.Repeat("a.", 200),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		servers, err := ParseServers(in)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		if len(servers) > MaxServers {
			t.Fatalf("%d servers accepted", len(servers))
		}
		for _, s := range servers {
			if err := ValidateServer(s); err != nil {
				t.Fatalf("accepted entry %q does not validate: %v", s, err)
			}
			addr, err := serverAddr(s)
			if err != nil || addr == "" {
				t.Fatalf("serverAddr(%q) = %q, %v", s, addr, err)
			}
		}
		// Joining and parsing again gives the same list.
		again, err := ParseServers(strings.Join(servers, ","))
		if err != nil || !slices.Equal(again, servers) {
			t.Fatalf("round trip of %q: %q, %v", servers, again, err)
		}
	})
}
