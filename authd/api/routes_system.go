package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/button"
	"github.com/rknas/firmware/authd/netconf"
	"github.com/rknas/firmware/authd/timesync"
	"github.com/rknas/firmware/authd/tlscert"
	"github.com/rknas/firmware/board"
)

// System holds the parts of the device the API reports on and controls
// besides the accounts. Nil parts answer 503 with a clear message.
type System struct {
	Version string
	Started time.Time
	Board   board.Profile
	Time    *timesync.Service
	Network *netconf.Manager
	// Button reports the RESET button watcher's state.
	Button func() button.Status
	// LastReset reports the last physical reset (nil if none).
	LastReset func() any
	// TLS is the certificate store HTTPS is served with; nil when authd
	// serves plain HTTP or a certificate given by -tls-cert.
	TLS Certificates
	// Ports are the ports served on; nil when authd serves plain HTTP.
	Ports PortSettings
}

// Certificates is the served certificate and the changes an admin makes
// to it; tlscert.Store implements it.
type Certificates interface {
	Info() tlscert.Info
	Device() tlscert.Info
	Regenerate() (tlscert.Info, error)
	Import(chainPEM, keyPEM []byte) (tlscert.Info, error)
	UseDevice() (tlscert.Info, error)
}

// AttachSystem registers the time, network and system routes.
func (s *Server) AttachSystem(sys *System) {
	s.sys = sys
	s.Handle("GET /api/v1/system/status", Admin, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		out := map[string]any{
			"board":          sys.Board.Name,
			"board_model":    sys.Board.Model,
			"board_reason":   sys.Board.Reason,
			"version":        sys.Version,
			"started":        sys.Started.UTC(),
			"uptime_seconds": int64(time.Since(sys.Started) / time.Second),
		}
		if sys.Button != nil {
			out["button"] = sys.Button()
		} else {
			out["button"] = map[string]any{"source": "none", "available": false, "error": "the board has no button authd can watch"}
		}
		leds := []string{}
		for _, l := range sys.Board.LEDs {
			leds = append(leds, l.Role)
		}
		out["leds"] = leds
		if sys.LastReset != nil {
			out["last_reset"] = sys.LastReset()
		}
		if sys.Time != nil {
			out["clock"] = sys.Time.Status()
		}
		if sys.TLS != nil {
			out["certificate"] = sys.TLS.Info()
		}
		return OK(w, out)
	})
	s.attachCertificates(sys)
	s.attachPorts(sys)

	needTime := func(h HandlerFunc) HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request, c Caller) error {
			if sys.Time == nil {
				return &auth.Error{Code: auth.CodeBusy, Message: "time keeping is not running on this device"}
			}
			return h(w, r, c)
		}
	}
	s.Handle("GET /api/v1/time/status", Public, needTime(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		st := sys.Time.Status()
		if !s.callerIsAdmin(r) {
			// Anyone may ask whether the clock can be trusted (the login
			// page warns); the details (servers, errors naming the
			// resolver) are for admins.
			return OK(w, map[string]any{"state": st.State})
		}
		return OK(w, st)
	}))
	s.Handle("POST /api/v1/time/sync", Admin, needTime(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
		defer cancel()
		st, err := sys.Time.SyncNow(ctx)
		res := map[string]any{"ok": err == nil, "status": st}
		if err != nil {
			res["error"] = err.Error()
		}
		s.svc.Audit(auditEntry("time_sync", &c, boolDetail(err)))
		return OK(w, res)
	}))
	// Setting the clock, or choosing who sets it, needs a step-up: a wrong
	// clock makes every authenticator code fail, and a stolen session or
	// an app password must not be able to lock the owners out with it.
	s.Handle("PUT /api/v1/time", AdminStepUp, needTime(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			Time time.Time `json:"time"`
		}
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		switch err := sys.Time.SetManual(req.Time); {
		case errors.Is(err, timesync.ErrSynchronized):
			return &auth.Error{Code: auth.CodeConflict, Message: "the clock is synchronized by NTP; turn NTP off to set the time by hand"}
		case errors.Is(err, timesync.ErrZeroTime), errors.Is(err, timesync.ErrBeforeBuild):
			return errBad("time: %v", err)
		case err != nil:
			return err
		}
		s.svc.Audit(auditEntry("time_set_manually", &c, req.Time.UTC().Format(time.RFC3339)))
		return OK(w, sys.Time.Status())
	}))
	type timeSettings struct {
		NTPEnabled bool     `json:"ntp_enabled"`
		NTPServers []string `json:"ntp_servers"`
	}
	s.Handle("GET /api/v1/settings/time", Admin, needTime(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		set := sys.Time.Settings()
		return OK(w, timeSettings{NTPEnabled: set.Enabled, NTPServers: append([]string{}, set.Servers...)})
	}))
	s.Handle("PUT /api/v1/settings/time", AdminStepUp, needTime(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req timeSettings
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		set := timesync.Settings{Enabled: req.NTPEnabled, Servers: req.NTPServers}
		if err := set.Validate(); err != nil {
			return errBad("ntp_servers: %v", err)
		}
		if err := sys.Time.SetSettings(set); err != nil {
			return err
		}
		s.svc.Audit(auditEntry("time_settings_changed", &c, strings.Join(set.Servers, ",")))
		set = sys.Time.Settings()
		return OK(w, timeSettings{NTPEnabled: set.Enabled, NTPServers: append([]string{}, set.Servers...)})
	}))

	needNet := func(h HandlerFunc) HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request, c Caller) error {
			if sys.Network == nil {
				return &auth.Error{Code: auth.CodeBusy, Message: "network configuration is not managed by authd on this device"}
			}
			return h(w, r, c)
		}
	}
	s.Handle("GET /api/v1/settings/network", Admin, needNet(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		st, err := sys.Network.Status(r.Context())
		if err != nil {
			return err
		}
		return OK(w, map[string]any{"config": sys.Network.Current(), "confirmed": sys.Network.Confirmed(), "status": st})
	}))
	s.Handle("PUT /api/v1/settings/network", AdminStepUp, needNet(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		raw, err := ReadBody(w, r)
		if err != nil {
			return err
		}
		cfg, err := netconf.Parse(raw)
		if err != nil {
			return errBad("%s", strings.TrimPrefix(err.Error(), "netconf: "))
		}
		id, deadline, err := sys.Network.Apply(r.Context(), cfg)
		if errors.Is(err, netconf.ErrInvalid) {
			return errBad("%s", strings.TrimPrefix(err.Error(), "netconf: "))
		}
		if err != nil {
			return err
		}
		s.svc.Audit(auditEntry("network_changed", &c, "pending confirmation "+id))
		return OK(w, map[string]any{"id": id, "deadline": deadline.UTC(), "confirm_within_seconds": int(time.Until(deadline) / time.Second),
			"message": "applied; confirm with POST /api/v1/settings/network/confirm {\"id\": ...} before the deadline or it is rolled back"})
	}))
	s.Handle("POST /api/v1/settings/network/confirm", Admin, needNet(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			ID string `json:"id"`
		}
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		err := sys.Network.Confirm(req.ID)
		switch {
		case errors.Is(err, netconf.ErrNoPending):
			return &auth.Error{Code: auth.CodeConflict, Message: "no pending network change with that id"}
		case errors.Is(err, netconf.ErrExpired):
			return &auth.Error{Code: auth.CodeConflict, Message: "the change was not confirmed in time and has been rolled back"}
		case err != nil:
			return err
		}
		s.svc.Audit(auditEntry("network_confirmed", &c, req.ID))
		return OK(w, map[string]string{"status": "ok"})
	}))
}

func boolDetail(err error) string {
	if err != nil {
		return "failed: " + err.Error()
	}
	return "ok"
}
