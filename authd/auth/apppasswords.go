package auth

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/rknas/firmware/authd/session"
	"github.com/rknas/firmware/authd/store"
)

// AppPasswordPrefix starts every app password, so that one pasted in the
// wrong place (a log, a chat) is recognisable.
const AppPasswordPrefix = "rknas_ap_"

// MaxAppPasswords bounds an account's app passwords.
const MaxAppPasswords = 20

// appPasswordTouch is how stale an app password's last use may get before
// a request records it again: a program polling every second must not
// write to the flash every second.
const appPasswordTouch = time.Minute

// AppPasswordView is an app password as listed: never its token.
type AppPasswordView struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Scopes   []string  `json:"scopes"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
	LastAddr string    `json:"last_address,omitempty"`
}

func appPasswordView(a store.AppPassword) AppPasswordView {
	return AppPasswordView{ID: a.ID, Name: a.Name, Scopes: slices.Clone(a.Scopes), Created: a.Created, LastUsed: a.LastUsed, LastAddr: a.LastAddr}
}

// NewAppPassword is a request for an app password.
type NewAppPassword struct {
	Name   string
	Scopes []string
	// Password is the account's password; empty when the session stepped
	// up within the last five minutes, which stands in for it.
	Password string
}

// CreateAppPassword makes an app password for the session's account and
// returns it with its token, which is shown this once.
func (s *Service) CreateAppPassword(ctx context.Context, sess session.Session, n NewAppPassword, c Client) (AppPasswordView, string, error) {
	u, err := s.User(sess.User)
	if err != nil {
		return AppPasswordView{}, "", err
	}
	name := strings.TrimSpace(n.Name)
	if name == "" || len([]rune(name)) > 64 || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return AppPasswordView{}, "", errBadRequest("name: 1 to 64 characters, no control characters")
	}
	scopes, err := checkScopes(n.Scopes, u)
	if err != nil {
		return AppPasswordView{}, "", err
	}
	if n.Password != "" {
		if err := s.checkPassword(ctx, u, n.Password, c); err != nil {
			return AppPasswordView{}, "", err
		}
	} else if !s.Actor(sess).SteppedUp {
		return AppPasswordView{}, "", newErr(CodeInvalidCredentials, "password: give the account's password (or step up first)")
	}
	token, err := session.NewToken()
	if err != nil {
		return AppPasswordView{}, "", errInternal(err)
	}
	token = AppPasswordPrefix + token
	id, err := session.NewToken()
	if err != nil {
		return AppPasswordView{}, "", errInternal(err)
	}
	a := store.AppPassword{TokenHash: session.HashToken(token), ID: id[:12], User: u.Name, Name: name, Scopes: scopes, Created: s.clock.Now().UTC(), Role: u.Role}
	err = s.store.Update(func(tx *store.Tx) error {
		have, err := tx.AppPasswords(u.Name)
		if err != nil {
			return err
		}
		if len(have) >= MaxAppPasswords {
			return newErr(CodeConflict, "the account has 20 app passwords already: revoke one first")
		}
		if err := tx.PutAppPassword(a); err != nil {
			return err
		}
		return tx.AppendAudit(store.AuditEntry{Time: a.Created, Event: "app_password_created", User: u.Name, Client: c.String(),
			Detail: name + " (" + strings.Join(scopes, ",") + ")"})
	})
	if err != nil {
		return AppPasswordView{}, "", asErr(err)
	}
	return appPasswordView(a), token, nil
}

// checkScopes validates and orders scopes: read, and admin for admins.
func checkScopes(scopes []string, u store.User) ([]string, error) {
	if len(scopes) == 0 {
		return nil, errBadRequest("scopes: at least one of read, admin")
	}
	var out []string
	for _, sc := range scopes {
		switch {
		case sc == store.ScopeRead:
		case sc == store.ScopeAdmin && u.IsAdmin():
		case sc == store.ScopeAdmin:
			return nil, errBadRequest("scopes: admin is for administrator accounts")
		default:
			return nil, errBadRequest("scopes: %q is neither read nor admin", sc)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	slices.Sort(out)
	return out, nil
}

// AppPasswords lists user's app passwords, oldest first.
func (s *Service) AppPasswords(user string) ([]AppPasswordView, error) {
	out := []AppPasswordView{}
	err := s.store.View(func(tx *store.Tx) error {
		list, err := tx.AppPasswords(user)
		for _, a := range list {
			out = append(out, appPasswordView(a))
		}
		return err
	})
	if err != nil {
		return nil, errInternal(err)
	}
	return out, nil
}

// RevokeAppPassword deletes one of user's app passwords by its ID.
func (s *Service) RevokeAppPassword(user, id string, c Client) error {
	found := false
	err := s.store.Update(func(tx *store.Tx) error {
		list, err := tx.AppPasswords(user)
		if err != nil {
			return err
		}
		for _, a := range list {
			if a.ID == id {
				found = true
				if err := tx.DeleteAppPassword(a.TokenHash); err != nil {
					return err
				}
				return tx.AppendAudit(store.AuditEntry{Time: s.clock.Now(), Event: "app_password_revoked", User: user, Client: c.String(), Detail: a.Name})
			}
		}
		return nil
	})
	if err != nil {
		return errInternal(err)
	}
	if !found {
		return newErr(CodeNotFound, "no such app password")
	}
	return nil
}

// deleteAppPasswords deletes every app password of user within tx.
func deleteAppPasswords(tx *store.Tx, user string, now time.Time, c Client, why string) error {
	n, err := tx.DeleteAppPasswords(user)
	if err != nil || n == 0 {
		return err
	}
	return tx.AppendAudit(store.AuditEntry{Time: now, Event: "app_passwords_revoked", User: user, Client: c.String(), Detail: why})
}

// AuthenticateAppPassword returns the app password of token and its
// account. A token that is not one counts as a failure of the client, like
// a wrong password: a client guessing tokens is banned as one guessing
// passwords; a banned client is refused even a right token.
func (s *Service) AuthenticateAppPassword(token string, c Client) (store.AppPassword, store.User, error) {
	cl := s.client(c)
	if wait := cl.r.Check(cl.key); wait > 0 {
		return store.AppPassword{}, store.User{}, errLocked(cl.kind, wait)
	}
	var a store.AppPassword
	var u store.User
	err := s.store.View(func(tx *store.Tx) error {
		var err error
		if a, err = tx.AppPassword(session.HashToken(token)); err != nil {
			return err
		}
		u, err = tx.User(a.User)
		return err
	})
	if err != nil || u.Disabled || !strings.HasPrefix(token, AppPasswordPrefix) {
		g, lockErr := s.begin(c, cl)
		if lockErr != nil {
			return store.AppPassword{}, store.User{}, lockErr
		}
		g.fail()
		s.audit(store.AuditEntry{Event: "app_password_failed", Client: c.String()})
		return store.AppPassword{}, store.User{}, newErr(CodeUnauthorized, "the app password is wrong or was revoked")
	}
	now := s.clock.Now().UTC()
	if newAddr := a.LastAddr != c.String(); newAddr || now.Sub(a.LastUsed) >= appPasswordTouch {
		a.LastUsed, a.LastAddr = now, c.String()
		touched := a
		if err := s.store.Batch(func(tx *store.Tx) error {
			// Revoked meanwhile: do not bring it back.
			if _, err := tx.AppPassword(touched.TokenHash); err != nil {
				return nil
			}
			if newAddr {
				// In the audit log at its first use from each address,
				// not at every request of a program that polls.
				if err := tx.AppendAudit(store.AuditEntry{Time: now, Event: "app_password_used", User: touched.User, Client: c.String(), Detail: touched.Name}); err != nil {
					return err
				}
			}
			return tx.PutAppPassword(touched)
		}); err != nil {
			s.log.Error("recording an app password's use failed", "err", err)
		}
	}
	return a, u, nil
}
