//go:build linux

// Package ptytest provides real pseudo-terminal serial lines for the rescue
// console's tests: a port a console opens by path, the far end a test drives,
// and unplugging and plugging back in.
package ptytest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// Port is one end of a serial line: a pty whose slave is reached through a
// stable symlink (like /dev/serial/by-id/...), so it can vanish and come
// back under the same path, as a USB-serial adapter does. The test holds the
// master: what it writes arrives on the port, what the port writes is
// collected for Expect.
type Port struct {
	t    testing.TB
	path string

	mu      sync.Mutex
	cond    *sync.Cond
	master  *os.File
	slave   *os.File
	out     bytes.Buffer // everything read from the master since the last Mark
	gen     int          // incremented by each Plug
	onBytes func([]byte) // if set, receives what the port wrote instead of out
}

// NewPort creates a plugged-in port at dir/name.
func NewPort(t testing.TB, dir, name string) *Port {
	p := &Port{t: t, path: filepath.Join(dir, name)}
	p.cond = sync.NewCond(&p.mu)
	p.Plug()
	t.Cleanup(p.Unplug)
	return p
}

// Path is where a program opens the port.
func (p *Port) Path() string { return p.path }

// Plug creates a fresh pty pair and points the path at it. The slave starts in
// raw mode so nothing is echoed before the program under test opens it.
func (p *Port) Plug() {
	p.t.Helper()
	m, s, err := openPair()
	if err != nil {
		p.t.Fatalf("ptytest: open pty: %v", err)
	}
	if err := makeRaw(s); err != nil {
		p.t.Fatalf("ptytest: raw mode: %v", err)
	}
	tmp := p.path + ".new"
	_ = os.Remove(tmp)
	if err := os.Symlink(s.Name(), tmp); err != nil {
		p.t.Fatalf("ptytest: symlink: %v", err)
	}
	if err := os.Rename(tmp, p.path); err != nil {
		p.t.Fatalf("ptytest: symlink: %v", err)
	}
	p.mu.Lock()
	p.master, p.slave = m, s
	p.gen++
	p.mu.Unlock()
	go p.pump(m)
}

// Unplug removes the path and closes the pty: the program's reads fail, as
// when a cable is pulled or an adapter vanishes.
func (p *Port) Unplug() {
	_ = os.Remove(p.path)
	p.mu.Lock()
	m, s := p.master, p.slave
	p.master, p.slave = nil, nil
	p.mu.Unlock()
	if m != nil {
		_ = m.Close()
	}
	if s != nil {
		_ = s.Close()
	}
}

// Gen counts the Plug calls so far.
func (p *Port) Gen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

func (p *Port) pump(m *os.File) {
	buf := make([]byte, 4096)
	for {
		n, err := m.Read(buf)
		if n > 0 {
			p.mu.Lock()
			if f := p.onBytes; f != nil {
				p.mu.Unlock()
				f(buf[:n])
			} else {
				p.out.Write(buf[:n])
				p.cond.Broadcast()
				p.mu.Unlock()
			}
		}
		if err != nil {
			return
		}
	}
}

// Write sends b to the program, as if typed on the far end. Bytes written
// while unplugged are lost.
func (p *Port) Write(b []byte) (int, error) {
	p.mu.Lock()
	m := p.master
	p.mu.Unlock()
	if m == nil {
		return len(b), nil
	}
	return m.Write(b)
}

// Send writes s and fails the test on error.
func (p *Port) Send(s string) {
	p.t.Helper()
	if _, err := p.Write([]byte(s)); err != nil {
		p.t.Fatalf("ptytest: write %q: %v", s, err)
	}
}

// Expect waits until the program has written want and returns everything up
// to and including it, consuming it. limit only guards against a hang; the
// wait ends as soon as the text arrives.
func (p *Port) Expect(want string, limit time.Duration) string {
	p.t.Helper()
	got, ok := p.expect(want, limit)
	if !ok {
		p.t.Fatalf("ptytest: %q did not come within %v; got %q", want, limit, got)
	}
	return got
}

func (p *Port) expect(want string, limit time.Duration) (string, bool) {
	timer := time.AfterFunc(limit, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(limit)
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if i := strings.Index(p.out.String(), want); i >= 0 {
			s := string(p.out.Next(i + len(want)))
			return s, true
		}
		if !time.Now().Before(deadline) {
			return p.out.String(), false
		}
		p.cond.Wait()
	}
}

// Pending returns, without waiting, what the program wrote since the last
// Expect, and consumes it.
func (p *Port) Pending() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.out.String()
	p.out.Reset()
	return s
}

// Join relays everything between a and b in both directions, like a
// null-modem cable between a board's UART and a PC's USB-serial adapter. The
// relay follows Unplug and Plug on either side; bytes sent while a side is
// unplugged are lost.
func Join(a, b *Port) {
	a.mu.Lock()
	a.onBytes = func(d []byte) { _, _ = b.Write(d) }
	a.mu.Unlock()
	b.mu.Lock()
	b.onBytes = func(d []byte) { _, _ = a.Write(d) }
	b.mu.Unlock()
}

// openPair opens a pty pair whose master is non-blocking and so handled by
// Go's poller: only then does Close interrupt the pump's pending Read and
// really close the master, which hangs up the slave. creack/pty returns a
// blocking master, whose close would wait for the Read forever.
func openPair() (master, slave *os.File, err error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	fd, err := unix.Dup(int(m.Fd()))
	m.Close()
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		s.Close()
		return nil, nil, err
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "/dev/ptmx"), s, nil
}

func makeRaw(f *os.File) error {
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}
