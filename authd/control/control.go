// Package control is authd's local control socket: a small HTTP API on a
// Unix socket, readable and writable by root only, through which the rescue
// console on the serial port reaches the state authd owns (the recovery, the
// network reset, the audit log, the RESET button) while authd runs.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultPath is where authd listens on the firmware.
const DefaultPath = "/run/authd/control.sock"

// Backend is what the socket exposes.
type Backend interface {
	Status(ctx context.Context) (Status, error)
	// ResetAdmin runs the recovery and says what it did, for the operator.
	ResetAdmin(ctx context.Context) (string, error)
	ResetNetwork(ctx context.Context) error
	// NewCertificate makes a new device certificate and returns its
	// SHA-256 fingerprint.
	NewCertificate(ctx context.Context) (string, error)
	Audit(ctx context.Context, n int) ([]string, error)
}

// Status is authd's state as the console shows it.
type Status struct {
	Version string `json:"version"`
	Board   string `json:"board"`
	Clock   string `json:"clock"`
	Button  string `json:"button"`
	// Certificate is the SHA-256 fingerprint of the HTTPS certificate
	// being served; empty when authd serves plain HTTP.
	Certificate string `json:"certificate,omitempty"`
	// HTTPSPort is the port the login pages are served on over HTTPS; 0
	// when authd serves plain HTTP.
	HTTPSPort int `json:"https_port,omitempty"`
	// NetworkManaged says whether authd owns the network configuration
	// (and so can put it back to DHCP).
	NetworkManaged bool `json:"network_managed"`
}

// Presses fans out RESET button presses to waiters: authd's watcher calls
// Pressed on every confirmed press.
type Presses struct {
	mu      sync.Mutex
	waiters map[chan struct{}]struct{}
}

// Pressed wakes every waiter.
func (p *Presses) Pressed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ch := range p.waiters {
		close(ch)
		delete(p.waiters, ch)
	}
}

// Wait returns true if a press starts within timeout.
func (p *Presses) Wait(ctx context.Context, timeout time.Duration) bool {
	ch := make(chan struct{})
	p.mu.Lock()
	if p.waiters == nil {
		p.waiters = map[chan struct{}]struct{}{}
	}
	p.waiters[ch] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.waiters, ch)
		p.mu.Unlock()
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// PrivateDir makes dir (and its parents) if missing and sets it to 0700
// whatever it was: MkdirAll leaves an existing, looser directory as it is.
func PrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("make %s private: %w", dir, err)
		}
	}
	return nil
}

// Server serves the control socket.
type Server struct {
	b       Backend
	presses *Presses // nil: the board has no button authd watches
	log     *slog.Logger
	hs      *http.Server
	ln      net.Listener
}

// Listen creates the socket at path (its directory 0700, the socket 0600)
// and serves it until Close.
func Listen(path string, b Backend, presses *Presses, log *slog.Logger) (*Server, error) {
	// The directory, made or tightened to 0700, is what keeps others out:
	// the socket is made in it and only then set to 0600. (Changing the
	// umask instead would race with every file the process creates
	// meanwhile.)
	if err := PrivateDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	// A socket left by a killed authd would make Listen fail.
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: chmod %s: %w", path, err)
	}
	s := &Server{b: b, presses: presses, log: log, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", s.status)
	mux.HandleFunc("POST /reset-admin", s.told(b.ResetAdmin))
	mux.HandleFunc("POST /reset-network", s.action(b.ResetNetwork, "the network is back to DHCP on every Ethernet port"))
	mux.HandleFunc("POST /new-certificate", s.newCertificate)
	mux.HandleFunc("GET /audit", s.audit)
	mux.HandleFunc("POST /wait-press", s.waitPress)
	s.hs = &http.Server{Handler: s.peerCheck(mux), ReadHeaderTimeout: 5 * time.Second, ConnContext: peerContext}
	go func() {
		if err := s.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("control socket stopped", "err", err)
		}
	}()
	return s, nil
}

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.hs.Shutdown(ctx)
}

// peerCheck admits only root or authd's own user: the file mode already
// does, this makes it hold even if the mode is changed.
func (s *Server) peerCheck(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uid, ok := r.Context().Value(peerKey{}).(int)
		if !ok || (uid != 0 && uid != os.Getuid()) {
			writeJSON(w, http.StatusForbidden, answer{Error: "forbidden: only root or authd's own user may use the control socket"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

type peerKey struct{}

// peerContext records the connecting process's user ID (SO_PEERCRED).
func peerContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) { cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil || credErr != nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, int(cred.Uid))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type answer struct {
	Message string   `json:"message,omitempty"`
	Error   string   `json:"error,omitempty"`
	Lines   []string `json:"lines,omitempty"`
	Pressed bool     `json:"pressed,omitempty"`
	Status  *Status  `json:"status,omitempty"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.b.Status(r.Context())
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, answer{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, answer{Status: &st})
}

func (s *Server) action(fn func(context.Context) error, done string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(r.Context()); err != nil {
			s.log.Error("control action failed", "path", r.URL.Path, "err", err)
			writeJSON(w, http.StatusInternalServerError, answer{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, answer{Message: done})
	}
}

// told answers with what fn says it did.
func (s *Server) told(fn func(context.Context) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		msg, err := fn(r.Context())
		if err != nil {
			s.log.Error("control action failed", "path", r.URL.Path, "err", err)
			writeJSON(w, http.StatusInternalServerError, answer{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, answer{Message: msg})
	}
}

func (s *Server) newCertificate(w http.ResponseWriter, r *http.Request) {
	fp, err := s.b.NewCertificate(r.Context())
	if err != nil {
		s.log.Error("control action failed", "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, answer{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, answer{Message: "a new device certificate is served; browsers warn again: check that they show SHA-256 " + fp})
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n < 1 || n > 1000 {
		writeJSON(w, http.StatusBadRequest, answer{Error: "n: a number from 1 to 1000"})
		return
	}
	lines, err := s.b.Audit(r.Context(), n)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, answer{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, answer{Lines: lines})
}

func (s *Server) waitPress(w http.ResponseWriter, r *http.Request) {
	if s.presses == nil {
		writeJSON(w, http.StatusConflict, answer{Error: "this board has no button authd watches"})
		return
	}
	d, err := time.ParseDuration(r.URL.Query().Get("timeout"))
	if err != nil || d <= 0 || d > 5*time.Minute {
		writeJSON(w, http.StatusBadRequest, answer{Error: "timeout: a duration up to 5m"})
		return
	}
	writeJSON(w, http.StatusOK, answer{Pressed: s.presses.Wait(r.Context(), d)})
}

// Client talks to the control socket.
type Client struct {
	hc *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{hc: &http.Client{Transport: tr}}
}

// ErrUnreachable is returned when authd is not answering on the socket.
var ErrUnreachable = errors.New("control: authd is not answering on its control socket")

func (c *Client) do(ctx context.Context, method, path string) (answer, error) {
	var a answer
	req, err := http.NewRequestWithContext(ctx, method, "http://authd"+path, nil)
	if err != nil {
		return a, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return a, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return a, fmt.Errorf("control: %s %s: bad answer: %w", method, path, err)
	}
	if a.Error != "" {
		return a, fmt.Errorf("control: %s", a.Error)
	}
	return a, nil
}

// Status asks authd for its status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	a, err := c.do(ctx, "GET", "/status")
	if err != nil || a.Status == nil {
		return Status{}, err
	}
	return *a.Status, nil
}

// ResetAdmin runs the recovery for the admin and the network.
func (c *Client) ResetAdmin(ctx context.Context) (string, error) {
	a, err := c.do(ctx, "POST", "/reset-admin")
	return a.Message, err
}

// ResetNetwork puts the network back to DHCP.
func (c *Client) ResetNetwork(ctx context.Context) (string, error) {
	a, err := c.do(ctx, "POST", "/reset-network")
	return a.Message, err
}

// NewCertificate makes authd serve a new device certificate.
func (c *Client) NewCertificate(ctx context.Context) (string, error) {
	a, err := c.do(ctx, "POST", "/new-certificate")
	return a.Message, err
}

// Audit returns the n newest audit lines, oldest first.
func (c *Client) Audit(ctx context.Context, n int) ([]string, error) {
	a, err := c.do(ctx, "GET", "/audit?n="+strconv.Itoa(n))
	return a.Lines, err
}

// WaitPress waits up to timeout for a RESET press that starts now.
func (c *Client) WaitPress(ctx context.Context, timeout time.Duration) (bool, error) {
	a, err := c.do(ctx, "POST", "/wait-press?timeout="+timeout.String())
	return a.Pressed, err
}
