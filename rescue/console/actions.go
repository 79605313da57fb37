package console

import (
	"context"
	"errors"
	"time"
)

// Actions is everything the rescue console can do to the system. Every menu
// entry goes through exactly one method, and nothing else is reachable from
// the console: there is no shell and no way to run a command.
//
// Strings and errors returned by an implementation are shown on the console
// after control bytes and escape sequences have been replaced, so an audit
// entry cannot drive the operator's terminal. Errors are also logged; the
// message strings of ResetAdmin and ResetNetwork are shown but never logged,
// so they may carry what the operator needs (for example where the new
// one-time password is printed), but an error must never carry a secret.
//
// Each call gets a context with the console's action timeout; the console
// does not call two methods at the same time.
type Actions interface {
	// Status reports what the banner and the status entry show. It must be
	// cheap and must not fail because one part is missing: report what is
	// known and describe the rest in the fields (for example Authd "not
	// responding: dial unix /run/authd.sock: connection refused").
	Status(ctx context.Context) (Status, error)
	// ResetAdmin is the recovery action: the admin account goes back to its
	// per-device default password, to be changed at the first login, and its
	// second factors are removed. Other accounts and data are untouched. The
	// returned text tells the operator what happened and what to do next.
	ResetAdmin(ctx context.Context) (string, error)
	// ResetNetwork puts the network configuration back to DHCP on every
	// interface and applies it. The returned text tells the operator what
	// happened.
	ResetNetwork(ctx context.Context) (string, error)
	// NewCertificate makes the device's HTTPS certificate anew (a key that
	// may have leaked, or a browser exception to start over). The returned
	// text gives the new fingerprint.
	NewCertificate(ctx context.Context) (string, error)
	// Audit returns at most n of the newest audit entries, oldest first, one
	// line each.
	Audit(ctx context.Context, n int) ([]string, error)
	// Clock reports the system clock and whether it is synchronized.
	Clock(ctx context.Context) (ClockState, error)
	// SetClock sets the system clock (and the RTC, and the saved time where
	// the board has them) to t.
	SetClock(ctx context.Context, t time.Time) error
	// Reboot restarts the board. It returns only if the reboot could not be
	// started.
	Reboot(ctx context.Context) error
	// PowerOff switches the board off. It returns only if that could not be
	// started.
	PowerOff(ctx context.Context) error
	// InstallEMMC copies the running firmware and its state from the
	// medium it runs from (a TF card) to the board's eMMC, which it erases.
	// The returned text tells the operator what was done and what to do
	// next (power off, take the card out).
	InstallEMMC(ctx context.Context) (string, error)
	// SetAsideDatabase renames a damaged accounts database (one the login
	// service refuses to open) so the service starts with a new one. It
	// must refuse, changing nothing, while the database opens or is in
	// use. The returned text says where the old one is and what to do next.
	SetAsideDatabase(ctx context.Context) (string, error)
}

// Availability is what an Actions may also implement: which actions cannot
// run now, each with the reason in plain words. The console marks them in
// the menu and refuses them before asking for any confirmation.
type Availability interface {
	Unavailable(ctx context.Context) map[string]string
}

// NetworkUnmanaged is the reason reset-network is unavailable where the
// login service does not manage the network; reset-admin then does not
// say that it resets the network.
const NetworkUnmanaged = "the login service does not manage the network on this NAS"

// Button is the physical presence check: the board's RESET (or user) button.
// A console configured without a Button asks the operator to type a
// confirmation word instead.
type Button interface {
	// WaitPress waits up to timeout for the button to be pressed and reports
	// whether it was. Only a press that starts after the call counts: a
	// button held since before (for example the RESET held at power-on to
	// start failsafe mode) must be released and pressed again. It returns
	// early with ctx's error when ctx is done.
	WaitPress(ctx context.Context, timeout time.Duration) (bool, error)
}

// Status is what the banner and the status entry show.
type Status struct {
	// Board is the board's name, for example "Radxa E25".
	Board string
	// Version is the firmware version.
	Version string
	// Addresses lists the configured addresses, one per entry, interface
	// first, for example "eth0 192.168.1.23/24". Empty means none.
	Addresses []string
	// Clock is the system clock's state.
	Clock ClockState
	// AuthdOK is true when the login daemon answers its health check.
	AuthdOK bool
	// AuthdStarting is true when the daemon runs but does not answer yet
	// (the first boot makes its keys and certificate): not a failure.
	AuthdStarting bool
	// AuthdStopped is true when the daemon is stopped on purpose (failsafe
	// mode): not a failure either.
	AuthdStopped bool
	// Authd describes the daemon's health in a few words, for example "ok" or
	// "not responding: ...".
	Authd string
	// Certificate is the SHA-256 fingerprint of the certificate the login
	// pages are served with, so the owner can check what the browser
	// shows against the box itself. Empty when unknown.
	Certificate string
	// WebPort is the HTTPS port of the login pages; 0 when unknown.
	WebPort int
}

// ClockState is the system clock and how far it can be trusted.
type ClockState struct {
	// Now is the system time.
	Now time.Time
	// Synchronized is true once the kernel reports the clock synchronized
	// (NTP answered, or an operator set it).
	Synchronized bool
	// Source says where the time came from, for example "ntp pool.ntp.org",
	// "rtc", "saved time" or "build date". Optional.
	Source string
}

// Sentinel errors of the console.
var (
	// ErrNotConfirmed means a destructive action was not confirmed in time
	// (or was cancelled); nothing was changed.
	ErrNotConfirmed = errors.New("not confirmed: nothing was changed")
	// ErrNotAvailable is returned by Actions implementations for an action
	// the build or the board does not support.
	ErrNotAvailable = errors.New("not available")
)
