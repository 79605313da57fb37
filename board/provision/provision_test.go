package provision

import (
	"errors"
	"strings"
	"testing"
)

func TestNewPassword(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		p, err := NewPassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 19 || p[4] != '-' || p[9] != '-' || p[14] != '-' {
			t.Fatalf("password %q is not four groups of four", p)
		}
		for _, c := range strings.ReplaceAll(p, "-", "") {
			if !strings.ContainsRune(passwordAlphabet, c) {
				t.Fatalf("password %q has %q, outside the alphabet", p, c)
			}
		}
		if err := CheckPassword(p); err != nil {
			t.Fatalf("a generated password fails CheckPassword: %v", err)
		}
		if seen[p] {
			t.Fatalf("password %q came twice in 200", p)
		}
		seen[p] = true
	}
}

// TestRandomStringIsUniform draws many characters and checks every one of
// the alphabet comes about as often: a modulo bias or a stuck byte would
// show.
func TestRandomStringIsUniform(t *testing.T) {
	s, err := randomString(len(passwordAlphabet)*400, passwordAlphabet)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[rune]int{}
	for _, c := range s {
		counts[c]++
	}
	if len(counts) != len(passwordAlphabet) {
		t.Fatalf("%d of %d characters seen", len(counts), len(passwordAlphabet))
	}
	for c, n := range counts {
		if n < 250 || n > 550 {
			t.Errorf("%q came %d times, expected about 400", c, n)
		}
	}
}

func TestNewHostname(t *testing.T) {
	h, err := NewHostname()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "rknas-") || len(h) != 12 || CheckHostname(h) != nil {
		t.Fatalf("hostname %q", h)
	}
}

func TestCheckPassword(t *testing.T) {
	for _, tt := range []struct {
		p  string
		ok bool
	}{
		{"k7Qm-9vHt-Xp3c-RbW2", true},
		{"eight ch", true},
		{"Grüße aus Köln", true},
		{"short", false},
		{strings.Repeat("x", 129), false},
		{"#unprovisioned", false},
		{"tab\there", false},
		{"bad\xffutf8", false},
	} {
		err := CheckPassword(tt.p)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadValue)) {
			t.Errorf("CheckPassword(%q) = %v, want ok=%v", tt.p, err, tt.ok)
		}
	}
}

func TestCheckHostname(t *testing.T) {
	for _, tt := range []struct {
		h  string
		ok bool
	}{
		{"rknas-a1b2c3", true},
		{"nas", true},
		{"", false},
		{"-nas", false},
		{"nas-", false},
		{"NAS", false},
		{"nas.local", false},
		{strings.Repeat("a", 64), false},
	} {
		if err := CheckHostname(tt.h); (err == nil) != tt.ok {
			t.Errorf("CheckHostname(%q) = %v, want ok=%v", tt.h, err, tt.ok)
		}
	}
}

func TestPadAndValue(t *testing.T) {
	b, err := Pad("k7Qm-9vHt", PasswordFileSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != PasswordFileSize {
		t.Fatalf("padded to %d, want %d", len(b), PasswordFileSize)
	}
	if v, err := Value(b); err != nil || v != "k7Qm-9vHt" {
		t.Errorf("Value = %q, %v", v, err)
	}
	if _, err := Value(Placeholder(HostnameFileSize)); !errors.Is(err, ErrNotProvisioned) {
		t.Errorf("Value(placeholder) = %v, want ErrNotProvisioned", err)
	}
	if _, err := Value(make([]byte, 16)); !errors.Is(err, ErrBadValue) {
		t.Errorf("Value(zeros) = %v", err)
	}
	for _, bad := range []string{"two\nlines", "nul\x00", strings.Repeat("x", PasswordFileSize)} {
		if _, err := Pad(bad, PasswordFileSize); err == nil {
			t.Errorf("Pad(%q) accepted it", bad)
		}
	}
}

func FuzzValue(f *testing.F) {
	f.Add(Placeholder(64))
	f.Add([]byte("pass word\n\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Value(b)
		if err == nil && (v == "" || strings.ContainsAny(v, "\n\x00\r") || strings.HasPrefix(v, "#")) {
			t.Fatalf("Value(%q) = %q", b, v)
		}
	})
}
