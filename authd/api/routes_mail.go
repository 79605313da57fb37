package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/mail"
)

// AttachMail registers the SMTP settings, security email and emergency code
// routes.
func (s *Server) AttachMail(m *mail.Mailer) {
	s.Handle("POST /api/v1/login/emergency", Public, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			Challenge string `json:"challenge"`
		}
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		if req.Challenge == "" {
			return errBad("challenge: required")
		}
		to, err := s.svc.SendEmergencyCode(r.Context(), req.Challenge, c.Client)
		if err != nil {
			return err
		}
		return OK(w, map[string]any{"status": "sent", "sent_to": to, "valid_seconds": int(auth.EmergencyValidity / time.Second)})
	})
	s.Handle("PUT /api/v1/me/security-email", FullSession, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			Email    string `json:"email"`
			Password string `json:"password"`
		}
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		to, err := s.svc.SetSecurityEmail(r.Context(), c.Session, req.Password, req.Email, c.Client)
		if err != nil {
			return err
		}
		return OK(w, map[string]any{"status": "verification_sent", "sent_to": to})
	})
	s.Handle("POST /api/v1/me/security-email/verify", FullSession, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			Code string `json:"code"`
		}
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		addr, err := s.svc.VerifySecurityEmail(c.User.Name, req.Code, c.Client)
		if err != nil {
			return err
		}
		return OK(w, map[string]any{"status": "ok", "security_email": addr})
	})
	s.Handle("GET /api/v1/settings/smtp", Admin, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		red, configured := m.Settings().Redacted()
		return OK(w, map[string]any{"configured": configured, "settings": red})
	})
	s.Handle("PUT /api/v1/settings/smtp", AdminStepUp, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		raw, err := ReadBody(w, r)
		if err != nil {
			return err
		}
		set, err := mail.DecodeSettings(raw)
		if err != nil {
			return mailSettingsError(err)
		}
		red, err := m.UpdateSettings(set)
		if err != nil {
			var fe *mail.FieldError
			if errors.As(err, &fe) {
				return mailSettingsError(err)
			}
			return err // storing failed: a 500, logged
		}
		s.svc.Audit(auditEntry("smtp_settings_changed", &c, red.Host))
		return OK(w, map[string]any{"configured": true, "settings": red})
	})
	s.Handle("POST /api/v1/settings/smtp/test", Admin, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			To string `json:"to"`
		}
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		if err := mail.ValidateAddress(req.To); err != nil {
			return errBad("to: %v", err)
		}
		ctx, cancel := context.WithTimeout(r.Context(), 45*time.Second)
		defer cancel()
		reply, err := m.Test(ctx, req.To)
		result := "ok"
		if err != nil {
			result = "failed: " + string(mail.CodeOf(err))
		}
		s.svc.Audit(auditEntry("smtp_test", &c, result))
		if err != nil {
			if mail.CodeOf(err) == mail.CodeInvalidMessage {
				return errBad("to: %v", err)
			}
			return mailSendError(err)
		}
		return OK(w, map[string]any{"status": "sent", "server_reply": reply})
	})
	s.Handle("GET /api/v1/settings/smtp/outbox", Admin, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		return OK(w, map[string]any{"entries": m.Outbox().List()})
	})
}

func mailSettingsError(err error) error {
	var fe *mail.FieldError
	if errors.As(err, &fe) {
		return errBad("%s: %s", fe.Field, fe.Problem)
	}
	return errBad("%v", err)
}

// mailSendError reports a failed send with the mail package's stable
// category in the message.
func mailSendError(err error) error {
	msg := string(mail.CodeOf(err)) + ": "
	var se *mail.SendError
	if errors.As(err, &se) {
		msg += se.Message()
	} else {
		msg += err.Error()
	}
	return &auth.Error{Code: auth.CodeMailFailed, Message: msg}
}
