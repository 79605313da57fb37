package account

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on names and passwords.
const (
	MinPasswordLen = 8
	// MaxPasswordLen bounds the work one request can cause and keeps
	// passphrases comfortable (NIST SP 800-63B asks for at least 64).
	MaxPasswordLen = 256
	MaxNameLen     = 32
)

// ErrWeakPassword is returned (wrapped, with the reason) when a new password
// breaks the policy.
var ErrWeakPassword = errors.New("password does not meet the policy")

// CheckNewPassword applies the NIST SP 800-63B rules authd enforces: at least
// 8 characters, at most 256, valid UTF-8 without control characters, not
// defaultPassword (when not empty: the caller passes the device's default
// for the built-in admin only) and not the username.
func CheckNewPassword(password, username, defaultPassword string) error {
	if !utf8.ValidString(password) {
		return fmt.Errorf("%w: it is not valid UTF-8", ErrWeakPassword)
	}
	n := utf8.RuneCountInString(password)
	if n < MinPasswordLen {
		return fmt.Errorf("%w: it must have at least %d characters", ErrWeakPassword, MinPasswordLen)
	}
	if n > MaxPasswordLen {
		return fmt.Errorf("%w: it must have at most %d characters", ErrWeakPassword, MaxPasswordLen)
	}
	for _, r := range password {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: it contains a control character", ErrWeakPassword)
		}
	}
	if defaultPassword != "" && subtle.ConstantTimeCompare([]byte(password), []byte(defaultPassword)) == 1 {
		return fmt.Errorf("%w: it is the device's default password", ErrWeakPassword)
	}
	if strings.EqualFold(password, username) {
		return fmt.Errorf("%w: it is the username", ErrWeakPassword)
	}
	return nil
}

// ErrBadName is returned (wrapped) for an invalid account or group name.
var ErrBadName = errors.New("invalid name")

// CheckName validates an account or group name: 1 to 32 characters, lower
// case letters, digits, '.', '_' and '-', starting with a letter or '_'
// (the POSIX portable set, so names can become system users later).
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: it is empty", ErrBadName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %d characters, at most %d allowed", ErrBadName, len(name), MaxNameLen)
	}
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case (r >= '0' && r <= '9') || r == '-' || r == '.':
			if i == 0 {
				return fmt.Errorf("%w: it must start with a lower-case letter or '_'", ErrBadName)
			}
		default:
			return fmt.Errorf("%w: character %q not allowed (use a-z, 0-9, '.', '_', '-')", ErrBadName, r)
		}
	}
	return nil
}

// DefaultPasswordFile is the name of the generated default password in the
// state directory.
const DefaultPasswordFile = "default-password"

// ReadPasswordFile reads a provisioned or generated default password: one
// line of text, at least MinPasswordLen characters, at most 1 KiB.
func ReadPasswordFile(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if len(raw) > 1024 {
		return "", fmt.Errorf("%s: larger than 1 KiB", path)
	}
	p := strings.TrimRight(string(raw), "\r\n")
	if !utf8.ValidString(p) || strings.ContainsAny(p, "\n\r\x00") {
		return "", fmt.Errorf("%s: one line of text expected", path)
	}
	if utf8.RuneCountInString(p) < MinPasswordLen {
		return "", fmt.Errorf("%s: the password has fewer than %d characters", path, MinPasswordLen)
	}
	return p, nil
}
