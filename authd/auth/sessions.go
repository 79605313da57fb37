package auth

import (
	"time"

	"github.com/rknas/firmware/authd/session"
	"github.com/rknas/firmware/authd/store"
)

// SessionView is a signed-in session as its owner and admins see it.
type SessionView struct {
	ID        string    `json:"id"`
	Created   time.Time `json:"created"`
	LastSeen  time.Time `json:"last_seen"`
	Address   string    `json:"address"`
	Browser   string    `json:"browser"`
	UserAgent string    `json:"user_agent"`
	// Restricted says the session may only change the password or enrol
	// (password_change_required, enroll_required); "" for a full one.
	Restricted string `json:"restricted,omitempty"`
	Current    bool   `json:"current"`
}

// SessionsOf lists user's live sessions, newest first; current marks the
// caller's own.
func (s *Service) SessionsOf(user, currentID string) []SessionView {
	out := []SessionView{}
	for _, ss := range s.sessions.List(user) {
		v := SessionView{ID: ss.ID, Created: ss.Created.UTC(), LastSeen: ss.LastSeen.UTC(),
			Address: ss.Client, Browser: deviceName("", ss.UserAgent), UserAgent: ss.UserAgent, Current: ss.ID == currentID}
		switch ss.Kind {
		case session.PasswordChange:
			v.Restricted = "password_change_required"
		case session.Enroll:
			v.Restricted = "enroll_required"
		}
		out = append(out, v)
	}
	return out
}

// EndSession ends one of user's sessions by its ID. actor ends it: the
// account itself, or an admin; ending an admin's session from another
// account needs a step-up, like every change to an admin account.
func (s *Service) EndSession(actor Actor, user, id string, c Client) error {
	if actor.Name != user {
		u, err := s.user(user)
		if err != nil {
			return asErr(err)
		}
		if err := guardAdmin(actor, u); err != nil {
			return err
		}
	}
	if !s.sessions.End(user, id) {
		return newErr(CodeNotFound, "no such session: it may have ended already")
	}
	s.audit(store.AuditEntry{Event: "session_ended", User: user, Actor: actor.Name, Client: c.String(), Detail: id})
	return nil
}
