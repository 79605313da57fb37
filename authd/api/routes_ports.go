package api

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/portconf"
)

// PortSettings are the ports served on and their changes; portconf.Manager
// implements it.
type PortSettings interface {
	Current() (portconf.Ports, *portconf.Pending)
	Apply(p portconf.Ports) (portconf.Pending, error)
	Confirm(id string, viaPort int) error
}

type portsView struct {
	portconf.Ports
	Pending *portconf.Pending `json:"pending"`
}

// attachPorts registers the port routes. A change opens the new ports
// beside the old ones and is kept only when confirmed through the new
// HTTPS port, so a wrong port cannot lock the owner out.
func (s *Server) attachPorts(sys *System) {
	need := func(h HandlerFunc) HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request, c Caller) error {
			if sys.Ports == nil {
				return &auth.Error{Code: auth.CodeConflict, Message: "authd does not manage its ports here: it serves plain HTTP (-tls off)"}
			}
			return h(w, r, c)
		}
	}
	s.Handle("GET /api/v1/settings/ports", Admin, need(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		cur, pend := sys.Ports.Current()
		return OK(w, portsView{Ports: cur, Pending: pend})
	}))
	s.Handle("PUT /api/v1/settings/ports", AdminStepUp, need(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req portconf.Ports
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		pend, err := sys.Ports.Apply(req)
		switch {
		case errors.Is(err, portconf.ErrInvalid):
			return errBad("%s", strings.TrimPrefix(err.Error(), portconf.ErrInvalid.Error()+": "))
		case errors.Is(err, portconf.ErrInUse):
			return &auth.Error{Code: auth.CodeConflict, Message: "port " + strings.TrimPrefix(err.Error(), portconf.ErrInUse.Error()+": ") + ": another program listens there"}
		case err != nil:
			return err
		}
		s.svc.Audit(auditEntry("ports_changed", &c, "pending confirmation "+pend.ID+": https "+strconv.Itoa(req.HTTPS)+", http "+strconv.Itoa(req.HTTP)))
		return OK(w, map[string]any{"id": pend.ID, "deadline": pend.Deadline.UTC(), "confirm_within_seconds": int(time.Until(pend.Deadline) / time.Second),
			"message": "the new ports are open beside the old ones; confirm with POST /api/v1/settings/ports/confirm {\"id\": ...} " +
				"through the new HTTPS port " + strconv.Itoa(req.HTTPS) + " before the deadline, or they are closed again"})
	}))
	s.Handle("POST /api/v1/settings/ports/confirm", Admin, need(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			ID string `json:"id"`
		}
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		err := sys.Ports.Confirm(req.ID, localPort(r))
		switch {
		case errors.Is(err, portconf.ErrNoPending):
			return &auth.Error{Code: auth.CodeConflict, Message: "no pending port change with that id (it may have been closed at its deadline)"}
		case errors.Is(err, portconf.ErrWrongPort):
			return &auth.Error{Code: auth.CodeConflict, Message: "confirm through the new HTTPS port: reaching it is what the confirmation proves (" +
				strings.TrimPrefix(err.Error(), portconf.ErrWrongPort.Error()+" ") + ")"}
		case err != nil:
			return err
		}
		s.svc.Audit(auditEntry("ports_confirmed", &c, req.ID))
		return OK(w, map[string]string{"status": "ok"})
	}))
}

// localPort is the port the request came in on.
func localPort(r *http.Request) int {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if t, ok := a.(*net.TCPAddr); ok {
			return t.Port
		}
	}
	return 0
}
