package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/atomicfile"
	"github.com/rknas/firmware/authd/button"
	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/control"
	"github.com/rknas/firmware/authd/netconf"
	"github.com/rknas/firmware/authd/recovery"
	"github.com/rknas/firmware/authd/store"
	"github.com/rknas/firmware/authd/tlscert"
	"github.com/rknas/firmware/board"
	"github.com/rknas/firmware/board/diskimage"
	"github.com/rknas/firmware/board/flash"
	"github.com/rknas/firmware/board/medium"
	"github.com/rknas/firmware/rescue/console"
	"github.com/rknas/firmware/rescue/sysactions"
)

// wireOptions say where authd and its state are.
type wireOptions struct {
	ControlSocket       string
	StateDir            string
	DefaultPasswordFile string
	// DefaultHostname is the hostname the flasher provisioned: the
	// network configuration's default, which a reset puts back ("": the
	// firmware's).
	DefaultHostname string
	Board           string
	// StateMount is where the state partition is mounted (the state
	// directory lies in it); install-emmc copies it.
	StateMount string
	// Direct lets the console change the state itself when authd is not
	// running (failsafe boot: authd is not started).
	Direct bool
}

// wire returns the actions and the button the console uses on the board:
// through authd's control socket while authd runs, and directly on the
// state partition in failsafe mode, when it does not. Reboot and power off
// go through the firmware's uinit when it started us, so it unmounts the
// state partition cleanly.
var wire = func(log *slog.Logger, o wireOptions) (console.Actions, console.Button, error) {
	initPID := sysactions.ParentIfNamed("uinit")
	log.Info("rescue: reboot and power off", "via_init_pid", initPID)
	prof := board.Detect()
	if o.Board != "" && o.Board != "auto" {
		p, err := board.ByName(o.Board)
		if err != nil {
			return nil, nil, fmt.Errorf("--board: %w", err)
		}
		prof = p
	}
	a := &authdActions{System: sysactions.System{Version: version, InitPID: initPID}, client: control.NewClient(o.ControlSocket),
		log: log, profile: prof, stateMount: o.StateMount, stateDir: o.StateDir}
	if o.Direct {
		a.direct = &direct{opts: o, log: log}
	}
	var btn console.Button
	if prof.Button.Kind != board.ButtonNone {
		btn = &authdButton{client: a.client, profile: prof, direct: o.Direct}
	}
	return a, btn, nil
}

// authdActions reaches authd's state through the control socket, falling
// back to the state partition in failsafe mode.
type authdActions struct {
	sysactions.System
	client     *control.Client
	direct     *direct
	log        *slog.Logger
	profile    board.Profile
	stateMount string
	stateDir   string
}

// databaseDamage returns why authd's database does not open (an error
// wrapping store.ErrCorrupt for a damaged one), or nil when it opens or
// there is none yet. Ask only while authd is not running: the open would
// wait for authd's lock, and a healthy database is upgraded by it.
func (a *authdActions) databaseDamage() error {
	path := filepath.Join(a.stateDir, "auth.db")
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	s, err := store.Open(path)
	if err != nil {
		return err
	}
	s.Close()
	return nil
}

// SetAsideDatabase renames a damaged auth.db to auth.db.damaged-TIME,
// durably, so authd starts with a new database at its next start. It
// refuses while authd answers or runs, and for a database that opens.
func (a *authdActions) SetAsideDatabase(ctx context.Context) (string, error) {
	if _, err := a.client.Status(ctx); err == nil {
		return "", fmt.Errorf("the login service is running, so its database is not damaged: %w", console.ErrNotAvailable)
	}
	if processRunning("authd", a.stateDir) {
		return "", fmt.Errorf("the login service is starting: wait for it, then look at the status again: %w", console.ErrNotAvailable)
	}
	damage := a.databaseDamage()
	switch {
	case damage == nil:
		return "", fmt.Errorf("the accounts database opens, so it is not damaged: %w", console.ErrNotAvailable)
	case !errors.Is(damage, store.ErrCorrupt):
		return "", fmt.Errorf("only a damaged database is set aside, and this one is not (%v); nothing was changed", damage)
	}
	path := filepath.Join(a.stateDir, "auth.db")
	aside := path + ".damaged-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(path, aside); err != nil {
		return "", fmt.Errorf("set auth.db aside: %w", err)
	}
	if err := atomicfile.SyncDir(a.stateDir); err != nil {
		return "", fmt.Errorf("set auth.db aside: %w", err)
	}
	a.log.Warn("rescue: damaged database set aside", "kept_as", aside, "damage", damage.Error())
	return fmt.Sprintf("The damaged auth.db is kept as %s.\n"+
		"The login service starts with a new database at its next start: reboot the NAS now (reboot, 7).\n"+
		"Then sign in as admin with the device's default password (on the flasher's label, and in "+
		"rknas/default-password on the boot partition).\n", filepath.Base(aside)), nil
}

// InstallEMMC copies the running medium to the board's eMMC with the
// flasher's checks: the eMMC is found by the profile (and its device type),
// the running medium is never a target, and the state is copied from a
// frozen snapshot, so authd may go on running.
func (a *authdActions) InstallEMMC(ctx context.Context) (string, error) {
	if a.profile.EMMC.Alias < 0 {
		return "", fmt.Errorf("the %s has no eMMC: %w", a.profile.Model, console.ErrNotAvailable)
	}
	target, err := a.profile.EMMC.Locate()
	if err != nil {
		return "", err
	}
	src, err := medium.Running()
	if err != nil {
		return "", fmt.Errorf("the medium this system runs from: %w", err)
	}
	var log strings.Builder
	res, err := flash.Install(ctx, flash.InstallJob{Source: src, Target: target, StateDir: a.stateMount,
		Options: flash.Options{AllowFixed: true}, Inspector: flash.NewInspector(), Log: &log})
	if err != nil {
		return log.String(), err
	}
	a.log.Info("rescue: installed to the eMMC", "target", target, "disk", res.Table.DiskID.String())
	msg := log.String() + fmt.Sprintf("Installed to %s, written and read back (%s).\n"+
		"The eMMC has the same accounts, passwords and settings as this medium; its disk is %s.\n"+
		"Power the NAS off, take out the TF card, and power it on: it starts from the eMMC.\n",
		target, res.Description, res.Table.DiskID)
	if a.profile.Bootloader.Lives == board.BootMedium && !bootChainPresent(target) {
		msg += "WARNING: the eMMC has no bootloader at sector 64 and this image carries none: it will not start on its own.\n" +
			"Write one (BOOTLOADER=u-boot-rockchip.bin, see docs/boards.md) before taking out the TF card.\n"
	}
	return msg, nil
}

// bootChainPresent reports whether something is written where the mask ROM
// looks for the bootloader (sector 64).
func bootChainPresent(disk string) bool {
	f, err := os.Open(disk)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 512)
	if _, err := f.ReadAt(b, diskimage.BootChainSector*diskimage.SectorSize); err != nil {
		return false
	}
	return !bytes.Equal(b, make([]byte, 512))
}

func (a *authdActions) Status(ctx context.Context) (console.Status, error) {
	st, err := a.System.Status(ctx)
	cs, cerr := a.client.Status(ctx)
	switch {
	case cerr == nil:
		st.AuthdOK = true
		st.Authd = "running (board " + cs.Board + ", clock " + cs.Clock + ", button " + cs.Button + ")"
		if cs.Version != "" {
			st.Version = cs.Version
		}
		st.Certificate, st.WebPort = cs.Certificate, cs.HTTPSPort
	case a.direct != nil:
		st.AuthdStopped = true
		st.Authd = "changes go straight to the state partition"
	case processRunning("authd", a.stateDir):
		st.AuthdStarting = true
		st.Authd = "running, not answering yet"
	default:
		st.Authd = "not answering"
		if damage := a.databaseDamage(); errors.Is(damage, store.ErrCorrupt) {
			st.Authd = "stopped: its accounts database auth.db is damaged; set-aside-database (11) starts a new one"
		}
	}
	return st, err
}

// viaAuthd runs fn on authd, or on the state partition when authd is not
// running and direct mode is allowed.
func (a *authdActions) viaAuthd(ctx context.Context, remote func() (string, error), local func(*direct) (string, error)) (string, error) {
	msg, err := remote()
	if errors.Is(err, control.ErrUnreachable) {
		if a.direct == nil {
			return "", fmt.Errorf("authd is not answering; power-cycle the NAS holding RESET for failsafe mode: %w", console.ErrNotAvailable)
		}
		return local(a.direct)
	}
	return msg, err
}

func (a *authdActions) ResetAdmin(ctx context.Context) (string, error) {
	return a.viaAuthd(ctx, func() (string, error) { return a.client.ResetAdmin(ctx) }, func(d *direct) (string, error) { return d.resetAdmin(ctx) })
}

func (a *authdActions) ResetNetwork(ctx context.Context) (string, error) {
	return a.viaAuthd(ctx, func() (string, error) { return a.client.ResetNetwork(ctx) }, func(d *direct) (string, error) { return d.resetNetwork(ctx) })
}

func (a *authdActions) NewCertificate(ctx context.Context) (string, error) {
	return a.viaAuthd(ctx, func() (string, error) { return a.client.NewCertificate(ctx) }, func(d *direct) (string, error) { return d.newCertificate() })
}

func (a *authdActions) Audit(ctx context.Context, n int) ([]string, error) {
	lines, err := a.client.Audit(ctx, n)
	if errors.Is(err, control.ErrUnreachable) && a.direct != nil {
		return a.direct.audit(n)
	}
	return lines, err
}

// authdButton waits for a RESET press: through authd, which owns the line
// while it runs, or on the line itself in failsafe mode.
type authdButton struct {
	client  *control.Client
	profile board.Profile
	direct  bool
}

func (b *authdButton) WaitPress(ctx context.Context, timeout time.Duration) (bool, error) {
	ok, err := b.client.WaitPress(ctx, timeout)
	if !errors.Is(err, control.ErrUnreachable) || !b.direct {
		return ok, err
	}
	src, err := button.SourceFor(b.profile)
	if err != nil {
		return false, err
	}
	defer src.Close()
	info, events, err := src.Start()
	if err != nil {
		return false, err
	}
	// A button still held from the failsafe boot must be released first:
	// only a press that starts now confirms.
	held := info.Pressed
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case e, open := <-events:
			if !open || e.Err != nil {
				return false, fmt.Errorf("button: %v", e.Err)
			}
			if e.Lost {
				continue
			}
			if !e.Pressed {
				held = false
			} else if !held {
				return true, nil
			}
		case <-deadline.C:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// direct changes the state partition itself, for failsafe mode only: authd
// is not running then, so nothing else holds the database.
type direct struct {
	opts wireOptions
	log  *slog.Logger
}

func (d *direct) withStore(fn func(*store.Store) error) error {
	s, err := store.Open(filepath.Join(d.opts.StateDir, "auth.db"))
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(s)
}

func (d *direct) defaultPassword() (string, error) {
	path := d.opts.DefaultPasswordFile
	if path == "" {
		path = filepath.Join(d.opts.StateDir, account.DefaultPasswordFile)
	}
	p, err := account.ReadPasswordFile(path)
	if err != nil {
		return "", fmt.Errorf("default password: %w", err)
	}
	return p, nil
}

func (d *direct) network() (*netconf.Manager, error) {
	ap, err := netconf.NewNetlinkApplier(netconf.NetlinkOptions{Logger: d.log})
	if err != nil {
		return nil, err
	}
	return netconf.NewManager(netconf.Options{Dir: d.opts.StateDir, Applier: ap, RunDefaultIfCorrupt: true, DefaultHostname: d.opts.DefaultHostname, Logger: d.log})
}

func (d *direct) resetAdmin(ctx context.Context) (string, error) {
	pw, err := d.defaultPassword()
	if err != nil {
		return "", err
	}
	h, err := account.NewHasher(account.DefaultParams, 1, time.Minute)
	if err != nil {
		return "", err
	}
	net, err := d.network()
	if err != nil {
		return "", err
	}
	defer net.Close()
	err = d.withStore(func(s *store.Store) error {
		return recovery.Run(ctx, recovery.Deps{Store: s, Hasher: h, DefaultPassword: pw, Network: net, Clock: clock.System{},
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, "rescue")
	})
	if err != nil {
		return "", err
	}
	return recovery.Done(true), nil
}

// newCertificate removes the device certificate, and an imported one:
// authd makes a new device certificate when it starts.
func (d *direct) newCertificate() (string, error) {
	path := filepath.Join(d.opts.StateDir, "tls", tlscert.DeviceFile)
	for _, name := range []string{tlscert.OwnerFile, tlscert.DeviceFile} {
		if err := os.Remove(filepath.Join(filepath.Dir(path), name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	_ = d.withStore(func(s *store.Store) error {
		return s.Update(func(tx *store.Tx) error {
			return tx.AppendAudit(store.AuditEntry{Time: time.Now(), Event: "certificate_regenerated", Actor: "rescue", Detail: "device certificate (and any imported one) removed in failsafe mode; made anew at the next start"})
		})
	})
	return "the device certificate (and any imported one) is removed: authd makes a new one at the next normal start, and prints its fingerprint on the console", nil
}

func (d *direct) resetNetwork(ctx context.Context) (string, error) {
	net, err := d.network()
	if err != nil {
		return "", err
	}
	defer net.Close()
	if err := net.ResetToDefault(ctx); err != nil {
		return "", err
	}
	_ = d.withStore(func(s *store.Store) error {
		return s.Update(func(tx *store.Tx) error {
			return tx.AppendAudit(store.AuditEntry{Time: time.Now(), Event: "network_reset", Actor: "rescue", Detail: "network back to DHCP from the serial console (failsafe)"})
		})
	})
	return "the network is back to DHCP on every Ethernet port", nil
}

func (d *direct) audit(n int) ([]string, error) {
	var lines []string
	err := d.withStore(func(s *store.Store) error {
		return s.View(func(tx *store.Tx) error {
			entries, err := tx.Audit(n, 0)
			for i := len(entries) - 1; i >= 0; i-- {
				lines = append(lines, entries[i].String())
			}
			return err
		})
	})
	return lines, err
}

// processRunning tells whether a process whose command name is comm runs
// and, when stateDir is not empty, was given stateDir as its -state: an
// authd working on another state directory (another instance, a test) is
// not the one whose database the console looks after. A process whose
// command line cannot be read counts as running.
func processRunning(comm, stateDir string) bool {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(b)) != comm {
			continue
		}
		if stateDir == "" {
			return true
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || usesStateDir(strings.Split(string(cmdline), "\x00"), stateDir) {
			return true
		}
	}
	return false
}

// usesStateDir tells whether the arguments give dir as -state (or
// --state), in either of the flag package's forms.
func usesStateDir(args []string, dir string) bool {
	want := filepath.Clean(dir)
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "state" {
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				continue
			}
			value = args[i+1]
		}
		if filepath.Clean(value) == want {
			return true
		}
	}
	return false
}

// failsafeHint is how an owner reaches the state partition without authd.
const failsafeHint = "the login service is not answering; for failsafe mode switch the NAS off, then on, and hold RESET for the first 2 seconds"

// Unavailable says which actions cannot run now, in plain words.
func (a *authdActions) Unavailable(ctx context.Context) map[string]string {
	off := map[string]string{}
	if a.profile.EMMC.Alias < 0 {
		off[console.ActionInstallEMMC] = "the " + a.profile.Model + " has no eMMC"
	}
	cs, err := a.client.Status(ctx)
	switch {
	case err == nil:
		off[console.ActionSetAsideDatabase] = "the login service is running, so its database is not damaged"
		if !cs.NetworkManaged {
			off[console.ActionResetNetwork] = console.NetworkUnmanaged
		}
		if cs.Certificate == "" {
			off[console.ActionNewCertificate] = "the login pages are not served over HTTPS with the device's own certificate here"
		}
	case a.direct != nil:
		// Failsafe mode: the state partition is changed directly.
		if a.databaseDamage() == nil {
			off[console.ActionSetAsideDatabase] = "the accounts database is not damaged"
		}
	default:
		if processRunning("authd", a.stateDir) || a.databaseDamage() == nil {
			off[console.ActionSetAsideDatabase] = "the accounts database is not damaged"
		}
		for _, name := range []string{console.ActionResetAdmin, console.ActionResetNetwork, console.ActionAudit, console.ActionNewCertificate} {
			off[name] = failsafeHint
			if a.profile.Button.Kind == board.ButtonNone {
				off[name] = "the login service is not answering, and this board has no button for failsafe mode: restart the NAS"
			}
		}
	}
	return off
}
