package netconf

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/rknas/firmware/authd/clock"
)

// DefaultConfirmTimeout is how long a change may stay unconfirmed before it
// is rolled back.
const DefaultConfirmTimeout = 120 * time.Second

// Errors of Confirm.
var (
	// ErrNoPending means there is no change waiting for confirmation under
	// that id: it was confirmed, replaced by a later change, or rolled back.
	ErrNoPending = errors.New("no pending network change with that id")
	// ErrExpired means the change was not confirmed in time and has been
	// rolled back.
	ErrExpired = errors.New("pending network change expired and was rolled back")
)

// Options are the dependencies and settings of a Manager.
type Options struct {
	// Dir is the state directory; the configuration lives in Path(Dir).
	// Required.
	Dir string
	// Applier puts configurations on the system. Required; the real one
	// is NewNetlinkApplier.
	Applier Applier
	// Ports lists the Ethernet ports for the default configuration.
	// Default EthernetPorts.
	Ports func() ([]string, error)
	// DefaultHostname is the hostname of the default configuration, for
	// example one derived from the first MAC address. Default
	// DefaultHostname.
	DefaultHostname string
	// Clock tells the time of deadlines. Default clock.System{}.
	Clock clock.Clock
	// Timers starts the rollback timers. Default SystemTimers{}.
	Timers Timers
	// ConfirmTimeout is how long a change may stay unconfirmed. Default
	// DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
	// Logger gets rollbacks and failures. Default slog.Default().
	Logger *slog.Logger
	// RunDefaultIfCorrupt makes NewManager succeed when the stored file is
	// corrupt: the Manager then runs the default configuration in memory,
	// logs the error and reports it in Status.LoadError, and leaves the
	// file alone until a change is confirmed or ResetToDefault is called.
	// Without it NewManager returns the error (wrapping ErrCorrupt).
	RunDefaultIfCorrupt bool
	// OnRollback, if set, is called after an unconfirmed change has been
	// rolled back, with the id of the change.
	OnRollback func(id string)
}

// Manager owns the network configuration: it applies changes on trial, saves
// them when they are confirmed, and rolls them back when they are not.
//
// A change is saved to disk only when it is confirmed. Until then the file
// holds the last confirmed configuration, so a power cut or a crash during
// the trial brings the device back with the configuration that was known to
// work, which is what the rollback would have done anyway. Saving first and
// rolling back on disk later would leave a window in which an untested
// configuration, possibly one that locks the administrator out, is what the
// next boot applies.
type Manager struct {
	opts Options
	path string

	mu        sync.Mutex
	confirmed Config
	pending   *pending
	loadErr   error
}

type pending struct {
	id       string
	cfg      Config
	deadline time.Time
	timer    Timer
}

// NewManager loads the stored configuration (or the default when there is
// none). It does not touch the system: call Start to apply it.
func NewManager(o Options) (*Manager, error) {
	if o.Dir == "" || o.Applier == nil {
		return nil, errors.New("netconf: NewManager needs Dir and Applier")
	}
	if o.Ports == nil {
		o.Ports = EthernetPorts
	}
	if o.DefaultHostname == "" {
		o.DefaultHostname = DefaultHostname
	}
	if err := validateHostname(o.DefaultHostname); err != nil {
		return nil, fmt.Errorf("netconf: default hostname %q %v: %w", o.DefaultHostname, err, ErrInvalid)
	}
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	if o.Timers == nil {
		o.Timers = SystemTimers{}
	}
	if o.ConfirmTimeout <= 0 {
		o.ConfirmTimeout = DefaultConfirmTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	m := &Manager{opts: o, path: Path(o.Dir)}
	var def Config
	if _, err := os.Stat(m.path); errors.Is(err, fs.ErrNotExist) {
		// Only a device without a stored file needs the port list.
		if def, err = m.defaultConfig(); err != nil {
			return nil, err
		}
	}
	cfg, err := Load(m.path, def)
	if err != nil {
		if !o.RunDefaultIfCorrupt || !errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		o.Logger.Error("netconf: stored configuration unusable, running the default until a change is confirmed", "err", err)
		m.loadErr = err
		if cfg, err = m.defaultConfig(); err != nil {
			return nil, err
		}
	}
	m.confirmed = cfg
	return m, nil
}

func (m *Manager) defaultConfig() (Config, error) {
	ports, err := m.opts.Ports()
	if err != nil {
		return Config{}, fmt.Errorf("netconf: list Ethernet ports: %w", err)
	}
	c := Default(ports)
	c.Hostname = m.opts.DefaultHostname
	return c, nil
}

// Start applies the confirmed configuration, as at boot. Errors name the
// interfaces that could not be configured; the others are configured.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.opts.Applier.Apply(ctx, m.confirmed.Clone()); err != nil {
		return fmt.Errorf("netconf: apply stored configuration: %w", err)
	}
	return nil
}

// Current returns the configuration running now: the pending one during a
// trial, else the confirmed one.
func (m *Manager) Current() Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running().Clone()
}

// Confirmed returns the last confirmed configuration, the one on disk.
func (m *Manager) Confirmed() Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.confirmed.Clone()
}

func (m *Manager) running() Config {
	if m.pending != nil {
		return m.pending.cfg
	}
	return m.confirmed
}

// Apply validates c and puts it on the system at once, on trial: unless
// Confirm(id) is called before deadline, the last confirmed configuration is
// put back. A change made while another is on trial replaces it; the id of
// the earlier one is then no longer valid and the rollback still goes to the
// last confirmed configuration. When applying fails, the configuration that
// was running is put back and the error returned.
func (m *Manager) Apply(ctx context.Context, c Config) (id string, deadline time.Time, err error) {
	if err := c.Validate(); err != nil {
		return "", time.Time{}, err
	}
	c = c.Clone()
	id, err = newID()
	if err != nil {
		return "", time.Time{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.running().Clone()
	if err := m.opts.Applier.Apply(ctx, c); err != nil {
		if rerr := m.opts.Applier.Apply(context.WithoutCancel(ctx), prev); rerr != nil {
			m.opts.Logger.Error("netconf: restoring the previous configuration after a failed change", "err", rerr)
			return "", time.Time{}, fmt.Errorf("netconf: apply: %w (restoring the previous configuration: %w)", err, rerr)
		}
		return "", time.Time{}, fmt.Errorf("netconf: apply: %w", err)
	}
	if m.pending != nil {
		m.pending.timer.Stop()
	}
	deadline = m.opts.Clock.Now().Add(m.opts.ConfirmTimeout)
	p := &pending{id: id, cfg: c, deadline: deadline}
	p.timer = m.opts.Timers.AfterFunc(m.opts.ConfirmTimeout, func() { m.expire(id) })
	m.pending = p
	m.opts.Logger.Info("netconf: change applied on trial", "id", id, "deadline", deadline)
	return id, deadline, nil
}

// Confirm makes the change id permanent: it is saved and will be applied at
// the next boot. It returns ErrExpired when the deadline has passed and
// ErrNoPending when there is no such change. When saving fails the change
// stays on trial and will be rolled back.
func (m *Manager) Confirm(id string) error {
	m.mu.Lock()
	p := m.pending
	if p == nil || p.id != id {
		m.mu.Unlock()
		return ErrNoPending
	}
	if !m.opts.Clock.Now().Before(p.deadline) {
		// The timer has not run yet but the time is up: a late
		// confirmation must not keep a change the rollback promised to
		// undo.
		m.mu.Unlock()
		m.expire(id)
		return ErrExpired
	}
	defer m.mu.Unlock()
	if err := Save(m.path, p.cfg); err != nil {
		return err
	}
	p.timer.Stop()
	m.confirmed = p.cfg
	m.pending = nil
	m.loadErr = nil
	m.opts.Logger.Info("netconf: change confirmed and saved", "id", id)
	return nil
}

// expire rolls back the change id if it is still pending.
func (m *Manager) expire(id string) {
	m.mu.Lock()
	p := m.pending
	if p == nil || p.id != id {
		m.mu.Unlock()
		return
	}
	m.pending = nil
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err := m.opts.Applier.Apply(ctx, m.confirmed.Clone())
	cancel()
	if err != nil {
		m.opts.Logger.Error("netconf: change not confirmed in time; rolling back failed", "id", id, "deadline", p.deadline, "err", err)
	} else {
		m.opts.Logger.Warn("netconf: change not confirmed in time, rolled back to the confirmed configuration", "id", id, "deadline", p.deadline)
	}
	m.mu.Unlock()
	if m.opts.OnRollback != nil {
		m.opts.OnRollback(id)
	}
}

// ResetToDefault is the recovery action: it cancels any change on trial,
// saves the default configuration (DHCP on every Ethernet port, the default
// hostname) durably and applies it. It needs no confirmation and doing it
// twice is the same as doing it once. When saving fails the default is
// applied anyway, so the device becomes reachable, and the error returned.
func (m *Manager) ResetToDefault(ctx context.Context) error {
	def, err := m.defaultConfig()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending != nil {
		m.pending.timer.Stop()
		m.pending = nil
	}
	saveErr := Save(m.path, def)
	if saveErr == nil {
		m.confirmed = def
		m.loadErr = nil
	}
	applyErr := m.opts.Applier.Apply(ctx, def.Clone())
	if applyErr != nil {
		applyErr = fmt.Errorf("netconf: apply default configuration: %w", applyErr)
	}
	m.opts.Logger.Warn("netconf: network reset to the default configuration", "interfaces", len(def.Interfaces))
	return errors.Join(saveErr, applyErr)
}

// PendingChange is a change on trial.
type PendingChange struct {
	ID       string    `json:"id"`
	Deadline time.Time `json:"deadline"`
}

// Status is the network as the API shows it.
type Status struct {
	Hostname   string            `json:"hostname"`
	Interfaces []InterfaceStatus `json:"interfaces"`
	DNS        []string          `json:"dns"`
	// Pending is set during a trial.
	Pending *PendingChange `json:"pending,omitempty"`
	// LoadError is set when the stored configuration was corrupt and the
	// default runs instead.
	LoadError string `json:"load_error,omitempty"`
}

// Status reports the running configuration and what the links look like.
func (m *Manager) Status(ctx context.Context) (Status, error) {
	m.mu.Lock()
	cur := m.running().Clone()
	var st Status
	if m.pending != nil {
		st.Pending = &PendingChange{ID: m.pending.id, Deadline: m.pending.deadline}
	}
	if m.loadErr != nil {
		st.LoadError = m.loadErr.Error()
	}
	m.mu.Unlock()
	ifs, err := m.opts.Applier.Status(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("netconf: status: %w", err)
	}
	st.Hostname, st.DNS, st.Interfaces = cur.Hostname, cur.DNS, ifs
	if st.Interfaces == nil {
		st.Interfaces = []InterfaceStatus{}
	}
	return st, nil
}

// Close stops a pending rollback timer and the applier's DHCP clients. A
// change on trial is neither confirmed nor rolled back: the next start
// applies the confirmed configuration.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending != nil {
		m.pending.timer.Stop()
		m.pending = nil
	}
	return m.opts.Applier.Close()
}

func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("netconf: pending id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
