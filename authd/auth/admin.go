package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/session"
	"github.com/rknas/firmware/authd/store"
)

// UserView is an account as shown by the API, without secrets.
type UserView struct {
	Name               string   `json:"name"`
	Role               string   `json:"role"`
	Groups             []string `json:"groups"`
	Disabled           bool     `json:"disabled"`
	MustChangePassword bool     `json:"must_change_password"`
	TwoFactor          bool     `json:"two_factor"`
	TwoFactorRequired  bool     `json:"two_factor_required"`
	// Authenticator is whether a TOTP app is set up, and Passkeys how
	// many passkeys there are: either is two-factor authentication.
	Authenticator     bool      `json:"authenticator"`
	Passkeys          int       `json:"passkeys"`
	RecoveryCodesLeft int       `json:"recovery_codes_left"`
	SecurityEmail     string    `json:"security_email,omitempty"`
	SecurityEmailOK   bool      `json:"security_email_verified"`
	Created           time.Time `json:"created"`
	PasswordChanged   time.Time `json:"password_changed"`
	Sessions          int       `json:"sessions"`
}

// View returns the API view of u.
func (s *Service) View(u store.User) UserView {
	policy, _ := s.policy()
	return s.view(u, policy)
}

// view is View with the policy already read, so listing N accounts reads
// it once.
func (s *Service) view(u store.User, policy store.Policy) UserView {
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	return UserView{Name: u.Name, Role: u.Role, Groups: groups, Disabled: u.Disabled, MustChangePassword: u.MustChangePassword,
		TwoFactor: u.HasSecondFactor(), TwoFactorRequired: policy.Requires(u), RecoveryCodesLeft: len(u.TOTP.RecoveryCodes),
		Authenticator: u.TOTP.Enabled, Passkeys: len(u.Passkeys),
		SecurityEmail: u.SecurityEmail, SecurityEmailOK: u.SecurityEmailVerified, Created: u.Created,
		PasswordChanged: u.PasswordChanged, Sessions: s.sessions.Count(u.Name)}
}

// Users lists all accounts.
func (s *Service) Users() ([]UserView, error) {
	var users []store.User
	var policy store.Policy
	err := s.store.View(func(tx *store.Tx) error {
		var err error
		if users, err = tx.Users(); err != nil {
			return err
		}
		policy, err = tx.Policy()
		return err
	})
	if err != nil {
		return nil, errInternal(err)
	}
	out := make([]UserView, 0, len(users))
	for _, u := range users {
		out = append(out, s.view(u, policy))
	}
	return out, nil
}

// NewUser is an account to create.
type NewUser struct {
	Name     string   `json:"name"`
	Password string   `json:"password"`
	Role     string   `json:"role"`
	Groups   []string `json:"groups"`
	// MustChangePassword defaults to true: the person should choose their
	// own password at the first login.
	MustChangePassword *bool `json:"must_change_password"`
}

func checkRole(role string) error {
	if role != store.RoleAdmin && role != store.RoleUser {
		return errBadRequest("role: %q is not admin or user", role)
	}
	return nil
}

func checkGroups(tx *store.Tx, groups []string) error {
	if len(groups) > 64 {
		return errBadRequest("groups: at most 64")
	}
	for _, g := range groups {
		if _, err := tx.Group(g); errors.Is(err, store.ErrNotFound) {
			return errBadRequest("groups: no group %q", g)
		} else if err != nil {
			return err
		}
	}
	return nil
}

func dedupe(in []string) []string {
	out := append([]string{}, in...)
	slices.Sort(out)
	return slices.Compact(out)
}

// Actor is who makes an administrative change: the account, and whether
// its session stepped up (gave the password, and a code, again) within the
// last five minutes, which changes that could hand the device to someone
// else require.
type Actor struct {
	Name      string
	SteppedUp bool
}

// Actor returns the actor of a session.
func (s *Service) Actor(sess session.Session) Actor {
	return Actor{Name: sess.User, SteppedUp: sess.SteppedUpWithin(s.clock.Now(), stepUpTTL)}
}

// requireFactorStepUp refuses, on an account that has a second factor, a
// change that adds or removes a second factor or a way in (recovery codes,
// a passkey, an authenticator app, the security email that receives
// emergency codes) unless the session stepped up within five minutes, which
// for such an account takes that factor. With the password alone, a stolen
// session could otherwise make a factor of its own and then use it where
// the owner's was asked for: at a step-up, or to turn 2FA off.
func (s *Service) requireFactorStepUp(sess session.Session, u store.User) error {
	if u.HasSecondFactor() && !s.Actor(sess).SteppedUp {
		return errStepUp
	}
	return nil
}

// checkFactorChange is what a change of the account's second factors or
// ways in needs from the session sess: a fresh step-up where the account
// has a second factor (requireFactorStepUp), and the password in the
// request itself, so that a session taken within minutes of its step-up is
// not enough.
func (s *Service) checkFactorChange(ctx context.Context, sess session.Session, u store.User, password string, c Client) error {
	if err := s.requireFactorStepUp(sess, u); err != nil {
		return err
	}
	return s.checkPassword(ctx, u, password, c)
}

// RequireStepUp returns the step-up error unless the session stepped up in
// the last five minutes.
func (s *Service) RequireStepUp(sess session.Session) error {
	if !s.Actor(sess).SteppedUp {
		return errStepUp
	}
	return nil
}

// guardAdmin refuses a change to the account target that actor may not
// make: any change to an admin account needs a step-up, and the built-in
// admin, put back to its default by a physical reset (or never signed in
// to), is changed by no one but itself until its owner has set a new
// password, so an attacker's admin account cannot take it back after the
// owner pressed RESET.
func guardAdmin(actor Actor, target store.User) error {
	if target.Name == store.AdminName && target.MustChangePassword && actor.Name != store.AdminName {
		return newErr(CodeForbidden, "the built-in admin account is at its default password (RESET at the device, or never signed in): "+
			"only its owner changes it now, by signing in with the default password")
	}
	if target.IsAdmin() && !actor.SteppedUp {
		return errStepUp
	}
	return nil
}

// CreateUser creates an account. Creating an admin needs a step-up.
func (s *Service) CreateUser(ctx context.Context, actor Actor, n NewUser, c Client) (UserView, error) {
	if n.Role == store.RoleAdmin && !actor.SteppedUp {
		return UserView{}, errStepUp
	}
	if err := account.CheckName(n.Name); err != nil {
		return UserView{}, errBadRequest("name: %s", err.Error())
	}
	if err := checkRole(n.Role); err != nil {
		return UserView{}, err
	}
	if err := account.CheckNewPassword(n.Password, n.Name, s.defaultPasswordFor(n.Name)); err != nil {
		return UserView{}, errBadRequest("password: %s", err.Error())
	}
	hash, err := s.hasher.Hash(account.Urgent(ctx), n.Password)
	if errors.Is(err, account.ErrBusy) {
		return UserView{}, errBusy()
	}
	if err != nil {
		return UserView{}, errInternal(err)
	}
	now := s.clock.Now()
	must := n.MustChangePassword == nil || *n.MustChangePassword
	u := store.User{Name: n.Name, Role: n.Role, Groups: dedupe(n.Groups), PasswordHash: hash, MustChangePassword: must, Created: now, PasswordChanged: now}
	err = s.store.Update(func(tx *store.Tx) error {
		if err := checkGroups(tx, u.Groups); err != nil {
			return err
		}
		if err := tx.CreateUser(u); err != nil {
			return err
		}
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: "user_created", User: u.Name, Actor: actor.Name, Client: c.String(), Detail: "role " + u.Role})
	})
	if errors.Is(err, store.ErrExists) {
		return UserView{}, newErr(CodeConflict, fmt.Sprintf("an account called %q exists", n.Name))
	}
	if err != nil {
		return UserView{}, asErr(err)
	}
	return s.View(u), nil
}

func asErr(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, store.ErrNotFound) {
		return newErr(CodeNotFound, "no such account")
	}
	return errInternal(err)
}

// UserPatch changes an account; nil fields stay.
type UserPatch struct {
	Role               *string   `json:"role"`
	Groups             *[]string `json:"groups"`
	Password           *string   `json:"password"`
	Disabled           *bool     `json:"disabled"`
	MustChangePassword *bool     `json:"must_change_password"`
}

// activeAdmins counts enabled admins, with u replacing its stored version.
func activeAdmins(tx *store.Tx, u *store.User) (int, error) {
	users, err := tx.Users()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, x := range users {
		if u != nil && x.Name == u.Name {
			x = *u
		}
		if x.IsAdmin() && !x.Disabled {
			n++
		}
	}
	return n, nil
}

// UpdateUser applies an admin's change to an account. The last enabled
// admin cannot be demoted or disabled, and neither can the built-in admin.
// A change to an admin account, or making one, needs a step-up.
func (s *Service) UpdateUser(ctx context.Context, actor Actor, name string, p UserPatch, c Client) (UserView, error) {
	if p.Role != nil && *p.Role == store.RoleAdmin && !actor.SteppedUp {
		return UserView{}, errStepUp
	}
	if cur, err := s.user(name); err == nil {
		if err := guardAdmin(actor, cur); err != nil {
			return UserView{}, err
		}
	}
	var hash string
	if p.Password != nil {
		if err := account.CheckNewPassword(*p.Password, name, s.defaultPasswordFor(name)); err != nil {
			return UserView{}, errBadRequest("password: %s", err.Error())
		}
		var err error
		if hash, err = s.hasher.Hash(account.Urgent(ctx), *p.Password); errors.Is(err, account.ErrBusy) {
			return UserView{}, errBusy()
		} else if err != nil {
			return UserView{}, errInternal(err)
		}
	}
	if p.Role != nil {
		if err := checkRole(*p.Role); err != nil {
			return UserView{}, err
		}
	}
	now := s.clock.Now()
	revoke := false
	u, err := s.updateUser(name, func(tx *store.Tx, u *store.User) error {
		if err := guardAdmin(actor, *u); err != nil {
			return err // the account changed since the check above
		}
		var changes []string
		if p.Role != nil && *p.Role != u.Role {
			if u.Name == store.AdminName {
				return newErr(CodeForbidden, "the built-in admin account keeps the admin role")
			}
			u.Role = *p.Role
			// A session opened as a user would otherwise act as an admin
			// at once, without the second factor an admin's login may
			// need under the policy; the account signs in again.
			revoke = true
			changes = append(changes, "role "+u.Role)
		}
		if p.Groups != nil {
			g := dedupe(*p.Groups)
			if err := checkGroups(tx, g); err != nil {
				return err
			}
			u.Groups = g
			changes = append(changes, "groups")
		}
		if p.Disabled != nil && *p.Disabled != u.Disabled {
			if *p.Disabled && u.Name == store.AdminName {
				return newErr(CodeForbidden, "the built-in admin account cannot be disabled")
			}
			u.Disabled = *p.Disabled
			revoke = revoke || u.Disabled
			changes = append(changes, fmt.Sprintf("disabled=%v", u.Disabled))
		}
		if hash != "" {
			u.PasswordHash, u.PasswordChanged, u.MustChangePassword = hash, now, true
			revoke = true
			changes = append(changes, "password set")
		}
		if p.MustChangePassword != nil {
			u.MustChangePassword = *p.MustChangePassword
			changes = append(changes, fmt.Sprintf("must_change_password=%v", u.MustChangePassword))
		}
		if n, err := activeAdmins(tx, u); err != nil {
			return err
		} else if n == 0 {
			return newErr(CodeForbidden, "this would leave no enabled admin account")
		}
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: "user_updated", User: u.Name, Actor: actor.Name, Client: c.String(), Detail: fmt.Sprint(changes)})
	})
	if err != nil {
		return UserView{}, asErr(err)
	}
	if revoke {
		s.sessions.RevokeUser(u.Name, "")
	}
	return s.View(u), nil
}

// DeleteUser removes an account. The built-in admin, the last admin and the
// caller's own account cannot be deleted; deleting an admin needs a step-up.
func (s *Service) DeleteUser(actor Actor, name string, c Client) error {
	if name == store.AdminName {
		return newErr(CodeForbidden, "the built-in admin account cannot be deleted")
	}
	if name == actor.Name {
		return newErr(CodeForbidden, "you cannot delete your own account")
	}
	err := s.store.Update(func(tx *store.Tx) error {
		u, err := tx.User(name)
		if err != nil {
			return err
		}
		if err := guardAdmin(actor, u); err != nil {
			return err
		}
		if err := tx.DeleteUser(name); err != nil {
			return err
		}
		if n, err := activeAdmins(tx, nil); err != nil {
			return err
		} else if n == 0 && u.IsAdmin() {
			return newErr(CodeForbidden, "this would leave no enabled admin account")
		}
		p, err := tx.Policy()
		if err != nil {
			return err
		}
		if i := slices.Index(p.Users, name); i >= 0 {
			p.Users = slices.Delete(p.Users, i, i+1)
			if err := tx.PutPolicy(p); err != nil {
				return err
			}
		}
		return tx.AppendAudit(store.AuditEntry{Time: s.clock.Now(), Event: "user_deleted", User: name, Actor: actor.Name, Client: c.String()})
	})
	if err != nil {
		return asErr(err)
	}
	s.sessions.RevokeUser(name, "")
	return nil
}

// AdminDisable2FA turns off another account's 2FA (the owner lost the
// phone, or someone else took the account): key, recovery codes, passkeys,
// trusted devices and the security email go, sessions end. The notice goes
// to the address that was verified. For an admin account it needs a
// step-up.
func (s *Service) AdminDisable2FA(actor Actor, name string, c Client) error {
	if actor.Name == name {
		// One's own 2FA goes off only with the password and a code
		// (DELETE /me/2fa), so a stolen admin session cannot do it.
		return newErr(CodeForbidden, "turn off your own two-factor authentication with your password and a code (DELETE /api/v1/me/2fa)")
	}
	now := s.clock.Now()
	var before store.User
	_, err := s.updateUser(name, func(tx *store.Tx, u *store.User) error {
		if err := guardAdmin(actor, *u); err != nil {
			return err
		}
		before = *u
		u.TOTP = store.TOTP{}
		u.Passkeys, u.PasskeySignIn = nil, false
		// An address someone else set while holding the account would
		// otherwise get its emergency codes once 2FA is on again.
		u.DropSecurityEmail()
		if _, err := tx.DeleteDevices(u.Name); err != nil {
			return err
		}
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: "2fa_disabled", User: u.Name, Actor: actor.Name, Client: c.String(), Detail: "by an admin; security email removed"})
	})
	if err != nil {
		return asErr(err)
	}
	s.sessions.RevokeUser(name, "")
	s.notify(before, "2fa_disabled", map[string]string{"client": c.String(), "by": actor.Name})
	return nil
}

// Groups lists the groups with their members.
func (s *Service) Groups() ([]GroupView, error) {
	out := []GroupView{}
	err := s.store.View(func(tx *store.Tx) error {
		groups, err := tx.Groups()
		if err != nil {
			return err
		}
		users, err := tx.Users()
		if err != nil {
			return err
		}
		for _, g := range groups {
			v := GroupView{Name: g.Name, Created: g.Created, Members: []string{}}
			for _, u := range users {
				if u.InGroup(g.Name) {
					v.Members = append(v.Members, u.Name)
				}
			}
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		return nil, errInternal(err)
	}
	return out, nil
}

// GroupView is a group as shown by the API.
type GroupView struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Members []string  `json:"members"`
}

// CreateGroup creates a group.
func (s *Service) CreateGroup(actor, name string, c Client) (GroupView, error) {
	if err := account.CheckName(name); err != nil {
		return GroupView{}, errBadRequest("name: %s", err.Error())
	}
	now := s.clock.Now()
	err := s.store.Update(func(tx *store.Tx) error {
		if err := tx.CreateGroup(store.Group{Name: name, Created: now}); err != nil {
			return err
		}
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: "group_created", Actor: actor, Client: c.String(), Detail: name})
	})
	if errors.Is(err, store.ErrExists) {
		return GroupView{}, newErr(CodeConflict, fmt.Sprintf("a group called %q exists", name))
	}
	if err != nil {
		return GroupView{}, errInternal(err)
	}
	return GroupView{Name: name, Created: now, Members: []string{}}, nil
}

// DeleteGroup removes a group, its memberships and its place in the policy.
// Where that changes an admin account (a member) or the 2FA policy (it
// names the group), it needs a step-up, as those changes do made directly.
func (s *Service) DeleteGroup(actor Actor, name string, c Client) error {
	err := s.store.Update(func(tx *store.Tx) error {
		users, err := tx.Users()
		if err != nil {
			return err
		}
		p, err := tx.Policy()
		if err != nil {
			return err
		}
		if !actor.SteppedUp {
			if slices.Contains(p.Groups, name) {
				return errStepUp
			}
			for _, u := range users {
				if u.IsAdmin() && slices.Contains(u.Groups, name) {
					return errStepUp
				}
			}
		}
		if err := tx.DeleteGroup(name); err != nil {
			return err
		}
		for _, u := range users {
			if i := slices.Index(u.Groups, name); i >= 0 {
				u.Groups = slices.Delete(u.Groups, i, i+1)
				if err := tx.PutUser(u); err != nil {
					return err
				}
			}
		}
		if i := slices.Index(p.Groups, name); i >= 0 {
			p.Groups = slices.Delete(p.Groups, i, i+1)
			if err := tx.PutPolicy(p); err != nil {
				return err
			}
		}
		return tx.AppendAudit(store.AuditEntry{Time: s.clock.Now(), Event: "group_deleted", Actor: actor.Name, Client: c.String(), Detail: name})
	})
	if errors.Is(err, store.ErrNotFound) {
		return newErr(CodeNotFound, "no such group")
	}
	if err != nil {
		return asErr(err)
	}
	return nil
}

// Policy returns the mandatory-2FA policy.
func (s *Service) Policy() (store.Policy, error) {
	p, err := s.policy()
	if err != nil {
		return p, errInternal(err)
	}
	if p.Users == nil {
		p.Users = []string{}
	}
	if p.Groups == nil {
		p.Groups = []string{}
	}
	return p, nil
}

// SetPolicy replaces the mandatory-2FA policy. Users and groups must exist.
// Sessions already open keep running; the policy applies at the next login.
// It needs a step-up.
func (s *Service) SetPolicy(actor Actor, p store.Policy, c Client) (store.Policy, error) {
	if !actor.SteppedUp {
		return p, errStepUp
	}
	switch p.Scope {
	case store.ScopeNone, store.ScopeAdmins, store.ScopeAll, store.ScopeSelected:
	default:
		return p, errBadRequest("scope: %q is not none, admins, all or selected", p.Scope)
	}
	p.Users, p.Groups = dedupe(p.Users), dedupe(p.Groups)
	if len(p.Users) > 1000 || len(p.Groups) > 1000 {
		return p, errBadRequest("users, groups: at most 1000 each")
	}
	err := s.store.Update(func(tx *store.Tx) error {
		for _, n := range p.Users {
			if _, err := tx.User(n); errors.Is(err, store.ErrNotFound) {
				return errBadRequest("users: no account %q", n)
			} else if err != nil {
				return err
			}
		}
		if err := checkGroups(tx, p.Groups); err != nil {
			return err
		}
		if err := tx.PutPolicy(p); err != nil {
			return err
		}
		return tx.AppendAudit(store.AuditEntry{Time: s.clock.Now(), Event: "policy_changed", Actor: actor.Name, Client: c.String(),
			Detail: fmt.Sprintf("scope=%s users=%v groups=%v passkey_sign_in=%v", p.Scope, p.Users, p.Groups, p.PasskeySignIn)})
	})
	if err != nil {
		return p, asErr(err)
	}
	return p, nil
}
