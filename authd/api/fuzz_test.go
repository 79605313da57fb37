package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzHandlers sends arbitrary bodies to every JSON endpoint, logged in as
// the admin with a full session: whatever the input, the answer is a JSON
// error or success, never a 500 and never a panic.
func FuzzHandlers(f *testing.F) {
	e := newEnv(f, start())
	b := e.browser()
	b.setUpAdmin("correct horse")
	u, _ := http.NewRequest("GET", e.url, nil)
	cookies := b.hc.Jar.Cookies(u.URL)
	h := New(e.svc, discardLog(), 0).Handler()
	endpoints := []string{
		"POST /api/v1/login", "POST /api/v1/login/otp", "PUT /api/v1/me/password", "POST /api/v1/me/2fa/verify",
		"DELETE /api/v1/me/2fa", "POST /api/v1/users", "PATCH /api/v1/users/bob", "POST /api/v1/groups",
		"PUT /api/v1/policy/2fa", "POST /api/v1/me/2fa/enroll",
	}
	for _, seed := range []string{`{}`, `{"username":"admin","password":"x"}`, `{"challenge":"x","code":"123456"}`, `{"scope":"selected","users":["admin"]}`,
		`{"name":"bob","password":"12345678","role":"user","groups":[]}`, `{"role":null}`, `[]`, `"`, `{"code":1e999}`} {
		for i := range endpoints {
			f.Add(i, seed)
		}
	}
	f.Fuzz(func(t *testing.T, which int, body string) {
		if which < 0 {
			which = -which
		}
		method, path, _ := strings.Cut(endpoints[which%len(endpoints)], " ")
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for _, c := range cookies {
			req.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: status %d %s", method, path, body, rec.Code, rec.Body)
		}
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%s %s: answer is not JSON", method, path)
		}
	})
}
