package api

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/rknas/firmware/authd/auth"
)

// passkeyRoutes registers the passkey (WebAuthn) routes: adding, listing,
// renaming and removing an account's passkeys, the choice to sign in with
// one alone, and the two steps of a passkey login.
func (s *Server) passkeyRoutes() {
	s.Handle("POST /api/v1/me/passkeys/register", EnrollSession, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			Password string `json:"password"`
		}
		if err := decodeOptional(w, r, &req); err != nil {
			return err
		}
		opts, id, err := s.svc.BeginPasskeyRegistration(r.Context(), c.Session, req.Password, rpOf(r), c.Client)
		if err != nil {
			return err
		}
		return OK(w, map[string]any{"ceremony": id, "options": opts})
	})
	s.Handle("POST /api/v1/me/passkeys", EnrollSession, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			Ceremony   string          `json:"ceremony"`
			Name       string          `json:"name"`
			Credential json.RawMessage `json:"credential"`
		}
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		if req.Ceremony == "" || len(req.Credential) == 0 {
			return errBad("ceremony, credential: both are required")
		}
		view, status, token, err := s.svc.FinishPasskeyRegistration(c.Token, c.Session, req.Ceremony, req.Name, req.Credential, rpOf(r), c.Client)
		if err != nil {
			return err
		}
		if token != "" {
			s.setSessionCookie(w, r, token)
		} else {
			status = sessionStatus(&c)
		}
		writeJSON(w, http.StatusCreated, map[string]any{"passkey": view, "status": status})
		return nil
	})
	s.Handle("GET /api/v1/me/passkeys", FullSession, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		list, signIn, err := s.svc.Passkeys(c.User.Name)
		if err != nil {
			return err
		}
		return OK(w, map[string]any{"passkeys": list, "sign_in": signIn, "sign_in_allowed": s.svc.PasskeySignInAllowed()})
	})
	s.Handle("PATCH /api/v1/me/passkeys/{id}", FullSession, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			Name string `json:"name"`
		}
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		if err := s.svc.RenamePasskey(c.User.Name, r.PathValue("id"), req.Name); err != nil {
			return err
		}
		return OK(w, map[string]string{"status": "ok"})
	})
	s.Handle("DELETE /api/v1/me/passkeys/{id}", FullSession, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			Password string `json:"password"`
		}
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		status, token, err := s.svc.RemovePasskey(r.Context(), c.Token, c.Session, r.PathValue("id"), req.Password, c.Client)
		if err != nil {
			return err
		}
		if token == "" {
			return OK(w, map[string]string{"status": "ok"})
		}
		// The last second factor is gone: so are the trusted devices.
		s.setSessionCookie(w, r, token)
		clearDeviceCookie(w, r)
		return OK(w, map[string]string{"status": status})
	})
	s.Handle("PUT /api/v1/me/passkeys/sign-in", FullSession, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			Enabled  bool   `json:"enabled"`
			Password string `json:"password"`
		}
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		if err := s.svc.SetPasskeySignIn(r.Context(), c.Session, req.Enabled, req.Password, c.Client); err != nil {
			return err
		}
		return OK(w, map[string]bool{"sign_in": req.Enabled})
	})
	s.Handle("POST /api/v1/me/step-up/passkey", FullSession, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		opts, id, err := s.svc.BeginPasskeyStepUp(c.Session, rpOf(r))
		if err != nil {
			return err
		}
		return OK(w, map[string]any{"ceremony": id, "options": opts})
	})
	s.Handle("POST /api/v1/login/passkey", Public, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			Challenge string `json:"challenge"`
		}
		if err := decodeOptional(w, r, &req); err != nil {
			return err
		}
		opts, id, err := s.svc.BeginPasskeyLogin(req.Challenge, rpOf(r), c.Client)
		if err != nil {
			return err
		}
		return OK(w, map[string]any{"ceremony": id, "options": opts})
	})
	s.Handle("POST /api/v1/login/passkey/finish", Public, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			Ceremony    string          `json:"ceremony"`
			Credential  json.RawMessage `json:"credential"`
			TrustDevice bool            `json:"trust_device"`
			DeviceName  string          `json:"device_name"`
		}
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		if req.Ceremony == "" || len(req.Credential) == 0 {
			return errBad("ceremony, credential: both are required")
		}
		res, err := s.svc.FinishPasskeyLogin(req.Ceremony, req.Credential, req.TrustDevice, req.DeviceName, rpOf(r), c.Client)
		if err != nil {
			return err
		}
		s.setLoginCookies(w, r, res)
		return OK(w, loginResponse{Status: res.Status})
	})
}

// rpOf is the relying party of a request: the name the browser reached
// the device by (the Host check has vetted it) and the page's origin. An
// address has none: a passkey cannot be bound to one.
func rpOf(r *http.Request) auth.RP {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil || host == "" {
		return auth.RP{}
	}
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return auth.RP{ID: host, Origin: scheme + "://" + r.Host}
}

// decodeOptional is Decode for a body that may be left out.
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	return Decode(w, r, v)
}
