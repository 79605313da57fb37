package api

import (
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/store"
	"github.com/rknas/firmware/board"
)

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &auth.Error{Code: auth.CodeNotFound, Message: "no such API endpoint: " + r.Method + " " + r.URL.Path})
	})
	s.Handle("POST /api/v1/login", Public, s.login)
	s.Handle("POST /api/v1/login/otp", Public, s.loginOTP)
	s.Handle("POST /api/v1/logout", Public, s.logout)
	s.Handle("GET /api/v1/device", Public, s.device)
	s.Handle("GET /api/v1/me", AnySession, s.me)
	s.Handle("PUT /api/v1/me/password", AnySession, s.changePassword)
	s.Handle("POST /api/v1/me/step-up", FullSession, s.stepUp)
	s.Handle("POST /api/v1/me/2fa/enroll", EnrollSession, s.enroll)
	s.Handle("POST /api/v1/me/2fa/verify", EnrollSession, s.verifyEnroll)
	s.Handle("DELETE /api/v1/me/2fa", FullSession, s.disable2FA)
	s.Handle("POST /api/v1/me/2fa/recovery-codes", FullSession, s.regenerateCodes)
	s.Handle("GET /api/v1/me/devices", FullSession, s.devices)
	s.Handle("DELETE /api/v1/me/devices/{id}", FullSession, s.revokeDevice)
	s.Handle("DELETE /api/v1/me/devices", FullSession, s.revokeDevices)
	s.Handle("GET /api/v1/me/sessions", FullSession, s.mySessions)
	s.Handle("GET /api/v1/me/app-passwords", FullSession, s.appPasswords)
	s.Handle("POST /api/v1/me/app-passwords", FullSession, s.createAppPassword)
	s.Handle("DELETE /api/v1/me/app-passwords/{id}", FullSession, s.revokeAppPassword)
	s.Handle("DELETE /api/v1/me/sessions/{id}", FullSession, s.endMySession)

	s.Handle("GET /api/v1/users", Admin, s.listUsers)
	s.Handle("POST /api/v1/users", Admin, s.createUser)
	s.Handle("GET /api/v1/users/{name}", Admin, s.getUser)
	s.Handle("PATCH /api/v1/users/{name}", Admin, s.patchUser)
	s.Handle("DELETE /api/v1/users/{name}", Admin, s.deleteUser)
	s.Handle("DELETE /api/v1/users/{name}/2fa", Admin, s.adminDisable2FA)
	s.Handle("GET /api/v1/users/{name}/sessions", Admin, s.userSessions)
	s.Handle("DELETE /api/v1/users/{name}/sessions/{id}", Admin, s.endUserSession)
	s.Handle("GET /api/v1/groups", Admin, s.listGroups)
	s.Handle("POST /api/v1/groups", Admin, s.createGroup)
	s.Handle("DELETE /api/v1/groups/{name}", Admin, s.deleteGroup)
	s.Handle("GET /api/v1/policy/2fa", Admin, s.getPolicy)
	s.Handle("PUT /api/v1/policy/2fa", Admin, s.putPolicy)
	s.Handle("GET /api/v1/audit", Admin, s.audit)
	s.securityRoutes()
	s.passkeyRoutes()
}

// device tells the sign-in page what it shows before anyone signs in: the
// device's name, its clock (a refused code can be the clock's fault, which
// the page can only judge against the browser's own time) and how to get
// back in at the device. Nothing in it is private: the name is announced
// on the LAN and the time is in every answer's Date header.
func (s *Server) device(w http.ResponseWriter, r *http.Request, c Caller) error {
	out := map[string]any{"name": s.svc.DeviceName(), "time": s.svc.Now().UTC(), "passkey_sign_in": s.svc.PasskeySignInAllowed()}
	if st := s.svc.ClockStatus(); st != "" {
		out["clock"] = st
	}
	// The name the device answers to on the LAN (announced there by
	// mDNS): a page opened by address points to it for passkeys.
	if f := s.hostNames.Load(); f != nil {
		for _, n := range (*f)() {
			if strings.HasSuffix(n, ".local") {
				out["local_name"] = n
				break
			}
		}
	}
	reset := map[string]any{"present": false}
	if sys := s.sys; sys != nil {
		if sys.Button != nil && sys.Button().Available {
			hold, cancel := sys.Board.ResetHold, sys.Board.CancelHold
			if hold <= 0 {
				hold = board.DefaultResetHold
			}
			if cancel <= 0 {
				cancel = board.DefaultCancelHold
			}
			reset = map[string]any{"present": true, "hold_seconds": int(hold / time.Second), "cancel_seconds": int(cancel / time.Second)}
		}
		if sys.Board.UART.Device != "" {
			out["serial_console"] = map[string]any{"device": sys.Board.UART.Device, "baud": sys.Board.UART.Baud}
		}
	}
	out["reset_button"] = reset
	return OK(w, out)
}

func (s *Server) setSessionCookie(w http.ResponseWriter, r *http.Request, token string) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookieName(r), Value: token, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

func clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// clearDeviceCookie clears the trusted-device cookie, and the one a browser
// may still hold from before it moved to Path=/ (rknas_device at /api/v1/):
// a browser sends the longer path first, so that one, revoked, would hide
// the next one set for 30 days.
func clearDeviceCookie(w http.ResponseWriter, r *http.Request) {
	clearCookie(w, r, deviceCookieName(r))
	clearOldDeviceCookie(w, r)
}

func clearOldDeviceCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: DeviceCookie, Value: "", Path: "/api/v1/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode})
}

type loginResponse struct {
	Status    string   `json:"status"`
	Challenge string   `json:"challenge,omitempty"`
	Methods   []string `json:"methods,omitempty"`
	// TrustedDevice tells that a trusted device skipped the code step.
	TrustedDevice bool `json:"trusted_device,omitempty"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, c Caller) error {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := Decode(w, r, &req); err != nil {
		return err
	}
	device, _ := cookieValue(r, deviceCookieName(r))
	res, err := s.svc.Login(r.Context(), req.Username, req.Password, c.Client, device)
	if err != nil {
		return err
	}
	if res.SessionToken != "" {
		s.setSessionCookie(w, r, res.SessionToken)
	}
	return OK(w, loginResponse{Status: res.Status, Challenge: res.Challenge, Methods: res.Methods, TrustedDevice: res.DeviceUsed})
}

func (s *Server) loginOTP(w http.ResponseWriter, r *http.Request, c Caller) error {
	var req struct {
		Challenge   string `json:"challenge"`
		Code        string `json:"code"`
		TrustDevice bool   `json:"trust_device"`
		DeviceName  string `json:"device_name"`
	}
	if err := Decode(w, r, &req); err != nil {
		return err
	}
	if req.Challenge == "" || req.Code == "" {
		return errBad("challenge, code: both are required")
	}
	res, err := s.svc.LoginOTP(r.Context(), req.Challenge, req.Code, req.TrustDevice, req.DeviceName, c.Client)
	if err != nil {
		return err
	}
	s.setLoginCookies(w, r, res)
	return OK(w, loginResponse{Status: res.Status})
}

// setLoginCookies sets the cookies a completed second step earns: the
// session, and the trusted device when one was asked for.
func (s *Server) setLoginCookies(w http.ResponseWriter, r *http.Request, res auth.LoginResult) {
	s.setSessionCookie(w, r, res.SessionToken)
	if res.DeviceToken != "" {
		http.SetCookie(w, &http.Cookie{Name: deviceCookieName(r), Value: res.DeviceToken, Path: "/", MaxAge: int(s.deviceTTL / time.Second),
			HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
		clearOldDeviceCookie(w, r)
	}
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, c Caller) error {
	if token, ok := cookieValue(r, sessionCookieName(r)); ok {
		s.svc.Logout(token, c.Client)
	}
	clearCookie(w, r, sessionCookieName(r))
	return OK(w, map[string]string{"status": "ok"})
}

type meResponse struct {
	auth.UserView
	SessionStatus string `json:"session_status"`
}

func sessionStatus(c *Caller) string {
	switch c.Session.Kind {
	case "password_change":
		return auth.StatusPasswordChangeRequired
	case "enroll":
		return auth.StatusEnrollRequired
	}
	return auth.StatusOK
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, c Caller) error {
	writeOwnJSON(w, http.StatusOK, meResponse{UserView: s.svc.View(c.User), SessionStatus: sessionStatus(&c)})
	return nil
}

func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, c Caller) error {
	var req struct {
		Current            string `json:"current_password"`
		New                string `json:"new_password"`
		RevokeAppPasswords bool   `json:"revoke_app_passwords"`
	}
	if err := Decode(w, r, &req); err != nil {
		return err
	}
	status, token, err := s.svc.ChangePassword(r.Context(), c.Token, c.Session, req.Current, req.New, req.RevokeAppPasswords, c.Client)
	if err != nil {
		return err
	}
	s.setSessionCookie(w, r, token)
	return OK(w, map[string]string{"status": status})
}

// stepUp takes the password (and a code) again, so the session may make
// sensitive changes for five minutes; the session gets a new token.
func (s *Server) stepUp(w http.ResponseWriter, r *http.Request, c Caller) error {
	var req struct {
		Password string `json:"password"`
		Code     string `json:"code"`
		Passkey  *struct {
			Ceremony   string          `json:"ceremony"`
			Credential json.RawMessage `json:"credential"`
		} `json:"passkey"`
	}
	if err := Decode(w, r, &req); err != nil {
		return err
	}
	var pk *auth.PasskeyAnswer
	if req.Passkey != nil {
		pk = &auth.PasskeyAnswer{Ceremony: req.Passkey.Ceremony, Credential: req.Passkey.Credential, RP: rpOf(r)}
	}
	token, err := s.svc.StepUp(r.Context(), c.Token, c.Session, req.Password, req.Code, pk, c.Client)
	if err != nil {
		return err
	}
	s.setSessionCookie(w, r, token)
	return OK(w, map[string]any{"status": "ok", "valid_seconds": 300})
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request, c Caller) error {
	var req struct {
		Password string `json:"password"`
	}
	if r.ContentLength != 0 {
		if err := Decode(w, r, &req); err != nil {
			return err
		}
	}
	e, err := s.svc.Enroll(r.Context(), c.Session, req.Password, c.Client)
	if err != nil {
		return err
	}
	resp := map[string]any{
		"secret":         e.Secret,
		"secret_grouped": e.Grouped,
		"otpauth_uri":    e.URI,
		"qr_png":         base64.StdEncoding.EncodeToString(e.QRPNG),
		"period":         30,
		"digits":         6,
		"algorithm":      "SHA1",
	}
	if !s.svc.ClockTrusted() {
		resp["warning"] = "the device clock is not set: codes will not match until the time is synchronized (set up NTP or set the time by hand)"
	}
	return OK(w, resp)
}

func (s *Server) verifyEnroll(w http.ResponseWriter, r *http.Request, c Caller) error {
	var req struct {
		Code string `json:"code"`
	}
	if err := Decode(w, r, &req); err != nil {
		return err
	}
	codes, status, token, err := s.svc.VerifyEnroll(r.Context(), c.Token, c.User.Name, req.Code, c.Client)
	if err != nil {
		return err
	}
	s.setSessionCookie(w, r, token)
	return OK(w, map[string]any{"recovery_codes": codes, "status": status})
}

func (s *Server) disable2FA(w http.ResponseWriter, r *http.Request, c Caller) error {
	var req struct {
		Password string `json:"password"`
		Code     string `json:"code"`
	}
	if err := Decode(w, r, &req); err != nil {
		return err
	}
	status, token, err := s.svc.Disable2FA(r.Context(), c.Token, c.User.Name, req.Password, req.Code, c.Client)
	if err != nil {
		return err
	}
	s.setSessionCookie(w, r, token)
	clearDeviceCookie(w, r)
	return OK(w, map[string]string{"status": status})
}

func (s *Server) regenerateCodes(w http.ResponseWriter, r *http.Request, c Caller) error {
	var req struct {
		Password string `json:"password"`
	}
	if err := Decode(w, r, &req); err != nil {
		return err
	}
	codes, err := s.svc.RegenerateRecoveryCodes(r.Context(), c.Token, c.Session, req.Password, c.Client)
	if err != nil {
		return err
	}
	return OK(w, map[string]any{"recovery_codes": codes})
}

func (s *Server) devices(w http.ResponseWriter, r *http.Request, c Caller) error {
	cur, _ := cookieValue(r, deviceCookieName(r))
	d, err := s.svc.Devices(c.User.Name, cur)
	if err != nil {
		return err
	}
	return OK(w, map[string]any{"devices": d})
}

func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request, c Caller) error {
	if err := s.svc.RevokeDevice(c.User.Name, r.PathValue("id"), c.Client); err != nil {
		return err
	}
	return OK(w, map[string]string{"status": "ok"})
}

func (s *Server) appPasswords(w http.ResponseWriter, r *http.Request, c Caller) error {
	list, err := s.svc.AppPasswords(c.User.Name)
	if err != nil {
		return err
	}
	return OK(w, map[string]any{"app_passwords": list})
}

func (s *Server) createAppPassword(w http.ResponseWriter, r *http.Request, c Caller) error {
	var req struct {
		Name     string   `json:"name"`
		Scopes   []string `json:"scopes"`
		Password string   `json:"password"`
	}
	if err := Decode(w, r, &req); err != nil {
		return err
	}
	v, token, err := s.svc.CreateAppPassword(r.Context(), c.Session, auth.NewAppPassword{Name: req.Name, Scopes: req.Scopes, Password: req.Password}, c.Client)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, struct {
		auth.AppPasswordView
		Token string `json:"token"`
	}{v, token})
	return nil
}

func (s *Server) revokeAppPassword(w http.ResponseWriter, r *http.Request, c Caller) error {
	if err := s.svc.RevokeAppPassword(c.User.Name, r.PathValue("id"), c.Client); err != nil {
		return err
	}
	return OK(w, map[string]string{"status": "ok"})
}

func (s *Server) mySessions(w http.ResponseWriter, r *http.Request, c Caller) error {
	return OK(w, map[string]any{"sessions": s.svc.SessionsOf(c.User.Name, c.Session.ID)})
}

// endMySession ends one of the caller's sessions; ending the one it is
// sent from signs this browser out.
func (s *Server) endMySession(w http.ResponseWriter, r *http.Request, c Caller) error {
	id := r.PathValue("id")
	if err := s.svc.EndSession(s.svc.Actor(c.Session), c.User.Name, id, c.Client); err != nil {
		return err
	}
	if id == c.Session.ID {
		clearCookie(w, r, sessionCookieName(r))
	}
	return OK(w, map[string]string{"status": "ok"})
}

func (s *Server) userSessions(w http.ResponseWriter, r *http.Request, c Caller) error {
	u, err := s.svc.User(r.PathValue("name"))
	if err != nil {
		return err
	}
	cur := ""
	if u.Name == c.User.Name {
		cur = c.Session.ID
	}
	return OK(w, map[string]any{"sessions": s.svc.SessionsOf(u.Name, cur)})
}

func (s *Server) endUserSession(w http.ResponseWriter, r *http.Request, c Caller) error {
	name, id := r.PathValue("name"), r.PathValue("id")
	if err := s.svc.EndSession(s.svc.Actor(c.Session), name, id, c.Client); err != nil {
		return err
	}
	if name == c.User.Name && id == c.Session.ID {
		clearCookie(w, r, sessionCookieName(r))
	}
	return OK(w, map[string]string{"status": "ok"})
}

func (s *Server) revokeDevices(w http.ResponseWriter, r *http.Request, c Caller) error {
	n, err := s.svc.RevokeDevices(c.User.Name, c.Client)
	if err != nil {
		return err
	}
	clearDeviceCookie(w, r)
	return OK(w, map[string]any{"revoked": n})
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, c Caller) error {
	users, err := s.svc.Users()
	if err != nil {
		return err
	}
	return OK(w, map[string]any{"users": users})
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, c Caller) error {
	var req auth.NewUser
	if err := Decode(w, r, &req); err != nil {
		return err
	}
	if req.Role == "" {
		req.Role = store.RoleUser
	}
	u, err := s.svc.CreateUser(r.Context(), s.svc.Actor(c.Session), req, c.Client)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, u)
	return nil
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, c Caller) error {
	u, err := s.svc.User(r.PathValue("name"))
	if err != nil {
		return err
	}
	return OK(w, s.svc.View(u))
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request, c Caller) error {
	var req auth.UserPatch
	if err := Decode(w, r, &req); err != nil {
		return err
	}
	u, err := s.svc.UpdateUser(r.Context(), s.svc.Actor(c.Session), r.PathValue("name"), req, c.Client)
	if err != nil {
		return err
	}
	return OK(w, u)
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, c Caller) error {
	if err := s.svc.DeleteUser(s.svc.Actor(c.Session), r.PathValue("name"), c.Client); err != nil {
		return err
	}
	return OK(w, map[string]string{"status": "ok"})
}

func (s *Server) adminDisable2FA(w http.ResponseWriter, r *http.Request, c Caller) error {
	if err := s.svc.AdminDisable2FA(s.svc.Actor(c.Session), r.PathValue("name"), c.Client); err != nil {
		return err
	}
	return OK(w, map[string]string{"status": "ok"})
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request, c Caller) error {
	g, err := s.svc.Groups()
	if err != nil {
		return err
	}
	return OK(w, map[string]any{"groups": g})
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request, c Caller) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := Decode(w, r, &req); err != nil {
		return err
	}
	g, err := s.svc.CreateGroup(c.User.Name, req.Name, c.Client)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, g)
	return nil
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request, c Caller) error {
	if err := s.svc.DeleteGroup(s.svc.Actor(c.Session), r.PathValue("name"), c.Client); err != nil {
		return err
	}
	return OK(w, map[string]string{"status": "ok"})
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request, c Caller) error {
	p, err := s.svc.Policy()
	if err != nil {
		return err
	}
	return OK(w, p)
}

func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request, c Caller) error {
	var req store.Policy
	if err := Decode(w, r, &req); err != nil {
		return err
	}
	p, err := s.svc.SetPolicy(s.svc.Actor(c.Session), req, c.Client)
	if err != nil {
		return err
	}
	return OK(w, p)
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request, c Caller) error {
	q := r.URL.Query()
	csvOut := false
	switch v := q.Get("format"); v {
	case "", "json":
	case "csv":
		csvOut = true
	default:
		return errBad("format: %q is neither json nor csv", v)
	}
	// An export may take both rings whole; a page of the log 1000 at most.
	limit, maxLimit, before := 100, 1000, uint64(0)
	if csvOut {
		limit, maxLimit = store.MaxAudit+store.MaxAuditFailures, store.MaxAudit+store.MaxAuditFailures
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return errBad("limit: %q is not a number from 1 to %d", v, maxLimit)
		}
		limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return errBad("before: %q is not an entry id", v)
		}
		before = n
	}
	f := store.AuditFilter{User: q.Get("user"), Event: q.Get("event")}
	if len(f.User) > 64 || len(f.Event) > 64 {
		return errBad("user, event: at most 64 characters")
	}
	entries, err := s.svc.AuditLogMatching(limit, before, f)
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []store.AuditEntry{}
	}
	if csvOut {
		return writeAuditCSV(w, entries, s.svc.Now())
	}
	return OK(w, map[string]any{"entries": entries})
}

// writeAuditCSV writes entries as a CSV file to download. A cell that a
// spreadsheet would take for a formula (a failed login's username is
// anyone's text) gets a leading apostrophe.
func writeAuditCSV(w http.ResponseWriter, entries []store.AuditEntry, now time.Time) error {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="audit-`+now.UTC().Format("20060102-150405")+`.csv"`)
	cw := csv.NewWriter(w)
	cell := func(s string) string {
		if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
			return "'" + s
		}
		return s
	}
	_ = cw.Write([]string{"id", "time", "event", "user", "actor", "client", "detail"})
	for _, e := range entries {
		_ = cw.Write([]string{strconv.FormatUint(e.ID, 10), e.Time.UTC().Format(time.RFC3339), cell(e.Event), cell(e.User),
			cell(e.Actor), cell(e.Client), cell(e.Detail)})
	}
	// The status line is out: a failed write can only end the answer
	// early, and the client sees a short file.
	cw.Flush()
	return nil
}
