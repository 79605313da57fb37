package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/tlscert"
)

type certificateView struct {
	Served tlscert.Info `json:"served"`
	Device tlscert.Info `json:"device"`
}

// attachCertificates registers the HTTPS certificate routes. Every change
// needs a step-up: whoever controls the certificate can impersonate the
// device to its owner.
func (s *Server) attachCertificates(sys *System) {
	need := func(h HandlerFunc) HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request, c Caller) error {
			if sys.TLS == nil {
				return &auth.Error{Code: auth.CodeConflict, Message: "authd does not manage its certificate here: it serves plain HTTP (-tls off) or the files given by -tls-cert"}
			}
			return h(w, r, c)
		}
	}
	view := func(w http.ResponseWriter) error {
		return OK(w, certificateView{Served: sys.TLS.Info(), Device: sys.TLS.Device()})
	}
	s.Handle("GET /api/v1/system/certificate", Admin, need(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		return view(w)
	}))
	s.Handle("POST /api/v1/system/certificate/regenerate", AdminStepUp, need(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		info, err := sys.TLS.Regenerate()
		if err != nil {
			return err
		}
		s.svc.Audit(auditEntry("certificate_regenerated", &c, "SHA-256 "+info.Fingerprint))
		return view(w)
	}))
	s.Handle("PUT /api/v1/system/certificate", AdminStepUp, need(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			ChainPEM string `json:"chain_pem"`
			KeyPEM   string `json:"key_pem"`
		}
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		if strings.TrimSpace(req.ChainPEM) == "" || strings.TrimSpace(req.KeyPEM) == "" {
			return errBad("chain_pem, key_pem: both are required")
		}
		info, err := sys.TLS.Import([]byte(req.ChainPEM), []byte(req.KeyPEM))
		if errors.Is(err, tlscert.ErrInvalid) {
			return errBad("%s", strings.TrimPrefix(err.Error(), tlscert.ErrInvalid.Error()+": "))
		}
		if err != nil {
			return err
		}
		s.svc.Audit(auditEntry("certificate_imported", &c, "SHA-256 "+info.Fingerprint+"; "+strings.Join(info.Names, ",")))
		return view(w)
	}))
	s.Handle("DELETE /api/v1/system/certificate", AdminStepUp, need(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		info, err := sys.TLS.UseDevice()
		if err != nil {
			return err
		}
		s.svc.Audit(auditEntry("certificate_removed", &c, "back to the device certificate, SHA-256 "+info.Fingerprint))
		return view(w)
	}))
}
