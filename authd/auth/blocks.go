package auth

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rknas/firmware/authd/regulate"
	"github.com/rknas/firmware/authd/store"
)

// Bounds of the allow-list.
const (
	// MaxAllowList is how many networks the allow-list holds.
	MaxAllowList = 32
	// minAllowBits4 and minAllowBits6 refuse networks so wide that the
	// allow-list would switch blocking off for much of the internet.
	minAllowBits4 = 8
	minAllowBits6 = 32
	// allowListKey is where the allow-list is kept in the store.
	allowListKey = "security.allow_list"
	// blockAlertEvery spaces the mails about blocked addresses: an attack
	// from many addresses makes one mail per quarter hour, which counts the
	// others.
	blockAlertEvery = 15 * time.Minute
)

// Block is a running ban as admins see it.
type Block struct {
	Kind  string    `json:"kind"` // BlockClient or BlockAccount
	Key   string    `json:"key"`  // the address (IPv6 from beyond a router: its /64) or the account
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until"`
	// Offences counts the bans in a row; each lasts twice the one before.
	Offences       int   `json:"offences"`
	SecondsLeft    int64 `json:"seconds_left"`
	OnTheAllowList bool  `json:"on_the_allow_list,omitempty"`
}

// blockAlerts spaces the mails about blocked addresses.
type blockAlerts struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allowListed reports whether a is in a network of the allow-list.
func (s *Service) allowListed(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range *s.allow.Load() {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// AllowList returns the networks whose addresses are never blocked.
func (s *Service) AllowList() []netip.Prefix { return slices.Clone(*s.allow.Load()) }

// SetAllowList replaces the allow-list (step-up required: it weakens the
// blocking) and returns it as kept: each entry an address or a network in
// CIDR notation.
func (s *Service) SetAllowList(actor Actor, entries []string, c Client) ([]netip.Prefix, error) {
	if !actor.SteppedUp {
		return nil, errStepUp
	}
	list, err := ParseAllowList(entries)
	if err != nil {
		return nil, err
	}
	err = s.store.Update(func(tx *store.Tx) error {
		if err := tx.Put(allowListKey, list); err != nil {
			return err
		}
		return tx.AppendAudit(store.AuditEntry{Time: s.clock.Now(), Event: "allow_list_changed", Actor: actor.Name, Client: c.String(),
			Detail: prefixesText(list)})
	})
	if err != nil {
		return nil, errInternal(err)
	}
	s.allow.Store(&list)
	return slices.Clone(list), nil
}

// ParseAllowList checks an allow-list: addresses or CIDR networks, at most
// MaxAllowList, none wider than /8 (IPv4) or /32 (IPv6). The error names
// the first bad entry.
func ParseAllowList(entries []string) ([]netip.Prefix, error) {
	if len(entries) > MaxAllowList {
		return nil, errBadRequest("allow_list: at most %d entries, got %d", MaxAllowList, len(entries))
	}
	list := make([]netip.Prefix, 0, len(entries))
	for i, e := range entries {
		e = strings.TrimSpace(e)
		var p netip.Prefix
		if strings.Contains(e, "%") {
			return nil, errBadRequest("allow_list[%d]: %q: an address with a zone (%%eth0) is link-local; give the network instead", i, e)
		}
		if a, err := netip.ParseAddr(e); err == nil {
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		} else if p, err = netip.ParsePrefix(e); err != nil {
			return nil, errBadRequest("allow_list[%d]: %q is neither an IP address nor a network like 192.168.1.0/24", i, e)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), min(p.Bits(), p.Addr().Unmap().BitLen())).Masked()
		if p.Addr().Is6() && p.Bits() < minAllowBits6 || p.Addr().Is4() && p.Bits() < minAllowBits4 {
			return nil, errBadRequest("allow_list[%d]: %s is too wide: at least /%d for IPv4 and /%d for IPv6", i, p, minAllowBits4, minAllowBits6)
		}
		if !slices.Contains(list, p) {
			list = append(list, p)
		}
	}
	return list, nil
}

func prefixesText(list []netip.Prefix) string {
	if len(list) == 0 {
		return "empty"
	}
	parts := make([]string, len(list))
	for i, p := range list {
		parts[i] = p.String()
	}
	return strings.Join(parts, " ")
}

// loadBlocking reads the allow-list and puts back the bans kept from
// before the restart; damaged records cost only themselves.
func (s *Service) loadBlocking() error {
	var list []netip.Prefix
	var bans []store.Ban
	var bansErr error
	err := s.store.View(func(tx *store.Tx) error {
		if err := tx.Get(allowListKey, &list); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("read the allow-list: %w", err)
		}
		bans, bansErr = tx.Bans(s.clock.Now())
		return nil
	})
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	s.allow.Store(&list)
	if bansErr != nil {
		s.log.Error("some kept bans could not be read", "err", bansErr)
	}
	for _, b := range bans {
		if r := s.blockRegulator(b.Kind); r != nil {
			r.Restore(toRegulate(b))
		}
	}
	if len(bans) > 0 {
		s.log.Info("kept bans restored", "count", len(bans))
	}
	return nil
}

// banned keeps the ban (lasting lasts) that c's failed attempt just
// brought on l, writes it to the audit log and mails the admins.
func (s *Service) banned(l limit, c Client, lasts time.Duration) {
	b, ok := l.r.Ban(l.key)
	if !ok {
		return
	}
	now := s.clock.Now()
	rec := store.Ban{Kind: l.kind, Key: l.key, Until: b.Until, Offences: b.Offences, Since: now}
	if err := s.store.Batch(func(tx *store.Tx) error { return tx.PutBan(rec, now) }); err != nil {
		s.log.Error("ban not kept across restarts", "kind", l.kind, "key", l.key, "err", err)
	}
	detail := fmt.Sprintf("for %s (ban %d in a row)", waitText(lasts), b.Offences)
	details := map[string]string{"client": c.String(), "for": lasts.String(), "key": l.key}
	switch l.kind {
	case BlockClient:
		s.log.Warn("client address blocked for failed attempts", "client", l.key, "for", lasts)
		s.audit(store.AuditEntry{Event: "client_blocked", Client: l.key, Detail: detail})
		s.alertBlocked(now, details)
	case BlockAccount:
		s.log.Warn("account locked for failed attempts", "user", l.key, "for", lasts, "last_client", c.String())
		s.audit(store.AuditEntry{Event: "account_locked", User: l.key, Client: c.String(), Detail: detail})
		s.alertLocked(l.key, details)
	}
}

// alertBlocked mails every admin about a blocked address, at most once
// per blockAlertEvery; the next mail counts the blocks in between.
func (s *Service) alertBlocked(now time.Time, details map[string]string) {
	s.blockAlerts.mu.Lock()
	// A clock stepped back ends the quiet time, rather than making it last.
	if !s.blockAlerts.last.IsZero() && now.Sub(s.blockAlerts.last) < blockAlertEvery && !now.Before(s.blockAlerts.last) {
		s.blockAlerts.suppressed++
		s.blockAlerts.mu.Unlock()
		return
	}
	details["more"] = fmt.Sprint(s.blockAlerts.suppressed)
	s.blockAlerts.last, s.blockAlerts.suppressed = now, 0
	s.blockAlerts.mu.Unlock()
	for _, u := range s.adminsToAlert("") {
		s.notify(u, "client_blocked", details)
	}
}

// alertLocked mails the locked account's owner and every admin.
func (s *Service) alertLocked(name string, details map[string]string) {
	for _, u := range s.adminsToAlert(name) {
		d := maps.Clone(details)
		d["account"] = name
		s.notify(u, "account_locked", d)
	}
}

// adminsToAlert returns the admins, and the account named also (if any),
// each once.
func (s *Service) adminsToAlert(also string) []store.User {
	var users []store.User
	err := s.store.View(func(tx *store.Tx) error {
		var err error
		users, err = tx.Users()
		return err
	})
	if err != nil {
		s.log.Error("list the admins to alert", "err", err)
		return nil
	}
	var out []store.User
	for _, u := range users {
		if u.IsAdmin() || u.Name == also {
			out = append(out, u)
		}
	}
	return out
}

// blockRegulator returns the throttle whose bans of kind are kept and
// listed, or nil for an unknown kind.
func (s *Service) blockRegulator(kind string) *regulate.Regulator {
	switch kind {
	case BlockClient:
		return s.clients
	case BlockAccount:
		return s.accounts
	}
	return nil
}

func toRegulate(b store.Ban) regulate.Ban {
	return regulate.Ban{Key: b.Key, Until: b.Until, Offences: b.Offences}
}

// Blocks lists the running bans of client addresses and accounts, the
// longest first.
func (s *Service) Blocks() ([]Block, error) {
	now := s.clock.Now()
	since := map[string]time.Time{}
	err := s.store.View(func(tx *store.Tx) error {
		kept, err := tx.Bans(now)
		for _, b := range kept {
			since[b.Kind+"\x00"+b.Key] = b.Since
		}
		if err != nil {
			s.log.Warn("some kept bans could not be read", "err", err)
		}
		return nil
	})
	if err != nil {
		return nil, errInternal(err)
	}
	var out []Block
	for _, kind := range []string{BlockClient, BlockAccount} {
		for _, b := range s.blockRegulator(kind).Bans() {
			bl := Block{Kind: kind, Key: b.Key, Since: since[kind+"\x00"+b.Key], Until: b.Until, Offences: b.Offences,
				SecondsLeft: int64((b.Until.Sub(now) + time.Second - 1) / time.Second)}
			if kind == BlockClient {
				if p, err := netip.ParsePrefix(b.Key); err == nil {
					bl.OnTheAllowList = s.allowListed(p.Addr())
				} else if a, err := netip.ParseAddr(b.Key); err == nil {
					bl.OnTheAllowList = s.allowListed(a)
				}
			}
			out = append(out, bl)
		}
	}
	slices.SortStableFunc(out, func(a, b Block) int { return b.Until.Compare(a.Until) })
	return out, nil
}

// LiftBlock ends the ban of kind and key (an admin's decision: the
// account or address is let in at once, its offences forgotten).
func (s *Service) LiftBlock(ctx context.Context, actor Actor, kind, key string, c Client) error {
	r := s.blockRegulator(kind)
	if r == nil {
		return errBadRequest("kind: %q is not %s or %s", kind, BlockClient, BlockAccount)
	}
	if _, ok := r.Ban(key); !ok {
		return newErr(CodeNotFound, fmt.Sprintf("no running ban of the %s %q", kind, key))
	}
	r.Reset(key)
	if kind == BlockAccount {
		s.unknown.Reset(key)
	}
	err := s.store.Update(func(tx *store.Tx) error {
		if err := tx.DeleteBan(kind, key); err != nil {
			return err
		}
		return tx.AppendAudit(store.AuditEntry{Time: s.clock.Now(), Event: "block_lifted", Actor: actor.Name, Client: c.String(),
			Detail: kind + " " + key})
	})
	if err != nil {
		return errInternal(err)
	}
	s.log.Info("ban lifted", "kind", kind, "key", key, "by", actor.Name)
	return nil
}

// forgetKept removes a kept ban without the audit entry of LiftBlock (the
// physical reset writes its own).
func (s *Service) forgetKept(kind, key string) {
	if err := s.store.Update(func(tx *store.Tx) error { return tx.DeleteBan(kind, key) }); err != nil {
		s.log.Error("kept ban not removed", "kind", kind, "key", key, "err", err)
	}
}
