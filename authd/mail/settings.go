package mail

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// Presets name well-known providers; custom takes host, port and security
// as given.
const (
	PresetGmail   = "gmail"
	PresetOutlook = "outlook"
	PresetCustom  = "custom"
)

// Security modes of the SMTP connection.
const (
	// SecurityNone is plain SMTP; only sensible on a trusted network.
	// Passwords are still never sent in the clear (see SMTPSender).
	SecurityNone = "none"
	// SecurityStartTLS upgrades the connection with STARTTLS and refuses to
	// go on when the server does not offer it.
	SecurityStartTLS = "starttls"
	// SecurityTLS speaks TLS from the first byte (usually port 465).
	SecurityTLS = "tls"
)

// Limits of settings fields; generous but bounded so a request cannot make
// the device store or parse megabytes.
const (
	maxCredentialLen  = 512
	maxCAPEMLen       = 64 << 10
	maxSettingsJSON   = 128 << 10
	maxCACertificates = 16
)

// Settings are the admin's SMTP settings. Password is stored but never
// returned by the API: show Redacted instead.
type Settings struct {
	Preset   string `json:"preset"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Security string `json:"security"`
	Username string `json:"username"`
	Password string `json:"password"`
	From     string `json:"from"`
	// CAPEM optionally holds extra CA certificates (PEM) trusted besides the
	// system roots, for a server with a private CA.
	CAPEM string `json:"ca_pem"`
}

// RedactedSettings is the view of Settings the API returns: the password
// is left out, PasswordSet says whether one is stored.
type RedactedSettings struct {
	Preset      string `json:"preset"`
	Host        string `json:"host"`
	Port        int    `json:"port"`
	Security    string `json:"security"`
	Username    string `json:"username"`
	PasswordSet bool   `json:"password_set"`
	From        string `json:"from"`
	CAPEM       string `json:"ca_pem"`
}

// FieldError is a settings validation error naming the JSON field at fault.
type FieldError struct {
	Field   string // JSON name, e.g. "port"
	Problem string // what is wrong, for people
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("mail: settings: %s: %s", e.Field, e.Problem)
}

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Redacted returns the settings without the password.
func (s Settings) Redacted() RedactedSettings {
	return RedactedSettings{
		Preset: s.Preset, Host: s.Host, Port: s.Port, Security: s.Security,
		Username: s.Username, PasswordSet: s.Password != "", From: s.From, CAPEM: s.CAPEM,
	}
}

// Resolved returns s with the preset applied: gmail and outlook fix host,
// port and security; custom keeps them as given.
func (s Settings) Resolved() Settings {
	switch s.Preset {
	case PresetGmail:
		s.Host, s.Port, s.Security = "smtp.gmail.com", 587, SecurityStartTLS
	case PresetOutlook:
		s.Host, s.Port, s.Security = "smtp.office365.com", 587, SecurityStartTLS
	}
	return s
}

// Merge returns the settings a PUT of update leads to: update, resolved,
// with the stored password kept when update's password is empty (the API
// never shows the password, so a form sends it back empty) and the server
// and user name are the same. For another server or user name the password
// is given again: the stored one (often the owner's mail account's) must
// not be sent to a server an admin names, nor logged in with as someone
// else. The result still needs Validate, which then asks for it.
func (s Settings) Merge(update Settings) Settings {
	update = update.Resolved()
	cur := s.Resolved()
	if update.Password == "" && update.Host == cur.Host && update.Port == cur.Port && update.Security == cur.Security && update.Username == cur.Username {
		update.Password = s.Password
	}
	// Dropping the user name drops the password too: AUTH is off.
	if update.Username == "" {
		update.Password = ""
	}
	return update
}

// Validate checks resolved settings and returns a *FieldError naming the
// first field at fault.
func (s Settings) Validate() error {
	switch s.Preset {
	case PresetGmail, PresetOutlook, PresetCustom:
	case "":
		return fieldErr("preset", "required: one of gmail, outlook, custom")
	default:
		return fieldErr("preset", "%q is not one of gmail, outlook, custom", s.Preset)
	}
	if err := validateHost(s.Host); err != nil {
		return fieldErr("host", "%v", err)
	}
	if s.Port < 1 || s.Port > 65535 {
		return fieldErr("port", "%d is outside 1..65535", s.Port)
	}
	switch s.Security {
	case SecurityNone, SecurityStartTLS, SecurityTLS:
	default:
		return fieldErr("security", "%q is not one of none, starttls, tls", s.Security)
	}
	if err := checkCredential(s.Username); err != nil {
		return fieldErr("username", "%v", err)
	}
	if err := checkCredential(s.Password); err != nil {
		return fieldErr("password", "%v", err)
	}
	if s.Username != "" && s.Password == "" {
		return fieldErr("password", "required when a username is set (given again when the server or the user name changes)")
	}
	if s.Username == "" && s.Password != "" {
		return fieldErr("username", "required when a password is set")
	}
	if s.From == "" {
		return fieldErr("from", "required")
	}
	if err := ValidateAddress(s.From); err != nil {
		return fieldErr("from", "%v", err)
	}
	if _, err := parseCAPEM(s.CAPEM); err != nil {
		return fieldErr("ca_pem", "%v", err)
	}
	return nil
}

// DecodeSettings parses settings JSON from the API strictly: one object,
// known fields only, at most 128 KiB. It does not validate; call
// Merge and Validate.
func DecodeSettings(data []byte) (Settings, error) {
	var s Settings
	if len(data) > maxSettingsJSON {
		return s, fmt.Errorf("mail: settings: JSON longer than %d bytes", maxSettingsJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Settings{}, fieldErr(te.Field, "wrong JSON type %s", te.Value)
		}
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return Settings{}, fieldErr(strings.Trim(field, `"`), "unknown field")
		}
		return Settings{}, fmt.Errorf("mail: settings: decode JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Settings{}, errors.New("mail: settings: trailing data after the JSON object")
	}
	return s, nil
}

func validateHost(h string) error {
	if h == "" {
		return errors.New("required")
	}
	if checkHeaderValue(h) != nil {
		return errors.New("holds a line break or control character")
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return errors.New("an IPv6 zone is not allowed")
		}
		return nil
	}
	return checkHostname(strings.TrimSuffix(h, "."))
}

func checkCredential(s string) error {
	if len(s) > maxCredentialLen {
		return fmt.Errorf("longer than %d bytes", maxCredentialLen)
	}
	if checkHeaderValue(s) != nil {
		return errors.New("holds a line break or control character")
	}
	return nil
}

// parseCAPEM parses the extra CA certificates; empty input gives nil.
func parseCAPEM(p string) ([]*x509.Certificate, error) {
	if strings.TrimSpace(p) == "" {
		return nil, nil
	}
	if len(p) > maxCAPEMLen {
		return nil, fmt.Errorf("longer than %d bytes", maxCAPEMLen)
	}
	var certs []*x509.Certificate
	rest := []byte(p)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q is not a CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
		if len(certs) > maxCACertificates {
			return nil, fmt.Errorf("more than %d certificates", maxCACertificates)
		}
	}
	// Text between blocks is allowed (bundles carry comments), but a block
	// pem.Decode could not finish would silently go missing.
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return nil, fmt.Errorf("PEM block after certificate %d is incomplete or malformed", len(certs))
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return certs, nil
}
