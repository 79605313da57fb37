package twofa

import (
	"encoding/base32"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// rfcSecret is the SHA1 seed of RFC 6238 Appendix B.
var rfcSecret = base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte("12345678901234567890"))

// TestRFC6238Vectors checks Verify against Appendix B: a 6-digit code is the
// last six digits of the 8-digit vector, since truncation is modulo 10^d.
func TestRFC6238Vectors(t *testing.T) {
	vectors := []struct {
		unix int64
		code string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	}
	for _, v := range vectors {
		now := time.Unix(v.unix, 0)
		step, err := Verify(rfcSecret, v.code[2:], now, 0)
		if err != nil {
			t.Errorf("T=%d code %s: %v", v.unix, v.code[2:], err)
			continue
		}
		if step != v.unix/30 {
			t.Errorf("T=%d: matched step %d, want %d", v.unix, step, v.unix/30)
		}
		// The 8-digit vector itself also holds with the library directly.
		got, err := totp.GenerateCodeCustom(rfcSecret, now, totp.ValidateOpts{Period: 30, Digits: otp.DigitsEight, Algorithm: otp.AlgorithmSHA1})
		if err != nil || got != v.code {
			t.Errorf("T=%d: 8-digit code %q (%v), want %s", v.unix, got, err, v.code)
		}
	}
}

func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerifyWindow(t *testing.T) {
	e, err := NewEnrollment("nas", "alice")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 12, 0, 15, 0, time.UTC)
	tests := []struct {
		name   string
		offset time.Duration
		want   error
	}{
		{"previous step", -30 * time.Second, nil},
		{"this step", 0, nil},
		{"next step", 30 * time.Second, nil},
		{"two steps ago", -60 * time.Second, ErrInvalidCode},
		{"two steps ahead", 60 * time.Second, ErrInvalidCode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code := codeAt(t, e.Secret, now.Add(tc.offset))
			step, err := Verify(e.Secret, code, now, 0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil && step != Step(now.Add(tc.offset)) {
				t.Errorf("step %d, want %d", step, Step(now.Add(tc.offset)))
			}
		})
	}
}

func TestVerifyRefusesReplay(t *testing.T) {
	e, err := NewEnrollment("nas", "alice")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 12, 0, 15, 0, time.UTC)
	code := codeAt(t, e.Secret, now)
	step, err := Verify(e.Secret, code, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The same code, even 20 s later within its window, is refused.
	if _, err := Verify(e.Secret, code, now.Add(20*time.Second), step); !errors.Is(err, ErrCodeReused) {
		t.Fatalf("replay: %v, want ErrCodeReused", err)
	}
	// The previous step's code is refused once a newer step was used.
	old := codeAt(t, e.Secret, now.Add(-30*time.Second))
	if _, err := Verify(e.Secret, old, now, step); !errors.Is(err, ErrCodeReused) && !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("older step: %v", err)
	}
	// The next step's code is still good.
	next := codeAt(t, e.Secret, now.Add(30*time.Second))
	if s, err := Verify(e.Secret, next, now.Add(30*time.Second), step); err != nil || s != step+1 {
		t.Fatalf("next step: %d, %v", s, err)
	}
}

func TestVerifyMalformed(t *testing.T) {
	for _, code := range []string{"", "12345", "1234567", "12a456", "１２３４５６", "123 45"} {
		if _, err := Verify(rfcSecret, code, time.Unix(59, 0), 0); !errors.Is(err, ErrMalformedCode) {
			t.Errorf("Verify(%q) = %v, want ErrMalformedCode", code, err)
		}
	}
	if _, err := Verify(rfcSecret, "287 082", time.Unix(59, 0), 0); err != nil {
		t.Errorf("a code with a space: %v", err)
	}
}

// TestVerifyRefusesAnEmptySecret: HMAC takes an empty key, so the code of
// an account without one is anyone's to make; Verify takes none.
func TestVerifyRefusesAnEmptySecret(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	code, err := totp.GenerateCodeCustom("", now, totp.ValidateOpts{Period: Period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify("", code, now, 0); err == nil {
		t.Errorf("the code of an empty key was accepted")
	}
}

func TestEnrollment(t *testing.T) {
	e, err := NewEnrollment("NAS Living Room", "alice")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(e.Secret)
	if err != nil || len(raw) != 20 {
		t.Fatalf("secret %q decodes to %d bytes (%v), want 20", e.Secret, len(raw), err)
	}
	if !strings.HasPrefix(e.URI, "otpauth://totp/NAS%20Living%20Room:alice?") || !strings.Contains(e.URI, "secret="+e.Secret) {
		t.Errorf("URI %q", e.URI)
	}
	if !strings.HasPrefix(string(e.QRPNG), "\x89PNG") {
		t.Error("QR code is not a PNG")
	}
	if strings.ReplaceAll(e.Grouped, " ", "") != e.Secret || len(strings.Fields(e.Grouped)[0]) != 4 {
		t.Errorf("grouped %q", e.Grouped)
	}
}

func TestRecoveryCodes(t *testing.T) {
	codes, hashes, err := NewRecoveryCodes()
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != RecoveryCount || len(hashes) != RecoveryCount {
		t.Fatalf("%d codes, %d hashes", len(codes), len(hashes))
	}
	seen := map[string]bool{}
	for i, c := range codes {
		if len(c) != 14 || seen[c] {
			t.Errorf("code %q", c)
		}
		seen[c] = true
		if got := MatchRecoveryCode(hashes, c); got != i {
			t.Errorf("match %q = %d, want %d", c, got, i)
		}
		if got := MatchRecoveryCode(hashes, strings.ToLower(strings.ReplaceAll(c, "-", " "))); got != i {
			t.Errorf("typed in lower case with spaces: %d", got)
		}
	}
	// Every character counts: the code with any one character changed is
	// refused.
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	for pos := range codes[0] {
		if codes[0][pos] == '-' {
			continue
		}
		changed := []byte(codes[0])
		changed[pos] = alphabet[(strings.IndexByte(alphabet, changed[pos])+1)%len(alphabet)]
		if got := MatchRecoveryCode(hashes, string(changed)); got != -1 {
			t.Errorf("%q with character %d changed (%q) matched code %d", codes[0], pos, changed, got)
		}
	}
	for _, bad := range []string{"", "0000-0000-0000", codes[0] + "0", "x"} {
		if got := MatchRecoveryCode(hashes, bad); got != -1 {
			t.Errorf("match %q = %d", bad, got)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("287082", int64(59))
	f.Add("", int64(0))
	f.Add("12 34-56", int64(1e12))
	f.Fuzz(func(t *testing.T, code string, unix int64) {
		_, err := Verify(rfcSecret, code, time.Unix(unix, 0), 0)
		if err != nil && !errors.Is(err, ErrInvalidCode) && !errors.Is(err, ErrMalformedCode) && !errors.Is(err, ErrCodeReused) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}

func FuzzMatchRecoveryCode(f *testing.F) {
	_, hashes, _ := NewRecoveryCodes()
	f.Add("ABCD-EFGH-JKMN")
	f.Fuzz(func(t *testing.T, code string) {
		if i := MatchRecoveryCode(hashes, code); i < -1 || i >= len(hashes) {
			t.Fatalf("index %d", i)
		}
	})
}
