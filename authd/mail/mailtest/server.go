// Package mailtest holds test doubles for package mail: a real SMTP server
// on loopback (STARTTLS, implicit TLS, AUTH PLAIN, failures on demand) and
// a fake Sender.
package mailtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mode is how the test server speaks TLS.
type Mode int

// Server modes.
const (
	ModeStartTLS    Mode = iota // plain greeting, STARTTLS offered, AUTH only after it
	ModeImplicitTLS             // TLS from the first byte
	ModePlain                   // no TLS at all; AUTH offered in the clear
)

// Failure makes the server misbehave on demand.
type Failure int

// Failures.
const (
	FailNone      Failure = iota
	FailAuth              // every AUTH is refused with 535
	FailSender            // MAIL FROM is refused with 553
	FailRecipient         // RCPT TO is refused with 550
	FailData              // the message is refused with 554 after DATA
	StallMail             // MAIL FROM never gets an answer (until Close)
	TempFailData          // the message is refused with 451
)

// Options configure a test server.
type Options struct {
	Mode Mode
	// Addr to listen on; default "127.0.0.1:0".
	Addr string
	// Username and Password, when Username is set, are required through
	// AUTH PLAIN before MAIL FROM.
	Username, Password string
	// CA signs the server certificate (for 127.0.0.1 and localhost);
	// default: a new CA, see Server.CA.
	CA *CA
}

// Received is a message the server accepted.
type Received struct {
	From string
	To   []string
	Data []byte // as sent, CRLF line ends
	User string // the authenticated user, if any
	TLS  bool   // whether the session was encrypted
}

// Server is a real SMTP server (github.com/emersion/go-smtp) on loopback
// that stores what it receives.
type Server struct {
	opt      Options
	ca       *CA
	srv      *smtp.Server
	ln       net.Listener
	release  chan struct{}
	done     chan struct{}
	closeOne sync.Once

	mu        sync.Mutex
	failure   Failure
	received  []Received
	authTries int
	changed   chan struct{} // closed and replaced on every new message
}

// Start starts a server and returns once it listens.
func Start(opt Options) (*Server, error) {
	if opt.Addr == "" {
		opt.Addr = "127.0.0.1:0"
	}
	ca := opt.CA
	if ca == nil {
		var err error
		if ca, err = NewCA("mailtest CA"); err != nil {
			return nil, err
		}
	}
	s := &Server{opt: opt, ca: ca, release: make(chan struct{}), done: make(chan struct{}), changed: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &session{s: s, tls: isTLS}, nil
	}))
	srv.Domain = "mailtest.localhost"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 1 << 20
	srv.AllowInsecureAuth = opt.Mode == ModePlain
	if opt.Mode != ModePlain {
		cert, err := ca.ServerCert("127.0.0.1", "localhost")
		if err != nil {
			return nil, err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", opt.Addr)
	if err != nil {
		return nil, fmt.Errorf("mailtest: listen %s: %w", opt.Addr, err)
	}
	if opt.Mode == ModeImplicitTLS {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	s.srv, s.ln = srv, ln
	go func() {
		defer close(s.done)
		_ = srv.Serve(ln)
	}()
	return s, nil
}

// Addr returns "127.0.0.1:port".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Host returns the listening IP address.
func (s *Server) Host() string { h, _, _ := net.SplitHostPort(s.Addr()); return h }

// Port returns the listening port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr())
	n, _ := strconv.Atoi(p)
	return n
}

// CA returns the CA that signed the server's certificate.
func (s *Server) CA() *CA { return s.ca }

// SetFailure makes the server fail from now on (FailNone: behave).
func (s *Server) SetFailure(f Failure) {
	s.mu.Lock()
	s.failure = f
	s.mu.Unlock()
}

func (s *Server) currentFailure() Failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failure
}

// Messages returns the messages received so far.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.received...)
}

// AuthAttempts returns how many AUTH commands the server has seen.
func (s *Server) AuthAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authTries
}

// WaitForMessages waits until at least n messages arrived or ctx ends.
func (s *Server) WaitForMessages(ctx context.Context, n int) ([]Received, error) {
	for {
		s.mu.Lock()
		got, ch := append([]Received(nil), s.received...), s.changed
		s.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return got, fmt.Errorf("mailtest: %d of %d messages before: %w", len(got), n, ctx.Err())
		}
	}
}

// Close stops the server, ends stalled sessions and waits for it.
func (s *Server) Close() error {
	var err error
	s.closeOne.Do(func() {
		close(s.release)
		err = s.srv.Close()
		// go-smtp closes only listeners its Serve registered already; a
		// Close right after Start could come first.
		_ = s.ln.Close()
		<-s.done
	})
	return err
}

type session struct {
	s    *Server
	tls  bool
	user string
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (se *session) AuthMechanisms() []string {
	if se.s.opt.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	se.s.mu.Lock()
	se.s.authTries++
	se.s.mu.Unlock()
	if mech != sasl.Plain || se.s.opt.Username == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if se.s.currentFailure() == FailAuth || username != se.s.opt.Username || password != se.s.opt.Password ||
			(identity != "" && identity != username) {
			return smtp.ErrAuthFailed
		}
		se.user = username
		return nil
	}), nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if se.s.opt.Username != "" && se.user == "" {
		return smtp.ErrAuthRequired
	}
	switch se.s.currentFailure() {
	case StallMail:
		<-se.s.release
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Shutting down"}
	case FailSender:
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender address rejected: not owned by user"}
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if se.s.currentFailure() == FailRecipient {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + ">: Recipient address rejected: User unknown"}
	}
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	switch se.s.currentFailure() {
	case FailData:
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected as spam"}
	case TempFailData:
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	}
	s := se.s
	s.mu.Lock()
	s.received = append(s.received, Received{From: se.from, To: se.to, Data: data, User: se.user, TLS: se.tls})
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return nil
}

func (se *session) Reset() { se.from, se.to = "", nil }

func (se *session) Logout() error { return nil }
