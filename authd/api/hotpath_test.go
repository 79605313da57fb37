package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/auth"
)

// FuzzCookieValue holds cookieValue to r.Cookie: the same cookie or none,
// whatever the Cookie lines hold.
func FuzzCookieValue(f *testing.F) {
	for _, seed := range [][2]string{
		{"rknas_session=abc", ""},
		{` rknas_session = "abc" ; other=1`, "rknas_session=def"},
		{"other=1; rknas_session=a\\b; rknas_session=ok", ""},
		{"rknas_session=\"\"", "rknas_session=x"},
		{"rknas_session=\"unbalanced", "rknas_session=later"},
		{"rknas_sessionx=1;rknas_session", ""},
		{strings.Repeat(";", maxCookies) + "rknas_session=many", ""},
		{"rknas_session=caf\xc3\xa9", "\trknas_session=tab\t"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		r := &http.Request{Header: http.Header{"Cookie": {line1}}}
		if line2 != "" {
			r.Header["Cookie"] = append(r.Header["Cookie"], line2)
		}
		got, ok := cookieValue(r, SessionCookie)
		want, err := r.Cookie(SessionCookie)
		if ok != (err == nil) || (ok && got != want.Value) {
			t.Fatalf("Cookie lines %q: cookieValue %q, %v; r.Cookie %v, %v", r.Header["Cookie"], got, ok, want, err)
		}
	})
}

// FuzzMeJSON holds /api/v1/me's own encoder to encoding/json's bytes.
func FuzzMeJSON(f *testing.F) {
	f.Add("admin", "admin", "users,admins", true, false, 2, "owner@example.com", int64(1795000000), 3600, "ok")
	f.Add("b<o>b&\"\\", "", "", false, true, 0, "", int64(-62135596800), 0, "enroll_required")
	f.Add("R&D", "user", "R&D", false, false, 1, "x@y", int64(0), 60, "ok")
	f.Add("café\u2028\x00\xff", "user", "-", true, true, -7, "a\tb", int64(253402300800), -1800, "")
	f.Fuzz(func(t *testing.T, name, role, groups string, flag, flag2 bool, n int, email string, unix int64, offset int, status string) {
		zone := time.FixedZone("", offset)
		var gs []string
		if groups != "-" {
			gs = []string{}
			if groups != "" {
				gs = strings.Split(groups, ",")
			}
		}
		m := meResponse{UserView: auth.UserView{Name: name, Role: role, Groups: gs, Disabled: flag, MustChangePassword: flag2,
			TwoFactor: !flag, TwoFactorRequired: flag && flag2, Authenticator: flag2, Passkeys: n, RecoveryCodesLeft: -n,
			SecurityEmail: email, SecurityEmailOK: !flag2, Created: time.Unix(unix, int64(n)).In(zone),
			PasswordChanged: time.Unix(-unix, 0).UTC(), Sessions: n * 3}, SessionStatus: status}
		var want bytes.Buffer
		wantErr := json.NewEncoder(&want).Encode(m)
		var got bytes.Buffer
		gotErr := encodeJSON(&got, m)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%+v: encodeJSON error %v, encoding/json %v", m, gotErr, wantErr)
		}
		if gotErr == nil && got.String() != want.String() {
			t.Fatalf("%+v:\nencodeJSON    %s\nencoding/json %s", m, got.String(), want.String())
		}
		if b, err := m.appendJSON(nil); err == nil && string(b)+"\n" != want.String() {
			t.Fatalf("appendJSON %s, encoding/json %s", b, want.String())
		}
	})
}

// TestAnswerLength: every JSON answer goes out with its length, not
// chunked, whether net/http measures it (an answer that fits its buffer:
// {"s":""} and a newline are 9 bytes, so answerBuffered - 9 fills it)
// or writeJSON does (a longer one).
func TestAnswerLength(t *testing.T) {
	for _, size := range []int{0, 100, answerBuffered - 9, answerBuffered - 8, 3 * answerBuffered} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"s": strings.Repeat("x", size)})
		}))
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.TransferEncoding) > 0 || resp.ContentLength != int64(len(body)) || len(body) < size {
			t.Errorf("a %d-byte answer: Transfer-Encoding %q, Content-Length %d, body %d bytes", len(body), resp.TransferEncoding, resp.ContentLength, len(body))
		}
	}
}

// TestWriteOwnJSON: an answer that writes its own JSON goes out as
// writeJSON sends it, its failure (a time encoding/json refuses too)
// included.
func TestWriteOwnJSON(t *testing.T) {
	ok := meResponse{UserView: auth.UserView{Name: "admin", Role: "admin", Groups: []string{"admins"},
		Created: time.Date(2026, 12, 1, 3, 4, 5, 6, time.UTC)}, SessionStatus: auth.StatusOK}
	bad := ok
	bad.Created = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		m      meResponse
		status int
	}{{"an answer", ok, http.StatusOK}, {"a time out of JSON's range", bad, http.StatusInternalServerError}} {
		own, std := httptest.NewRecorder(), httptest.NewRecorder()
		writeOwnJSON(own, http.StatusOK, tc.m)
		writeJSON(std, http.StatusOK, tc.m)
		if own.Code != tc.status || own.Code != std.Code || own.Body.String() != std.Body.String() ||
			own.Header().Get("Content-Type") != std.Header().Get("Content-Type") {
			t.Errorf("%s: writeOwnJSON %d %q %q, writeJSON %d %q %q", tc.name, own.Code, own.Header(), own.Body,
				std.Code, std.Header(), std.Body)
		}
	}
}
