package api

import (
	"net/http"
	"net/netip"

	"github.com/rknas/firmware/authd/auth"
)

// securityRoutes are the admin's view of the automatic blocking: the
// running bans, lifting one, and the allow-list of addresses never blocked.
func (s *Server) securityRoutes() {
	s.Handle("GET /api/v1/security/blocks", Admin, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		blocks, err := s.svc.Blocks()
		if err != nil {
			return err
		}
		if blocks == nil {
			blocks = []auth.Block{}
		}
		return OK(w, map[string]any{"blocks": blocks, "your_address": c.Client.Key()})
	})
	s.Handle("DELETE /api/v1/security/blocks", Admin, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		q := r.URL.Query()
		kind, key := q.Get("kind"), q.Get("key")
		if kind == "" || key == "" {
			return &auth.Error{Code: auth.CodeBadRequest, Message: "kind and key: both required as query parameters, e.g. ?kind=client&key=192.0.2.7"}
		}
		if err := s.svc.LiftBlock(r.Context(), s.svc.Actor(c.Session), kind, key, c.Client); err != nil {
			return err
		}
		return OK(w, map[string]string{"status": "ok"})
	})
	s.Handle("GET /api/v1/settings/security", Admin, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		return OK(w, s.securitySettings(s.svc.AllowList(), &c))
	})
	s.Handle("PUT /api/v1/settings/security", AdminStepUp, func(w http.ResponseWriter, r *http.Request, c Caller) error {
		var req struct {
			AllowList []string `json:"allow_list"`
		}
		if err := Decode(w, r, &req); err != nil {
			return err
		}
		if req.AllowList == nil {
			return &auth.Error{Code: auth.CodeBadRequest, Message: "allow_list: required (an empty list allows no address)"}
		}
		list, err := s.svc.SetAllowList(s.svc.Actor(c.Session), req.AllowList, c.Client)
		if err != nil {
			return err
		}
		return OK(w, s.securitySettings(list, &c))
	})
}

type securitySettings struct {
	AllowList []string `json:"allow_list"`
	// YourAddress is the caller's address, and YourAddressAllowed whether
	// the list holds it, so an admin can add the network they are on.
	YourAddress        string `json:"your_address"`
	YourAddressAllowed bool   `json:"your_address_allowed"`
}

func (s *Server) securitySettings(list []netip.Prefix, c *Caller) securitySettings {
	out := securitySettings{AllowList: make([]string, len(list)), YourAddress: c.Client.Addr.Unmap().String()}
	for i, p := range list {
		out.AllowList[i] = p.String()
		if p.Contains(c.Client.Addr.Unmap()) {
			out.YourAddressAllowed = true
		}
	}
	return out
}
