package api

import (
	"encoding/json"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The session-checked GET /api/v1/me is what every page asks first and
// polls after: the cookie lookup (every cookie authd reads goes through it)
// and /me's answer are written here without reflection or allocations, to
// the same bytes net/http and encoding/json give (FuzzCookieValue and
// FuzzMeJSON hold them to it; TestMeAllocatesNothing holds the whole
// request to no allocation).

// maxCookies is net/http's limit on the cookies of one request (its
// httpcookiemaxnum default); past it, r.Cookie finds none.
const maxCookies = 3000

// cookieValue returns the value of the first well-formed cookie called
// name, as r.Cookie(name) does, without allocating.
func cookieValue(r *http.Request, name string) (string, bool) {
	lines := r.Header["Cookie"]
	if len(lines) == 0 {
		return "", false
	}
	count := 0
	for _, line := range lines {
		count += strings.Count(line, ";") + 1
	}
	if count > maxCookies {
		return "", false
	}
	for _, line := range lines {
		line = textproto.TrimString(line)
		var part string
		for len(line) > 0 {
			part, line, _ = strings.Cut(line, ";")
			part = textproto.TrimString(part)
			if part == "" {
				continue
			}
			n, v, _ := strings.Cut(part, "=")
			if textproto.TrimString(n) != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if validCookieValue(v) {
				return v, true
			}
		}
	}
	return "", false
}

// validCookieValue is net/http's rule for a cookie value's bytes.
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}

// jsonAppender is an answer that writes its own JSON, byte for byte what
// encoding/json writes for it (without the final newline); an error sends
// writeJSON back to encoding/json.
type jsonAppender interface {
	appendJSON(b []byte) ([]byte, error)
}

func (m meResponse) appendJSON(b []byte) ([]byte, error) {
	v := &m.UserView
	b = append(b, `{"name":`...)
	b = appendJSONString(b, v.Name)
	b = append(b, `,"role":`...)
	b = appendJSONString(b, v.Role)
	b = append(b, `,"groups":`...)
	if v.Groups == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, g := range v.Groups {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, g)
		}
		b = append(b, ']')
	}
	b = appendJSONBool(b, `,"disabled":`, v.Disabled)
	b = appendJSONBool(b, `,"must_change_password":`, v.MustChangePassword)
	b = appendJSONBool(b, `,"two_factor":`, v.TwoFactor)
	b = appendJSONBool(b, `,"two_factor_required":`, v.TwoFactorRequired)
	b = appendJSONBool(b, `,"authenticator":`, v.Authenticator)
	b = append(b, `,"passkeys":`...)
	b = strconv.AppendInt(b, int64(v.Passkeys), 10)
	b = append(b, `,"recovery_codes_left":`...)
	b = strconv.AppendInt(b, int64(v.RecoveryCodesLeft), 10)
	if v.SecurityEmail != "" {
		b = append(b, `,"security_email":`...)
		b = appendJSONString(b, v.SecurityEmail)
	}
	b = appendJSONBool(b, `,"security_email_verified":`, v.SecurityEmailOK)
	var err error
	b = append(b, `,"created":`...)
	if b, err = appendJSONTime(b, v.Created); err != nil {
		return nil, err
	}
	b = append(b, `,"password_changed":`...)
	if b, err = appendJSONTime(b, v.PasswordChanged); err != nil {
		return nil, err
	}
	b = append(b, `,"sessions":`...)
	b = strconv.AppendInt(b, int64(v.Sessions), 10)
	b = append(b, `,"session_status":`...)
	b = appendJSONString(b, m.SessionStatus)
	return append(b, '}'), nil
}

func appendJSONBool(b []byte, key string, v bool) []byte {
	return strconv.AppendBool(append(b, key...), v)
}

// appendJSONTime writes t as time.Time's MarshalJSON does.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	return append(b, '"'), err
}

// appendJSONString writes s as encoding/json does: a string of printable
// ASCII without quotes, backslashes or the HTML characters it escapes
// directly, anything else through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
