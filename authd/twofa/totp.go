// Package twofa implements the TOTP second factor (RFC 6238: SHA1, 6 digits,
// 30 s steps, one step of skew) with replay protection by time step, and
// single-use recovery codes.
package twofa

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// The TOTP parameters every authenticator app understands.
const (
	Period = 30
	Digits = 6
	// Skew is how many steps either side of now are accepted: one, to
	// allow for a slow typist and a little clock drift (RFC 6238 5.2).
	Skew = 1
	// SecretBytes is 160 bits, the HMAC-SHA1 block RFC 4226 recommends.
	SecretBytes = 20
	// QRSize is the side of the QR code image in pixels.
	QRSize = 256
)

var (
	// ErrInvalidCode means the code matches no step in the window.
	ErrInvalidCode = errors.New("twofa: invalid code")
	// ErrCodeReused means the code is right but its time step was already
	// used for this account.
	ErrCodeReused = errors.New("twofa: code already used")
	// ErrMalformedCode means the input is not a 6-digit code.
	ErrMalformedCode = errors.New("twofa: a code is 6 digits")
)

// Enrollment is a new authenticator key as shown to the user.
type Enrollment struct {
	// Secret is the base32 key without padding.
	Secret string
	// URI is the otpauth:// URI the QR code holds.
	URI string
	// QRPNG is the QR code as a PNG image.
	QRPNG []byte
	// Grouped is the secret in groups of four for typing.
	Grouped string
}

// NewEnrollment creates a random 160-bit key for account on the device
// called issuer, with its QR code.
func NewEnrollment(issuer, account string) (Enrollment, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      Period,
		SecretSize:  SecretBytes,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return Enrollment{}, fmt.Errorf("twofa: generate key: %w", err)
	}
	img, err := key.Image(QRSize, QRSize)
	if err != nil {
		return Enrollment{}, fmt.Errorf("twofa: draw QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Enrollment{}, fmt.Errorf("twofa: encode QR code: %w", err)
	}
	return Enrollment{Secret: key.Secret(), URI: key.URL(), QRPNG: buf.Bytes(), Grouped: Group(key.Secret())}, nil
}

// Group splits s into groups of four characters.
func Group(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Step returns the RFC 6238 time step of t.
func Step(t time.Time) int64 { return t.Unix() / Period }

// normalizeCode strips the spaces and dashes people type or paste.
func normalizeCode(code string) (string, error) {
	code = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, code)
	if len(code) != Digits {
		return "", ErrMalformedCode
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return "", ErrMalformedCode
		}
	}
	return code, nil
}

// LooksLikeTOTP tells whether s has the shape of a TOTP code, so a caller
// can route other input to the recovery codes.
func LooksLikeTOTP(s string) bool {
	_, err := normalizeCode(s)
	return err == nil
}

// Verify checks code against secret at now. It accepts the steps within Skew
// of now that are newer than lastStep and returns the step that matched,
// which the caller must store as the new lastStep before answering. Every
// candidate is computed and compared in constant time, so the answer's
// timing does not tell which step matched.
func Verify(secret, code string, now time.Time, lastStep int64) (int64, error) {
	if secret == "" {
		// HMAC takes an empty key, and the codes it makes anyone can make.
		return 0, errors.New("twofa: no secret to check the code against")
	}
	code, err := normalizeCode(code)
	if err != nil {
		return 0, err
	}
	opts := totp.ValidateOpts{Period: Period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	now0 := Step(now)
	matched, reused := int64(-1), false
	for s := now0 - Skew; s <= now0+Skew; s++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*Period, 0), opts)
		if err != nil {
			return 0, fmt.Errorf("twofa: stored secret unusable: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			if s > lastStep {
				if matched < 0 {
					matched = s
				}
			} else {
				reused = true
			}
		}
	}
	switch {
	case matched >= 0:
		return matched, nil
	case reused:
		return 0, ErrCodeReused
	}
	return 0, ErrInvalidCode
}

// RecoveryCount is how many recovery codes a set holds.
const RecoveryCount = 10

// recoveryEncoding is Crockford's base32 alphabet: no I, L, O or U, so
// codes read aloud or copied by hand survive.
var recoveryEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// NewRecoveryCodes returns RecoveryCount fresh codes (60 random bits each,
// shown as XXXX-XXXX-XXXX) and their hashes for storage.
func NewRecoveryCodes() (codes, hashes []string, err error) {
	for range RecoveryCount {
		raw := make([]byte, 8)
		if _, err := rand.Read(raw); err != nil {
			return nil, nil, fmt.Errorf("twofa: random: %w", err)
		}
		s := recoveryEncoding.EncodeToString(raw)[:12]
		codes = append(codes, s[0:4]+"-"+s[4:8]+"-"+s[8:12])
		hashes = append(hashes, HashRecoveryCode(s))
	}
	return codes, hashes, nil
}

// normalizeRecovery upper-cases, drops separators and maps the letters
// people confuse with digits, as Crockford's base32 does.
func normalizeRecovery(code string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', ' ':
			return -1
		case 'o', 'O':
			return '0'
		case 'i', 'I', 'l', 'L':
			return '1'
		}
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, code)
}

// HashRecoveryCode returns the stored form of a recovery code. The codes
// carry 60 random bits, so a fast hash keeps them from being read off a
// copy of the database: finding one takes about 2^60 SHA-256 runs per
// stored code set (the hash is unsalted, so one search covers every code at
// once). That is no more than the copy already gives away: the account's
// TOTP secret sits beside them, stored in clear because checking a code
// needs it, so the database itself must stay on the device (0600, root).
func HashRecoveryCode(code string) string {
	sum := sha256.Sum256([]byte("rknas-recovery:" + normalizeRecovery(code)))
	return hex.EncodeToString(sum[:])
}

// MatchRecoveryCode returns the index of code's hash in hashes, or -1. All
// hashes are compared, in constant time.
func MatchRecoveryCode(hashes []string, code string) int {
	n := normalizeRecovery(code)
	if len(n) != 12 {
		return -1
	}
	h := []byte(HashRecoveryCode(n))
	found := -1
	for i, stored := range hashes {
		if subtle.ConstantTimeCompare(h, []byte(stored)) == 1 && found < 0 {
			found = i
		}
	}
	return found
}
