//go:build linux

// Package sysactions implements the parts of the rescue console's Actions
// that need only the kernel: addresses, the clock, reboot and power off. The
// auth-related actions are left to the firmware's wiring, which embeds System
// and adds them.
package sysactions

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rknas/firmware/rescue/console"
)

// ParentIfNamed returns the parent's PID if the parent process is called
// name (as /proc shows it), else 0. The console uses it to find the
// firmware's uinit, which started it.
func ParentIfNamed(name string) int {
	ppid := os.Getppid()
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid))
	if err != nil || strings.TrimSpace(string(comm)) != name {
		return 0
	}
	return ppid
}

// Kernel constants x/sys/unix does not name.
const (
	staUnsync = 0x0040 // STA_UNSYNC in struct timex's status
	timeError = 5      // TIME_ERROR, adjtimex's "clock not synchronized"
)

// System is a console.Actions whose ResetAdmin, ResetNetwork, Audit and
// InstallEMMC return console.ErrNotAvailable: embed it and override them (and Status, to
// report authd's health).
type System struct {
	// Board names the board; when empty, Status reads the device tree's
	// model.
	Board string
	// Version is the firmware version.
	Version string
	// InitPID, when not zero, is the process that shuts the board down
	// cleanly (stops the services, unmounts the state partition): Reboot
	// sends it SIGTERM and PowerOff SIGUSR2, the u-root conventions the
	// firmware's uinit follows. When zero, they sync and call reboot(2).
	InitPID int
}

var _ console.Actions = System{}

// Status reports the board, the version, the global addresses and the clock;
// authd's health is unknown here.
func (s System) Status(ctx context.Context) (console.Status, error) {
	st := console.Status{Board: s.Board, Version: s.Version, Authd: "unknown (not checked by this build)"}
	if st.Board == "" {
		if b, err := os.ReadFile("/proc/device-tree/model"); err == nil {
			st.Board = strings.TrimRight(string(b), "\x00\n")
		}
	}
	addrs, err := Addresses()
	if err != nil {
		return st, err
	}
	st.Addresses = addrs
	st.Clock, err = s.Clock(ctx)
	return st, err
}

// Addresses lists "iface addr/len" for every address of an interface that is
// up, leaving out loopback and IPv6 link-local addresses.
func Addresses() ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("sysactions: list interfaces: %w", err)
	}
	var out []string
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		as, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("sysactions: addresses of %s: %w", ifc.Name, err)
		}
		for _, a := range as {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLinkLocalUnicast() {
				continue
			}
			out = append(out, ifc.Name+" "+ipn.String())
		}
	}
	return out, nil
}

// Clock reads the system clock and the kernel's synchronized flag
// (adjtimex), which NTP daemons and settimeofday clear or set.
func (System) Clock(context.Context) (console.ClockState, error) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return console.ClockState{Now: time.Now()}, fmt.Errorf("sysactions: adjtimex: %w", err)
	}
	return console.ClockState{Now: time.Now(), Synchronized: state != timeError && tx.Status&staUnsync == 0}, nil
}

// SetClock sets CLOCK_REALTIME (needs CAP_SYS_TIME). The RTC and the saved
// time are the firmware's to update.
func (System) SetClock(_ context.Context, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("sysactions: set clock: %w", err)
	}
	return nil
}

// ResetAdmin is not available without the auth database.
func (System) ResetAdmin(context.Context) (string, error) {
	return "", console.ErrNotAvailable
}

// ResetNetwork is not available without the network configuration.
func (System) ResetNetwork(context.Context) (string, error) {
	return "", console.ErrNotAvailable
}

// Unavailable names the actions this wiring cannot do: everything that
// needs the login service's state.
func (System) Unavailable(context.Context) map[string]string {
	const why = "this console is not connected to the login service"
	return map[string]string{console.ActionResetAdmin: why, console.ActionResetNetwork: why, console.ActionAudit: why,
		console.ActionInstallEMMC: why, console.ActionNewCertificate: why}
}

// NewCertificate is not available without authd's state.
func (System) NewCertificate(context.Context) (string, error) {
	return "", console.ErrNotAvailable
}

// Audit is not available without the auth database.
func (System) Audit(context.Context, int) ([]string, error) {
	return nil, console.ErrNotAvailable
}

// SetAsideDatabase is not available without authd's state.
func (System) SetAsideDatabase(context.Context) (string, error) {
	return "", console.ErrNotAvailable
}

// InstallEMMC is not available without the board's layout.
func (System) InstallEMMC(context.Context) (string, error) {
	return "", console.ErrNotAvailable
}

// Reboot asks InitPID to reboot, or flushes the filesystems and restarts
// the board through reboot(2).
func (s System) Reboot(context.Context) error {
	if s.InitPID > 0 {
		if err := unix.Kill(s.InitPID, unix.SIGTERM); err != nil {
			return fmt.Errorf("sysactions: ask init (pid %d) to reboot: %w", s.InitPID, err)
		}
		return nil
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		return fmt.Errorf("sysactions: reboot: %w", err)
	}
	return nil
}

// PowerOff asks InitPID to power off, or flushes the filesystems and
// switches the board off through reboot(2).
func (s System) PowerOff(context.Context) error {
	if s.InitPID > 0 {
		if err := unix.Kill(s.InitPID, unix.SIGUSR2); err != nil {
			return fmt.Errorf("sysactions: ask init (pid %d) to power off: %w", s.InitPID, err)
		}
		return nil
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		return fmt.Errorf("sysactions: power off: %w", err)
	}
	return nil
}
