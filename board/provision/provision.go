// Package provision makes and reads what makes one device its own: the
// default admin password (unique per device, random, never derived from
// anything public) and the hostname, as the flasher writes them onto the
// boot partition and the firmware reads them at boot.
package provision

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Files on the boot partition (RKNAS-BOOT), relative to its root. Each has a
// fixed size so the flasher can rewrite it in place; the value is the first
// line and the rest is padding ('\n'), which readers ignore.
const (
	PasswordFile = "rknas/default-password"
	HostnameFile = "rknas/hostname"
	// PasswordFileSize and HostnameFileSize are the files' fixed sizes.
	PasswordFileSize = 256
	HostnameFileSize = 128
)

// Unprovisioned starts the first line of a file the flasher has not
// written yet (an image copied with dd): the firmware then generates a
// password on first start and shows it on the console.
const Unprovisioned = "#unprovisioned"

// passwordAlphabet leaves out characters that look alike (0/O, 1/l/I), so
// the password can be read off a printed label.
const passwordAlphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// hostAlphabet is for the hostname's random part: lower case, no look-alikes.
const hostAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// randomString draws n characters from alphabet with crypto/rand, each
// equally likely (rejection sampling).
func randomString(n int, alphabet string) (string, error) {
	var b strings.Builder
	var one [1]byte
	limit := 256 - 256%len(alphabet)
	for b.Len() < n {
		if _, err := rand.Read(one[:]); err != nil {
			return "", fmt.Errorf("provision: random: %w", err)
		}
		if int(one[0]) < limit {
			b.WriteByte(alphabet[int(one[0])%len(alphabet)])
		}
	}
	return b.String(), nil
}

// NewPassword returns a new default password: 16 characters (about 92 bits)
// in groups of four, e.g. "k7Qm-9vHt-Xp3c-RbW2".
func NewPassword() (string, error) {
	s, err := randomString(16, passwordAlphabet)
	if err != nil {
		return "", err
	}
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16], nil
}

// NewHostname returns "rknas-" and six random characters, so two devices on
// one LAN do not share a name.
func NewHostname() (string, error) {
	s, err := randomString(6, hostAlphabet)
	if err != nil {
		return "", err
	}
	return "rknas-" + s, nil
}

// Errors of the file readers and CheckHostname.
var (
	ErrNotProvisioned = errors.New("not provisioned")
	ErrBadValue       = errors.New("bad value")
)

// CheckPassword checks a password given for provisioning: one line of 8 to
// 128 characters of printable UTF-8, not starting with '#'.
func CheckPassword(p string) error {
	n := utf8.RuneCountInString(p)
	switch {
	case !utf8.ValidString(p):
		return fmt.Errorf("provision: password: %w: not UTF-8", ErrBadValue)
	case n < 8 || n > 128:
		return fmt.Errorf("provision: password: %w: %d characters, want 8 to 128", ErrBadValue, n)
	case strings.HasPrefix(p, "#"):
		return fmt.Errorf("provision: password: %w: must not start with '#'", ErrBadValue)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("provision: password: %w: control character %q", ErrBadValue, r)
		}
	}
	return nil
}

// CheckHostname checks an RFC 1123 host name label of 1 to 63 characters:
// a-z, 0-9 and '-', not starting or ending with '-'.
func CheckHostname(h string) error {
	if len(h) == 0 || len(h) > 63 {
		return fmt.Errorf("provision: hostname %q: %w: want 1 to 63 characters", h, ErrBadValue)
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(h)-1
		if !ok {
			return fmt.Errorf("provision: hostname %q: %w: character %q at %d (use a-z, 0-9 and inner '-')", h, ErrBadValue, c, i)
		}
	}
	return nil
}

// Pad returns value as the content of a fixed-size file: value, '\n', and
// '\n' up to size. It fails if value does not fit or holds a line break.
func Pad(value string, size int) ([]byte, error) {
	if strings.ContainsAny(value, "\r\n\x00") {
		return nil, fmt.Errorf("provision: %w: value holds a line break or NUL", ErrBadValue)
	}
	if len(value)+1 > size {
		return nil, fmt.Errorf("provision: %w: %d bytes do not fit in %d", ErrBadValue, len(value), size-1)
	}
	return append([]byte(value+"\n"), bytes.Repeat([]byte{'\n'}, size-len(value)-1)...), nil
}

// Value returns the first line of a provisioning file, or an error wrapping
// ErrNotProvisioned when the file says it was not written by the flasher,
// or ErrBadValue when it holds control characters (a damaged file).
func Value(content []byte) (string, error) {
	line, _, _ := bytes.Cut(content, []byte{'\n'})
	v := strings.TrimSpace(string(line))
	if v == "" || strings.HasPrefix(v, "#") {
		return "", ErrNotProvisioned
	}
	for _, c := range []byte(v) {
		if c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("provision: %w: control byte 0x%02x", ErrBadValue, c)
		}
	}
	return v, nil
}

// Placeholder is the content of an unwritten provisioning file of size bytes.
func Placeholder(size int) []byte {
	b, err := Pad(Unprovisioned, size)
	if err != nil {
		panic(err) // sizes are the constants above
	}
	return b
}
