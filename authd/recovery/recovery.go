// Package recovery is the one physical-reset action: the built-in admin gets
// the device's default password back (to be changed at the next login) with
// no 2FA, trusted devices, sessions or security email, and the network goes back to DHCP. It
// is journaled, so a power cut half way is finished at the next start, and it
// never touches other accounts, groups, the policy or data.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/session"
	"github.com/rknas/firmware/authd/store"
)

// journalKey is where the journal lives in the store's settings.
const journalKey = "recovery_journal"

// Journal records a recovery in progress.
type Journal struct {
	ID      string    `json:"id"`
	Source  string    `json:"source"`
	Started time.Time `json:"started"`
	// AdminDone is set in the same transaction that resets the admin, so
	// the admin is reset exactly once per journal.
	AdminDone bool `json:"admin_done"`
	// AdminResetAt is the password change time the reset gave the admin:
	// an admin whose password changed since has been taken back by its
	// owner, and a new press resets it again.
	AdminResetAt time.Time `json:"admin_reset_at,omitzero"`
	NetworkDone  bool      `json:"network_done"`
	// Replaces is the journal of an earlier reset whose network step was
	// still owed when this press came: this one finishes it.
	Replaces string `json:"replaces,omitempty"`
	// NoticeTo is the admin's verified security email before the reset,
	// which the reset removes: the notice of the reset still goes there,
	// after a power cut too.
	NoticeTo string `json:"notice_to,omitempty"`
}

// Last describes the most recent completed recovery, for the status page.
type Last struct {
	ID       string    `json:"id"`
	Source   string    `json:"source"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
}

const lastKey = "recovery_last"

// noticeKey keeps the notice of a recovery made while authd was not
// running (the failsafe console, with no Live): authd gives it at its next
// start.
const noticeKey = "recovery_notice"

// pendingNotice is a recovery's notice not yet given.
type pendingNotice struct {
	Source   string `json:"source"`
	NoticeTo string `json:"notice_to"`
}

// Network puts the network configuration back to its default and applies
// it; netconf.Manager implements it. It must be idempotent.
type Network interface {
	ResetToDefault(ctx context.Context) error
}

// Live receives the in-memory consequences (sessions end, counters reset,
// the notice goes to noticeTo, the admin's security email before the reset,
// if it had one); auth.Service implements it. Optional.
type Live interface {
	AdminReset(source, noticeTo string)
}

// Deps are what a recovery works on.
type Deps struct {
	Store           *store.Store
	Hasher          *account.Hasher
	DefaultPassword string
	// DefaultHash, if set, returns a hash of DefaultPassword computed
	// ahead of time, so a press costs no argon2 work.
	DefaultHash func(ctx context.Context) (string, error)
	Network     Network
	Live        Live
	Clock       clock.Clock
	Log         *slog.Logger
	// Durable, if set, is called with the recovery's context once the
	// journal and the admin step are on disk: from then on a power cut
	// still ends in a full reset, finished at the next start.
	Durable func(ctx context.Context)
}

// Run performs a recovery triggered by source ("button", "rescue"). If an
// unfinished one is in the journal and the admin is still as it left it,
// that one is finished instead: a second press during a half-done reset
// does not reset twice. If the admin has been used since (its network step
// kept failing, and the owner set a password meanwhile), the press is a new
// reset, which finishes the old one's network step too: a press always
// gives the admin account back.
func Run(ctx context.Context, d Deps, source string) error {
	j, ok, err := pending(d.Store)
	if err != nil {
		return err
	}
	if ok {
		taken, err := adminTakenBack(d.Store, j)
		if err != nil {
			return err
		}
		if !taken {
			return finish(ctx, d, j, false)
		}
		d.Log.Warn("an earlier recovery's network step is still owed and its admin has been used since: resetting again",
			"earlier", j.ID)
	}
	id, err := session.NewToken()
	if err != nil {
		return err
	}
	// The journal is written in the same transaction as the admin step
	// (resetAdmin): one fsync less between the press and a durable
	// reset, and the intent is still on disk before any step that can be
	// cut half way (the network).
	fresh := Journal{ID: id[:16], Source: source, Started: d.Clock.Now()}
	if ok {
		// The earlier reset's notice went out with it (Live, at the press
		// or at authd's start): this one goes only to an address the owner
		// has verified since, not again to the one that reset removed,
		// which may have been an intruder's.
		fresh.Replaces = j.ID
	}
	return finish(ctx, d, fresh, true)
}

// adminTakenBack says whether the admin has changed since j's reset: its
// password is no longer the one the reset set, or it has a second factor
// again. A journal whose admin step is not done yet has nothing to compare.
func adminTakenBack(s *store.Store, j Journal) (bool, error) {
	if !j.AdminDone {
		return false, nil
	}
	var u store.User
	err := s.View(func(tx *store.Tx) error {
		var err error
		u, err = tx.User(store.AdminName)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("recovery: read the admin: %w", err)
	}
	return !u.MustChangePassword || !u.PasswordChanged.Equal(j.AdminResetAt) || u.TOTP.Enabled || len(u.Passkeys) > 0, nil
}

// resetEvent names a reset in the audit log: "physical_reset" for the
// button, "console_reset" for the serial console, so the log tells which
// way in was used.
func resetEvent(source string) string {
	if source == "rescue" {
		return "console_reset"
	}
	return "physical_reset"
}

// Done says, for the operator, what a finished recovery did; network says
// whether the network was put back to DHCP too.
func Done(network bool) string {
	msg := "the admin account is back to the device's default password (printed on the label the flasher made, " +
		"and in rknas/default-password on the boot partition), without 2FA (app or passkeys), sessions, trusted devices, app passwords or security email; " +
		"set a new password at the next login"
	if network {
		msg += "; the network is back to DHCP on every Ethernet port (the NAS may have a new address)"
	}
	return msg
}

// Resume finishes a recovery left unfinished by a power cut, and gives the
// notice of one made while authd was not running; it does nothing when
// there is neither. authd calls it at start, with Live. It reports whether
// it finished a recovery.
func Resume(ctx context.Context, d Deps) (bool, error) {
	j, ok, err := pending(d.Store)
	if err != nil {
		return false, err
	}
	if ok {
		d.Log.Warn("finishing an interrupted recovery", "id", j.ID, "source", j.Source)
		if err := finish(ctx, d, j, false); err != nil {
			return true, err
		}
	}
	return ok, giveNotice(d)
}

// giveNotice hands a kept notice to Live, then forgets it.
func giveNotice(d Deps) error {
	if d.Live == nil {
		return nil
	}
	var n pendingNotice
	err := d.Store.View(func(tx *store.Tx) error { return tx.Get(noticeKey, &n) })
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recovery: read the kept notice: %w", err)
	}
	d.Live.AdminReset(n.Source, n.NoticeTo)
	if err := d.Store.Update(func(tx *store.Tx) error { return tx.Delete(noticeKey) }); err != nil {
		return fmt.Errorf("recovery: forget the given notice: %w", err)
	}
	return nil
}

// LastRecovery returns the most recent finished recovery, if any.
func LastRecovery(s *store.Store) (Last, bool, error) {
	var l Last
	err := s.View(func(tx *store.Tx) error { return tx.Get(lastKey, &l) })
	if errors.Is(err, store.ErrNotFound) {
		return l, false, nil
	}
	return l, err == nil, err
}

func pending(s *store.Store) (Journal, bool, error) {
	var j Journal
	err := s.View(func(tx *store.Tx) error { return tx.Get(journalKey, &j) })
	if errors.Is(err, store.ErrNotFound) {
		return j, false, nil
	}
	if err != nil {
		return j, false, fmt.Errorf("recovery: read journal: %w", err)
	}
	return j, true, nil
}

// finish runs the steps not yet done; fresh says the journal is new and not
// yet written.
func finish(ctx context.Context, d Deps, j Journal, fresh bool) error {
	if !j.AdminDone {
		if err := resetAdmin(ctx, d, &j, fresh); err != nil {
			return err
		}
		if d.Durable != nil {
			d.Durable(ctx)
		}
	}
	// The in-memory part is repeated on every run: it is idempotent and
	// lost anyway if the process died.
	if d.Live != nil {
		d.Live.AdminReset(j.Source, j.NoticeTo)
	}
	if !j.NetworkDone {
		if d.Network != nil {
			if err := d.Network.ResetToDefault(ctx); err != nil {
				// The admin part stands; the network part is retried at
				// the next start or the next press.
				return fmt.Errorf("recovery: reset network: %w", err)
			}
		}
		j.NetworkDone = true
	}
	now := d.Clock.Now()
	err := d.Store.Update(func(tx *store.Tx) error {
		if err := tx.Delete(journalKey); err != nil {
			return err
		}
		// Again here, for a press that only finishes an open journal: a
		// ban the admin earned since its reset would otherwise come back
		// at authd's next start (authd forgets its own copy in Live).
		if err := tx.DeleteBan(store.BanAccount, store.AdminName); err != nil {
			return err
		}
		if err := tx.Put(lastKey, Last{ID: j.ID, Source: j.Source, Started: j.Started, Finished: now}); err != nil {
			return err
		}
		if d.Live == nil && j.NoticeTo != "" {
			// The journal goes, and with it the address the reset
			// removed: keep it for the notice authd gives at its start.
			if err := tx.Put(noticeKey, pendingNotice{Source: j.Source, NoticeTo: j.NoticeTo}); err != nil {
				return err
			}
		}
		// The audit says what was done: the network only where authd
		// manages it.
		detail := "id " + j.ID + "; network not managed by authd: unchanged"
		if d.Network != nil {
			detail = "id " + j.ID + "; network back to DHCP"
		}
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: resetEvent(j.Source) + "_completed", User: store.AdminName, Actor: j.Source,
			Detail: detail})
	})
	if err != nil {
		return fmt.Errorf("recovery: close journal: %w", err)
	}
	d.Log.Warn("recovery finished", "id", j.ID, "source", j.Source)
	return nil
}

func resetAdmin(ctx context.Context, d Deps, j *Journal, fresh bool) error {
	// Hash outside the transaction: argon2 takes a while and the database
	// has a single writer.
	var hash string
	var err error
	if d.DefaultHash != nil {
		hash, err = d.DefaultHash(ctx)
	} else {
		hash, err = d.Hasher.Hash(account.Urgent(ctx), d.DefaultPassword) // a RESET press goes first
	}
	if err != nil {
		return fmt.Errorf("recovery: hash default password: %w", err)
	}
	now := d.Clock.Now()
	err = d.Store.Update(func(tx *store.Tx) error {
		var cur Journal
		err := tx.Get(journalKey, &cur)
		switch {
		case errors.Is(err, store.ErrNotFound) && fresh:
			cur = *j
		case err == nil && fresh && j.Replaces != "" && cur.ID == j.Replaces:
			// This press's reset takes the earlier journal's place,
			// with its network step.
			cur = *j
		case err != nil:
			return fmt.Errorf("read journal: %w", err)
		}
		if cur.AdminDone {
			// Another run did this step meanwhile.
			*j = cur
			return nil
		}
		u, err := tx.User(store.AdminName)
		if errors.Is(err, store.ErrNotFound) {
			u = store.User{Name: store.AdminName, Created: now}
		} else if err != nil {
			return err
		}
		u.Role = store.RoleAdmin
		u.PasswordHash = hash
		u.MustChangePassword = true
		u.PasswordChanged = now
		u.Disabled = false
		u.TOTP = store.TOTP{}
		u.Passkeys, u.PasskeySignIn = nil, false
		// The security email goes too: one an intruder set while holding
		// the account would otherwise receive the admin's emergency
		// codes once the owner turns 2FA on again. The notice of this
		// reset still goes to it (NoticeTo), in case it is the owner's.
		if u.SecurityEmailVerified {
			cur.NoticeTo = u.SecurityEmail
		}
		u.DropSecurityEmail()
		if err := tx.PutUser(u); err != nil {
			return err
		}
		if _, err := tx.DeleteDevices(store.AdminName); err != nil {
			return err
		}
		// A program's token must not outlive the owner taking the
		// device back at its RESET button.
		if _, err := tx.DeleteAppPasswords(store.AdminName); err != nil {
			return err
		}
		// A ban the admin earned before (guessing from the LAN) would
		// otherwise come back at authd's next start and lock the owner
		// out of the account just given back; authd forgets its own copy
		// in Live.AdminReset.
		if err := tx.DeleteBan(store.BanAccount, store.AdminName); err != nil {
			return err
		}
		cur.AdminDone = true
		cur.AdminResetAt = now
		if err := tx.Put(journalKey, cur); err != nil {
			return err
		}
		*j = cur
		detail := "id " + j.ID + "; admin back to the default password, 2FA (authenticator and passkeys), trusted devices, app passwords and security email removed"
		if j.Replaces != "" {
			detail += "; finishes the network step of " + j.Replaces
		}
		return tx.AppendAudit(store.AuditEntry{Time: now, Event: resetEvent(j.Source), User: store.AdminName, Actor: j.Source,
			Detail: detail})
	})
	if err != nil {
		return fmt.Errorf("recovery: reset admin: %w", err)
	}
	if fresh {
		// Logged once the journal and the admin step are on disk: from
		// here a power cut is finished at the next start.
		d.Log.Warn("recovery started", "id", j.ID, "source", j.Source, "admin", "reset and journaled")
	}
	return nil
}
