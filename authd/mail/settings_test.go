package mail_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rknas/firmware/authd/mail"
	"github.com/rknas/firmware/authd/mail/mailtest"
)

func validCustom() mail.Settings {
	return mail.Settings{Preset: mail.PresetCustom, Host: "mail.example.com", Port: 465, Security: mail.SecurityTLS,
		Username: "nas", Password: "pw", From: "nas@example.com"}
}

func TestPresets(t *testing.T) {
	for _, tt := range []struct {
		preset, host string
	}{{mail.PresetGmail, "smtp.gmail.com"}, {mail.PresetOutlook, "smtp.office365.com"}} {
		s := mail.Settings{Preset: tt.preset, Host: "evil.example.net", Port: 25, Security: mail.SecurityNone,
			Username: "u@example.com", Password: "p", From: "u@example.com"}.Resolved()
		if s.Host != tt.host || s.Port != 587 || s.Security != mail.SecurityStartTLS {
			t.Errorf("%s resolves to %s:%d %s", tt.preset, s.Host, s.Port, s.Security)
		}
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", tt.preset, err)
		}
	}
	c := validCustom().Resolved()
	if c != validCustom() {
		t.Errorf("custom changed by Resolved: %+v", c)
	}
}

func TestSettingsValidate(t *testing.T) {
	ca, err := mailtest.NewCA("x")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		edit  func(*mail.Settings)
		field string // "" = valid
	}{
		{"valid", func(*mail.Settings) {}, ""},
		{"valid ip host", func(s *mail.Settings) { s.Host = "192.0.2.10" }, ""},
		{"valid ipv6 host", func(s *mail.Settings) { s.Host = "2001:db8::1" }, ""},
		{"valid no auth", func(s *mail.Settings) { s.Username, s.Password = "", "" }, ""},
		{"valid ca", func(s *mail.Settings) { s.CAPEM = ca.PEM + "\n" + ca.PEM }, ""},
		{"no preset", func(s *mail.Settings) { s.Preset = "" }, "preset"},
		{"bad preset", func(s *mail.Settings) { s.Preset = "yahoo" }, "preset"},
		{"no host", func(s *mail.Settings) { s.Host = "" }, "host"},
		{"host with space", func(s *mail.Settings) { s.Host = "mail example.com" }, "host"},
		{"host with CRLF", func(s *mail.Settings) { s.Host = "mail.example.com\r\n" }, "host"},
		{"host with port", func(s *mail.Settings) { s.Host = "mail.example.com:25" }, "host"},
		{"host with scheme", func(s *mail.Settings) { s.Host = "smtp://mail.example.com" }, "host"},
		{"port 0", func(s *mail.Settings) { s.Port = 0 }, "port"},
		{"port 65536", func(s *mail.Settings) { s.Port = 65536 }, "port"},
		{"bad security", func(s *mail.Settings) { s.Security = "ssl" }, "security"},
		{"username CRLF", func(s *mail.Settings) { s.Username = "nas\r\nRCPT TO:<x@y.z>" }, "username"},
		{"password LF", func(s *mail.Settings) { s.Password = "pw\n" }, "password"},
		{"password NUL", func(s *mail.Settings) { s.Password = "p\x00w" }, "password"},
		{"password without user", func(s *mail.Settings) { s.Username = "" }, "username"},
		{"user without password", func(s *mail.Settings) { s.Password = "" }, "password"},
		{"no from", func(s *mail.Settings) { s.From = "" }, "from"},
		{"from with name", func(s *mail.Settings) { s.From = "NAS <nas@example.com>" }, "from"},
		{"from two", func(s *mail.Settings) { s.From = "a@example.com,b@example.com" }, "from"},
		{"from CRLF", func(s *mail.Settings) { s.From = "nas@example.com\r\nBcc: x@y.z" }, "from"},
		{"ca garbage", func(s *mail.Settings) { s.CAPEM = "hello" }, "ca_pem"},
		{"ca key block", func(s *mail.Settings) { s.CAPEM = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" }, "ca_pem"},
		{"ca bad der", func(s *mail.Settings) { s.CAPEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" }, "ca_pem"},
		{"ca truncated second", func(s *mail.Settings) { s.CAPEM = ca.PEM + "-----BEGIN CERTIFICATE-----\nMIIB" }, "ca_pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validCustom()
			tt.edit(&s)
			err := s.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var fe *mail.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate = %v, want a *FieldError for %s", err, tt.field)
			}
			if fe.Field != tt.field || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q names field %q, want %q", err, fe.Field, tt.field)
			}
		})
	}
}

func TestRedactedAndPasswordKept(t *testing.T) {
	s := validCustom()
	b, err := json.Marshal(s.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"password"`) || strings.Contains(string(b), s.Password+`"`) ||
		!strings.Contains(string(b), `"password_set":true`) {
		t.Errorf("redacted JSON %s", b)
	}
	var keys map[string]any
	_ = json.Unmarshal(b, &keys)
	for _, k := range []string{"preset", "host", "port", "security", "username", "password_set", "from", "ca_pem"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("redacted JSON lacks %q: %s", k, b)
		}
	}

	dir := t.TempDir()
	store, err := mail.OpenSettings(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := store.Redacted(); ok {
		t.Fatal("fresh store claims settings")
	}
	if _, err := store.Update(s); err != nil {
		t.Fatal(err)
	}
	// A PUT with an empty password keeps the stored one.
	put := s
	put.Password = ""
	put.From = "nas2@example.com"
	r, err := store.Update(put)
	if err != nil {
		t.Fatal(err)
	}
	if !r.PasswordSet || r.From != "nas2@example.com" {
		t.Errorf("after PUT: %+v", r)
	}
	// Not for another server, port or user name: the stored password
	// would go to a server an admin names.
	for _, change := range []func(*mail.Settings){
		func(s *mail.Settings) { s.Host = "smtp.attacker.example" },
		func(s *mail.Settings) { s.Port = 2525 },
		func(s *mail.Settings) { s.Username = "someone-else" },
	} {
		other := put
		change(&other)
		var fe *mail.FieldError
		if _, err := store.Update(other); !errors.As(err, &fe) || fe.Field != "password" {
			t.Errorf("PUT %+v without the password: %v, want it asked for", other, err)
		}
	}
	// Reload from disk: same settings, file mode 0600.
	store2, err := mail.OpenSettings(dir)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := store2.Current()
	if err != nil || cur.Password != s.Password || cur.From != "nas2@example.com" || cur.Host != s.Host {
		t.Errorf("reloaded %+v, %v", cur, err)
	}
	fi, err := os.Stat(filepath.Join(dir, mail.SettingsFileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	// An invalid PUT changes nothing.
	bad := s
	bad.Port = 0
	if _, err := store2.Update(bad); err == nil {
		t.Fatal("invalid PUT accepted")
	}
	if cur2, _ := store2.Current(); !reflect.DeepEqual(cur2, cur) {
		t.Errorf("invalid PUT changed settings to %+v", cur2)
	}
	// A new password replaces the old one; dropping the user drops it.
	put.Password = "new"
	if _, err := store2.Update(put); err != nil {
		t.Fatal(err)
	}
	if c, _ := store2.Current(); c.Password != "new" {
		t.Errorf("password = %q, want new", c.Password)
	}
	put.Username, put.Password = "", ""
	if r, err := store2.Update(put); err != nil || r.PasswordSet {
		t.Errorf("dropping the user: %+v, %v", r, err)
	}
	if err := store2.Clear(); err != nil {
		t.Fatal(err)
	}
	if _, err := store2.Current(); !errors.Is(err, mail.ErrNotConfigured) {
		t.Errorf("after Clear: %v", err)
	}
}

func TestDecodeSettings(t *testing.T) {
	s, err := mail.DecodeSettings([]byte(`{"preset":"gmail","username":"u@gmail.com","password":"p","from":"u@gmail.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := (mail.Settings{}).Merge(s).Validate(); err != nil {
		t.Errorf("gmail settings: %v", err)
	}
	for in, field := range map[string]string{
		`{"port":"25"}`:             "port",
		`{"host":1}`:                "host",
		`{"smtp_host":"x"}`:         "smtp_host",
		`{"preset":"custom"} {}`:    "",
		`[]`:                        "",
		`{"password_set":true}`:     "password_set",
		`{"port":1e999}`:            "",
		strings.Repeat(" ", 200000): "",
	} {
		_, err := mail.DecodeSettings([]byte(in))
		if err == nil {
			t.Errorf("DecodeSettings(%.40q) succeeded", in)
			continue
		}
		var fe *mail.FieldError
		if field != "" && (!errors.As(err, &fe) || fe.Field != field) {
			t.Errorf("DecodeSettings(%.40q) = %v, want field %s", in, err, field)
		}
	}
}

func FuzzSettings(f *testing.F) {
	f.Add([]byte(`{"preset":"custom","host":"mail.example.com","port":587,"security":"starttls","username":"u","password":"p","from":"a@example.com","ca_pem":""}`))
	f.Add([]byte(`{"preset":"gmail","from":"a@gmail.com"}`))
	f.Add([]byte(`{"preset":"custom","host":"::1","port":25,"security":"none","from":"a@b.co","ca_pem":"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----"}`))
	f.Add([]byte(`{"host":"a\r\nb"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := mail.DecodeSettings(data)
		if err != nil {
			return
		}
		r := (mail.Settings{}).Merge(s)
		err = r.Validate()
		if err != nil {
			var fe *mail.FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("Validate error %v is not a FieldError", err)
			}
			return
		}
		for _, v := range []string{r.Host, r.Username, r.Password, r.From} {
			if strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("accepted a line break in %+v", r)
			}
		}
		// Valid settings survive the round trip through the stored JSON.
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := mail.DecodeSettings(b)
		if err != nil || back != r || back.Validate() != nil {
			t.Fatalf("round trip: %+v -> %+v, %v", r, back, err)
		}
	})
}
