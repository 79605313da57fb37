package mail

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
)

// Limits from RFC 5321 section 4.5.3.1: a path is at most 256 octets with
// its angle brackets, so an address at most 254; a local part at most 64.
const (
	maxAddressLen = 254
	maxLocalLen   = 64
	maxDomainLen  = 253
	maxLabelLen   = 63
)

// ErrHeaderInjection is returned when a value bound for a mail header holds a
// CR, an LF or another control character. The API maps it to 400.
var ErrHeaderInjection = errors.New("mail: line break or control character in a header value")

// ErrInvalidAddress is wrapped by every error of ValidateAddress.
var ErrInvalidAddress = errors.New("mail: invalid address")

// ValidateAddress accepts exactly one bare address such as
// "alice@example.com": no display name, no angle brackets, no comments, no
// quoted local part, no IP-literal domain, ASCII only, within the length
// limits of RFC 5321, and a domain with at least two labels. The checks are
// stricter than RFC 5322 on purpose: the address receives login codes, so
// anything that could read differently to a person and to a mail server is
// refused.
func ValidateAddress(addr string) error {
	if err := checkHeaderValue(addr); err != nil {
		return fmt.Errorf("%w %q: %w", ErrInvalidAddress, addr, err)
	}
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidAddress, addr, why) }
	if addr == "" {
		return bad("empty")
	}
	if len(addr) > maxAddressLen {
		return bad(fmt.Sprintf("longer than %d characters", maxAddressLen))
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return bad("no @")
	}
	local, domain := addr[:at], addr[at+1:]
	if local == "" || len(local) > maxLocalLen {
		return bad(fmt.Sprintf("the part before @ must have 1 to %d characters", maxLocalLen))
	}
	if !isDotAtom(local) {
		return bad("the part before @ may hold only letters, digits, dots (not leading, trailing or doubled) and !#$%&'*+-/=?^_`{|}~")
	}
	if err := checkDomain(domain); err != nil {
		return bad(err.Error())
	}
	// net/mail is the second opinion: what it parses must be exactly the
	// input, with no display name.
	parsed, err := mail.ParseAddress(addr)
	if err != nil {
		return bad(err.Error())
	}
	if parsed.Name != "" || parsed.Address != addr {
		return bad("not a single bare address")
	}
	return nil
}

// isDotAtom reports whether s is an RFC 5322 dot-atom of ASCII atext.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// checkDomain accepts an ASCII host name of at least two labels.
func checkDomain(d string) error {
	if err := checkHostname(d); err != nil {
		return err
	}
	if !strings.Contains(d, ".") {
		return errors.New("the domain needs at least one dot")
	}
	return nil
}

// checkHostname accepts an ASCII host name: labels of letters, digits and
// inner hyphens, 1 to 63 characters each, 253 in all.
func checkHostname(d string) error {
	if d == "" {
		return errors.New("empty domain")
	}
	if len(d) > maxDomainLen {
		return fmt.Errorf("domain longer than %d characters", maxDomainLen)
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > maxLabelLen {
			return fmt.Errorf("domain label %q must have 1 to %d characters", label, maxLabelLen)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("domain label %q starts or ends with a hyphen", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("domain label %q may hold only letters, digits and hyphens", label)
			}
		}
	}
	return nil
}

// MaskAddress shows an address to people who should not see it whole:
// "alice@example.com" becomes "a***@example.com". Anything that is not a
// plausible address becomes "***".
func MaskAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 1 || at == len(addr)-1 || checkHeaderValue(addr) != nil {
		return "***"
	}
	first := addr[0]
	if first >= 0x80 || first == '"' {
		return "***" + addr[at:]
	}
	return string(first) + "***" + addr[at:]
}

// checkHeaderValue refuses CR, LF and the other control characters (and
// invalid UTF-8) in a value that ends up in a header or an SMTP command.
func checkHeaderValue(s string) error {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' || r == 0xfffd {
			return ErrHeaderInjection
		}
	}
	return nil
}
