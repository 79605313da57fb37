package auth

import (
	"errors"
	"strings"
	"time"

	"github.com/rknas/firmware/authd/session"
	"github.com/rknas/firmware/authd/store"
)

// MaxDevicesPerUser bounds trusted devices; trusting one more forgets the
// least recently used.
const MaxDevicesPerUser = 20

// trustedDevice returns the device of token if it is live and belongs to u.
func (s *Service) trustedDevice(u store.User, exists bool, token string) (store.Device, bool) {
	if !exists || token == "" || len(token) > 128 {
		return store.Device{}, false
	}
	var d store.Device
	err := s.store.View(func(tx *store.Tx) error {
		var err error
		d, err = tx.Device(session.HashToken(token))
		return err
	})
	if err != nil || d.User != u.Name || !s.clock.Now().Before(d.Expires) || !u.HasSecondFactor() {
		return store.Device{}, false
	}
	return d, true
}

func (s *Service) touchDevice(d store.Device, c Client) {
	err := s.store.Update(func(tx *store.Tx) error {
		cur, err := tx.Device(d.TokenHash)
		if err != nil {
			return err
		}
		cur.LastUsed, cur.LastAddr = s.clock.Now(), c.String()
		return tx.PutDevice(cur)
	})
	if err != nil {
		s.log.Warn("trusted device update failed", "user", d.User, "err", err)
	}
	s.audit(store.AuditEntry{Event: "trusted_device_used", User: d.User, Client: c.String(), Detail: d.Name})
}

// deviceName picks a readable name: the one given, else a short form of the
// User-Agent.
func deviceName(given, userAgent string) string {
	if given = strings.TrimSpace(given); given != "" {
		return given
	}
	ua := userAgent
	for _, b := range []struct{ needle, name string }{
		{"Edg/", "Edge"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"}, {"Chromium/", "Chromium"}, {"Safari/", "Safari"}, {"curl/", "curl"},
	} {
		if strings.Contains(ua, b.needle) {
			for _, o := range []string{"Android", "iPhone", "iPad", "Windows", "Mac OS X", "Linux"} {
				if strings.Contains(ua, o) {
					return b.name + " on " + strings.TrimSuffix(o, " OS X")
				}
			}
			return b.name
		}
	}
	if ua == "" {
		return "unnamed device"
	}
	if len(ua) > 40 {
		ua = ua[:40]
	}
	return ua
}

// trustDevice creates a trusted device for u and returns its token.
func (s *Service) trustDevice(u store.User, name string, c Client) (string, error) {
	token, err := session.NewToken()
	if err != nil {
		return "", errInternal(err)
	}
	id, err := session.NewToken()
	if err != nil {
		return "", errInternal(err)
	}
	now := s.clock.Now()
	d := store.Device{TokenHash: session.HashToken(token), ID: id[:12], User: u.Name, Name: deviceName(name, c.UserAgent),
		Created: now, LastUsed: now, LastAddr: c.String(), Expires: now.Add(s.cfg.TrustedDeviceTTL)}
	err = s.store.Update(func(tx *store.Tx) error {
		devs, err := tx.Devices(u.Name)
		if err != nil {
			return err
		}
		for len(devs) >= MaxDevicesPerUser {
			oldest := 0
			for i, x := range devs {
				if x.LastUsed.Before(devs[oldest].LastUsed) {
					oldest = i
				}
			}
			if err := tx.DeleteDevice(devs[oldest].TokenHash); err != nil {
				return err
			}
			devs = append(devs[:oldest], devs[oldest+1:]...)
		}
		if err := tx.PutDevice(d); err != nil {
			return err
		}
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: "trusted_device_added", User: u.Name, Client: c.String(), Detail: d.Name})
	})
	if err != nil {
		return "", errInternal(err)
	}
	s.notify(u, "trusted_device_added", map[string]string{"client": c.String(), "device": d.Name})
	return token, nil
}

// DeviceView is a trusted device as listed to its owner.
type DeviceView struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
	LastAddr string    `json:"last_address"`
	Expires  time.Time `json:"expires"`
	Current  bool      `json:"current"`
}

// Devices lists user's live trusted devices; currentToken marks the caller's.
func (s *Service) Devices(user, currentToken string) ([]DeviceView, error) {
	cur := ""
	if currentToken != "" {
		cur = session.HashToken(currentToken)
	}
	now := s.clock.Now()
	out := []DeviceView{}
	err := s.store.View(func(tx *store.Tx) error {
		devs, err := tx.Devices(user)
		for _, d := range devs {
			if now.Before(d.Expires) {
				out = append(out, DeviceView{ID: d.ID, Name: d.Name, Created: d.Created, LastUsed: d.LastUsed, LastAddr: d.LastAddr, Expires: d.Expires, Current: d.TokenHash == cur})
			}
		}
		return err
	})
	if err != nil {
		return nil, errInternal(err)
	}
	return out, nil
}

// RevokeDevice forgets one of user's trusted devices by its ID.
func (s *Service) RevokeDevice(user, id string, c Client) error {
	found := false
	err := s.store.Update(func(tx *store.Tx) error {
		devs, err := tx.Devices(user)
		if err != nil {
			return err
		}
		for _, d := range devs {
			if d.ID == id {
				found = true
				if err := tx.DeleteDevice(d.TokenHash); err != nil {
					return err
				}
				return tx.AppendAudit(store.AuditEntry{Time: s.clock.Now(), Event: "trusted_device_revoked", User: user, Client: c.String(), Detail: d.Name})
			}
		}
		return nil
	})
	if err != nil {
		return errInternal(err)
	}
	if !found {
		return newErr(CodeNotFound, "no such trusted device")
	}
	return nil
}

// RevokeDevices forgets all of user's trusted devices.
func (s *Service) RevokeDevices(user string, c Client) (int, error) {
	n := 0
	err := s.store.Update(func(tx *store.Tx) error {
		var err error
		if n, err = tx.DeleteDevices(user); err != nil {
			return err
		}
		return tx.AppendAudit(store.AuditEntry{Time: s.clock.Now(), Event: "trusted_devices_revoked", User: user, Client: c.String()})
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, errInternal(err)
	}
	return n, nil
}
