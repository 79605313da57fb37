// Package portconf owns the ports authd serves on (HTTPS, and plain HTTP
// for redirects) and changes them the way the network settings change:
// the new ports are opened beside the old ones, and kept only if the owner
// confirms from the new HTTPS port before the deadline, so a wrong port
// cannot lock the owner out.
package portconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/rknas/firmware/authd/atomicfile"
	"github.com/rknas/firmware/authd/session"
)

// File is where confirmed ports are kept, in the state directory.
const File = "ports.json"

// Errors of Apply and Confirm.
var (
	ErrInvalid   = errors.New("portconf: invalid ports")
	ErrInUse     = errors.New("portconf: port in use")
	ErrNoPending = errors.New("portconf: no such change pending")
	// ErrWrongPort: the confirmation must come through the new HTTPS
	// port, which proves it reachable.
	ErrWrongPort = errors.New("portconf: confirm through the new HTTPS port")
)

// Ports are the ports served on. HTTP 0 means no plain-HTTP listener.
type Ports struct {
	HTTPS int `json:"https_port"`
	HTTP  int `json:"http_port"`
}

// Validate names the first bad field.
func (p Ports) Validate() error {
	switch {
	case p.HTTPS < 1 || p.HTTPS > 65535:
		return fmt.Errorf("%w: https_port %d: 1 to 65535", ErrInvalid, p.HTTPS)
	case p.HTTP < 0 || p.HTTP > 65535:
		return fmt.Errorf("%w: http_port %d: 1 to 65535, or 0 for none", ErrInvalid, p.HTTP)
	case p.HTTP == p.HTTPS:
		return fmt.Errorf("%w: http_port and https_port are both %d", ErrInvalid, p.HTTP)
	}
	return nil
}

// Pending is a change on trial.
type Pending struct {
	ID       string    `json:"id"`
	Ports    Ports     `json:"ports"`
	Deadline time.Time `json:"deadline"`
}

// Server serves one listener until closed; authd's http.Server does.
type Server interface {
	Close() error
}

// Serve starts serving ln: HTTPS when secure, else the redirects to
// HTTPS (whose port they take from Manager.Current at each request).
type Serve func(ln net.Listener, secure bool) Server

// Options configure a Manager.
type Options struct {
	// Dir is the state directory holding File.
	Dir string
	// Host is the address listened on ("" for every address).
	Host string
	// Default are the ports when none are stored. HTTPS port 0 takes a
	// free port (for tests); Current then reports the one taken.
	Default Ports
	// ConfirmTimeout is how long a change waits for its confirmation.
	ConfirmTimeout time.Duration
	Serve          Serve
	Log            *slog.Logger
}

// Manager serves on the current ports and changes them.
type Manager struct {
	opts Options

	mu      sync.Mutex
	current Ports
	servers map[int]Server // by port, of current
	pending *Pending
	trial   map[int]Server // by port, opened for pending
	timer   *time.Timer
}

// New loads the stored ports (the defaults when there are none or they do
// not load) and starts serving on them.
func New(opts Options) (*Manager, error) {
	if d := opts.Default; d.HTTPS < 0 || d.HTTPS > 65535 || d.HTTP < 0 || d.HTTP > 65535 || (d.HTTP == d.HTTPS && d.HTTP != 0) {
		// 0 for HTTPS is allowed here only: a free port, for tests.
		return nil, fmt.Errorf("%w: default ports %d and %d", ErrInvalid, d.HTTPS, d.HTTP)
	}
	m := &Manager{opts: opts, current: opts.Default}
	if p, err := Load(filepath.Join(opts.Dir, File)); err == nil {
		m.current = p
	} else if !errors.Is(err, os.ErrNotExist) {
		opts.Log.Error("stored ports unreadable; serving on the defaults", "err", err, "https_port", opts.Default.HTTPS)
	}
	servers, err := m.listen(m.current.HTTPS, m.current.HTTP)
	if err != nil && m.current != opts.Default {
		opts.Log.Error("stored ports cannot be opened; serving on the defaults", "err", err)
		m.current = opts.Default
		servers, err = m.listen(m.current.HTTPS, m.current.HTTP)
	}
	if err != nil {
		return nil, err
	}
	m.servers = servers
	m.current = actual(servers, m.current)
	return m, nil
}

// actual replaces the ports of p that were 0 by the ones servers took.
func actual(servers map[int]Server, p Ports) Ports {
	for port, s := range servers {
		if ps, ok := s.(portServer); ok && ps.secure {
			p.HTTPS = port
		} else if ok {
			p.HTTP = port
		}
	}
	return p
}

// portServer remembers which kind of listener a server serves.
type portServer struct {
	Server
	secure bool
}

// Load reads a ports file.
func Load(path string) (Ports, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Ports{}, err
	}
	var p Ports
	if err := json.Unmarshal(raw, &p); err != nil {
		return Ports{}, fmt.Errorf("portconf: %s: %w", path, err)
	}
	if err := p.Validate(); err != nil {
		return Ports{}, fmt.Errorf("portconf: %s: %w", path, err)
	}
	return p, nil
}

// listen opens and serves an HTTPS port (0 at start: a free one) and a
// plain-HTTP port (0: none); all or none.
func (m *Manager) listen(https, http int) (map[int]Server, error) {
	type want struct {
		port   int
		secure bool
	}
	wants := []want{{https, true}}
	if http != 0 {
		wants = append(wants, want{http, false})
	}
	var lns []net.Listener
	for _, w := range wants {
		ln, err := net.Listen("tcp", net.JoinHostPort(m.opts.Host, strconv.Itoa(w.port)))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("%w: %d: %v", ErrInUse, w.port, err)
		}
		lns = append(lns, ln)
	}
	servers := map[int]Server{}
	for i, w := range wants {
		servers[lns[i].Addr().(*net.TCPAddr).Port] = portServer{Server: m.opts.Serve(lns[i], w.secure), secure: w.secure}
	}
	return servers, nil
}

// Current returns the confirmed ports and the change on trial, if any.
func (m *Manager) Current() (Ports, *Pending) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending == nil {
		return m.current, nil
	}
	p := *m.pending
	return m.current, &p
}

// Apply opens p beside the current ports. It is kept if Confirm is called
// through its HTTPS port before the deadline; otherwise the new ports are
// closed again. A plain-HTTP port that stays the same is served on as it
// is, and redirects to the new HTTPS port once confirmed.
func (m *Manager) Apply(p Ports) (Pending, error) {
	if err := p.Validate(); err != nil {
		return Pending{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case p == m.current:
		return Pending{}, fmt.Errorf("%w: these are the ports in use", ErrInvalid)
	case p.HTTPS == m.current.HTTPS || p.HTTPS == m.current.HTTP:
		return Pending{}, fmt.Errorf("%w: https_port %d is in use already: pick a free port, so the current one keeps working until the new one is confirmed", ErrInvalid, p.HTTPS)
	case p.HTTP != 0 && p.HTTP == m.current.HTTPS:
		return Pending{}, fmt.Errorf("%w: http_port %d is the HTTPS port in use: change it in two steps", ErrInvalid, p.HTTP)
	}
	m.dropTrial()
	newHTTP := p.HTTP
	if newHTTP == m.current.HTTP {
		newHTTP = 0 // already served
	}
	trial, err := m.listen(p.HTTPS, newHTTP)
	if err != nil {
		return Pending{}, err
	}
	id, err := session.NewToken()
	if err != nil {
		closeAll(trial)
		return Pending{}, err
	}
	pend := Pending{ID: id[:16], Ports: p, Deadline: time.Now().Add(m.opts.ConfirmTimeout)}
	m.pending, m.trial = &pend, trial
	m.timer = time.AfterFunc(m.opts.ConfirmTimeout, func() { m.expire(pend.ID) })
	m.opts.Log.Warn("ports on trial", "id", pend.ID, "https_port", p.HTTPS, "http_port", p.HTTP, "deadline", pend.Deadline)
	return pend, nil
}

// Confirm keeps the change id, which must arrive through the new HTTPS
// port viaPort: the new ports are saved and the old ones closed.
func (m *Manager) Confirm(id string, viaPort int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pending
	switch {
	case p == nil || p.ID != id:
		return ErrNoPending
	case viaPort != p.Ports.HTTPS:
		return fmt.Errorf("%w (%d), not port %d", ErrWrongPort, p.Ports.HTTPS, viaPort)
	case !time.Now().Before(p.Deadline):
		m.dropTrial()
		return ErrNoPending
	}
	if err := Save(filepath.Join(m.opts.Dir, File), p.Ports); err != nil {
		return err
	}
	m.timer.Stop()
	kept := m.trial
	for port, srv := range m.servers {
		if port == p.Ports.HTTP {
			kept[port] = srv
		} else {
			srv.Close()
		}
	}
	m.servers, m.trial = kept, nil
	m.current, m.pending = p.Ports, nil
	m.opts.Log.Warn("ports confirmed and saved", "https_port", p.Ports.HTTPS, "http_port", p.Ports.HTTP)
	return nil
}

// expire rolls the trial id back if it is still pending.
func (m *Manager) expire(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending == nil || m.pending.ID != id {
		return
	}
	m.opts.Log.Warn("ports not confirmed in time; the new ports are closed", "id", id)
	m.dropTrial()
}

func (m *Manager) dropTrial() {
	if m.timer != nil {
		m.timer.Stop()
	}
	closeAll(m.trial)
	m.trial, m.pending = nil, nil
}

func closeAll(servers map[int]Server) {
	for _, s := range servers {
		s.Close()
	}
}

// Close stops serving.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropTrial()
	closeAll(m.servers)
	m.servers = nil
}

// Save writes p durably.
func Save(path string, p Ports) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("portconf: save: %w", err)
	}
	return nil
}
