// Package consoletest provides fakes of the rescue console's Actions and
// Button for tests.
package consoletest

import (
	"context"
	"sync"
	"time"

	"github.com/rknas/firmware/rescue/console"
)

// Actions is a fake console.Actions. Set the exported fields before use; it
// records every call and announces it on Calls. It is safe for concurrent
// use.
type Actions struct {
	// StatusValue and StatusErr are what Status returns.
	StatusValue console.Status
	StatusErr   error
	// ResetAdminMsg, ResetAdminErr, ResetNetworkMsg and ResetNetworkErr
	// are what the reset actions return.
	ResetAdminMsg   string
	ResetAdminErr   error
	ResetNetworkMsg string
	ResetNetworkErr error
	// Off names the actions Unavailable reports, with their reasons.
	Off map[string]string
	// CertificateMsg and CertificateErr are what NewCertificate returns.
	CertificateMsg string
	CertificateErr error
	// InstallMsg and InstallErr are what InstallEMMC returns.
	InstallMsg string
	InstallErr error
	// SetAsideMsg and SetAsideErr are what SetAsideDatabase returns.
	SetAsideMsg string
	SetAsideErr error
	// AuditEntries is the whole audit log; Audit returns its tail.
	AuditEntries []string
	AuditErr     error
	// ClockValue and ClockErr are what Clock returns.
	ClockValue console.ClockState
	ClockErr   error
	// SetClockErr, RebootErr and PowerOffErr are what those actions
	// return.
	SetClockErr, RebootErr, PowerOffErr error
	// Calls receives the name of each call (console.ActionStatus and so
	// on) if not nil; it should be buffered.
	Calls chan string

	mu      sync.Mutex
	called  []string
	clockTo []time.Time
	auditN  []int
}

var (
	_ console.Actions      = (*Actions)(nil)
	_ console.Availability = (*Actions)(nil)
)

// Unavailable returns Off.
func (a *Actions) Unavailable(context.Context) map[string]string { return a.Off }

func (a *Actions) record(name string) {
	a.mu.Lock()
	a.called = append(a.called, name)
	a.mu.Unlock()
	if a.Calls != nil {
		a.Calls <- name
	}
}

// Called returns how often the action named name was called.
func (a *Actions) Called(name string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.called {
		if c == name {
			n++
		}
	}
	return n
}

// SetClockTimes returns the times SetClock was called with.
func (a *Actions) SetClockTimes() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.clockTo...)
}

// AuditRequests returns the n of each Audit call.
func (a *Actions) AuditRequests() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int(nil), a.auditN...)
}

// Status returns StatusValue, StatusErr.
func (a *Actions) Status(context.Context) (console.Status, error) {
	a.record(console.ActionStatus)
	return a.StatusValue, a.StatusErr
}

// ResetAdmin returns ResetAdminMsg, ResetAdminErr.
func (a *Actions) ResetAdmin(context.Context) (string, error) {
	a.record(console.ActionResetAdmin)
	return a.ResetAdminMsg, a.ResetAdminErr
}

// ResetNetwork returns ResetNetworkMsg, ResetNetworkErr.
func (a *Actions) ResetNetwork(context.Context) (string, error) {
	a.record(console.ActionResetNetwork)
	return a.ResetNetworkMsg, a.ResetNetworkErr
}

// NewCertificate returns CertificateMsg, CertificateErr.
func (a *Actions) NewCertificate(context.Context) (string, error) {
	a.record(console.ActionNewCertificate)
	return a.CertificateMsg, a.CertificateErr
}

// SetAsideDatabase returns SetAsideMsg, SetAsideErr.
func (a *Actions) SetAsideDatabase(context.Context) (string, error) {
	a.record(console.ActionSetAsideDatabase)
	return a.SetAsideMsg, a.SetAsideErr
}

// InstallEMMC returns InstallMsg, InstallErr.
func (a *Actions) InstallEMMC(context.Context) (string, error) {
	a.record(console.ActionInstallEMMC)
	return a.InstallMsg, a.InstallErr
}

// Audit returns the last n of AuditEntries, or AuditErr.
func (a *Actions) Audit(_ context.Context, n int) ([]string, error) {
	a.mu.Lock()
	a.auditN = append(a.auditN, n)
	a.mu.Unlock()
	a.record(console.ActionAudit)
	if a.AuditErr != nil {
		return nil, a.AuditErr
	}
	e := a.AuditEntries
	if len(e) > n {
		e = e[len(e)-n:]
	}
	return e, nil
}

// Clock returns ClockValue, ClockErr.
func (a *Actions) Clock(context.Context) (console.ClockState, error) {
	a.record(console.ActionClock)
	return a.ClockValue, a.ClockErr
}

// SetClock records t and returns SetClockErr.
func (a *Actions) SetClock(_ context.Context, t time.Time) error {
	a.mu.Lock()
	a.clockTo = append(a.clockTo, t)
	a.mu.Unlock()
	a.record(console.ActionSetClock)
	return a.SetClockErr
}

// Reboot returns RebootErr.
func (a *Actions) Reboot(context.Context) error {
	a.record(console.ActionReboot)
	return a.RebootErr
}

// PowerOff returns PowerOffErr.
func (a *Actions) PowerOff(context.Context) error {
	a.record(console.ActionPowerOff)
	return a.PowerOffErr
}

// Button is a fake console.Button. Like the real one, a press counts only
// while WaitPress is waiting: presses before the wait are forgotten.
type Button struct {
	// Waiting receives the timeout each time WaitPress starts waiting, so a
	// test knows when to press.
	Waiting chan time.Duration
	presses chan struct{}
	mu      sync.Mutex
	err     error
}

var _ console.Button = (*Button)(nil)

// NewButton returns a released button.
func NewButton() *Button {
	return &Button{Waiting: make(chan time.Duration, 16), presses: make(chan struct{}, 1)}
}

// Press presses and releases the button once.
func (b *Button) Press() {
	select {
	case b.presses <- struct{}{}:
	default:
	}
}

// Break makes WaitPress fail at once with err, like a GPIO line that cannot
// be requested; nil repairs it.
func (b *Button) Break(err error) {
	b.mu.Lock()
	b.err = err
	b.mu.Unlock()
}

// WaitPress waits for Press, the timeout (real time) or ctx.
func (b *Button) WaitPress(ctx context.Context, timeout time.Duration) (bool, error) {
	select {
	case <-b.presses: // a press before the wait does not count
	default:
	}
	b.mu.Lock()
	err := b.err
	b.mu.Unlock()
	if err != nil {
		return false, err
	}
	select {
	case b.Waiting <- timeout:
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-b.presses:
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}
