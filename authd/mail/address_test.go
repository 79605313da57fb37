package mail_test

import (
	"errors"
	netmail "net/mail"
	"strings"
	"testing"

	"github.com/rknas/firmware/authd/mail"
)

func TestValidateAddress(t *testing.T) {
	long := strings.Repeat("a", 64)
	tests := []struct {
		addr string
		ok   bool
	}{
		{"alice@example.com", true},
		{"a.b+tag@mail.example.co.uk", true},
		{"o'brien@example.org", true},
		{long + "@example.com", true},
		{long + "a@example.com", false}, // local part over 64
		{"a@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 60) + ".com", false},
		{"", false},
		{"alice", false},
		{"alice@", false},
		{"@example.com", false},
		{"alice@localhost", false},
		{"alice@example..com", false},
		{"alice@-example.com", false},
		{".alice@example.com", false},
		{"al..ice@example.com", false},
		{"Alice <alice@example.com>", false},
		{"<alice@example.com>", false},
		{`"alice"@example.com`, false},
		{`"a@b"@example.com`, false},
		{"alice@example.com (comment)", false},
		{"alice@[192.0.2.1]", false},
		{"alice@example.com, bob@example.com", false},
		{"alice@example.com\r\nBcc: eve@example.net", false},
		{"alice@example.com\n", false},
		{"al ice@example.com", false},
		{"alice@exämple.com", false},
		{"älice@example.com", false},
		{"alice@example.com\x00", false},
	}
	for _, tt := range tests {
		err := mail.ValidateAddress(tt.addr)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateAddress(%q) = %v, want ok=%v", tt.addr, err, tt.ok)
		}
		if err != nil && !errors.Is(err, mail.ErrInvalidAddress) {
			t.Errorf("ValidateAddress(%q) error %v does not wrap ErrInvalidAddress", tt.addr, err)
		}
	}
	if err := mail.ValidateAddress("a@b.com\r\nX: y"); !errors.Is(err, mail.ErrHeaderInjection) {
		t.Errorf("CRLF: %v, want ErrHeaderInjection", err)
	}
}

func TestMaskAddress(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.com": "a***@example.com",
		"a@example.com":     "a***@example.com",
		"Bob.X@mail.org":    "B***@mail.org",
		"":                  "***",
		"nonsense":          "***",
		"@example.com":      "***",
		"alice@":            "***",
		"a\r\n@example.com": "***",
	} {
		if got := mail.MaskAddress(in); got != want {
			t.Errorf("MaskAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzValidateAddress(f *testing.F) {
	for _, s := range []string{"alice@example.com", "Alice <alice@example.com>", `"a b"@example.com`,
		"a@b.c", "a@[::1]", "a@example.com\r\nBcc: x@y.z", "x@-y.com", "ä@example.com", "a@b..com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		masked := mail.MaskAddress(s)
		if strings.ContainsAny(masked, "\r\n") {
			t.Fatalf("MaskAddress(%q) = %q holds a line break", s, masked)
		}
		if mail.ValidateAddress(s) != nil {
			return
		}
		if len(s) > 254 || strings.ContainsAny(s, "\r\n\x00 <>\",()[]") {
			t.Fatalf("accepted %q", s)
		}
		a, err := netmail.ParseAddress(s)
		if err != nil || a.Name != "" || a.Address != s {
			t.Fatalf("accepted %q but net/mail reads %+v, %v", s, a, err)
		}
		at := strings.LastIndexByte(s, '@')
		if want := s[:1] + "***" + s[at:]; masked != want {
			t.Fatalf("MaskAddress(%q) = %q, want %q", s, masked, want)
		}
	})
}
