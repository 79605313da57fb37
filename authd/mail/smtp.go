package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"
)

// Sender delivers one Message. Errors of a failed delivery are (or wrap) a
// *SendError; see CodeOf.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Default timeouts of SMTPSender.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultSMTPTimeout = 30 * time.Second
)

// SMTPOptions tune an SMTPSender; zero values take the defaults.
type SMTPOptions struct {
	// DialTimeout bounds the TCP connect.
	DialTimeout time.Duration
	// Timeout bounds the whole exchange, from connect to the server's
	// answer to the message, whatever the server does.
	Timeout time.Duration
	// HELO is the name the device greets the server with; default: the
	// host name if it is a valid one (a fresh board may be called
	// "(none)", which strict servers refuse), else "localhost".
	HELO string
	// Logger gets one line per delivery (kind, masked recipient, outcome).
	Logger *slog.Logger
}

// SMTPSender is the real Sender: it reads the current settings for every
// mail, so new settings apply at once, and speaks SMTP through go-mail.
//
// Security: certificates are always verified against the system roots plus
// the settings' ca_pem. With security "starttls" the server must offer
// STARTTLS or nothing is sent. When a username is set, PLAIN or LOGIN are
// used only over TLS; without TLS only mechanisms that do not reveal the
// password (SCRAM, CRAM-MD5) are used, else the exchange stops with
// auth_failed.
type SMTPSender struct {
	src SettingsSource
	opt SMTPOptions
}

var _ Sender = (*SMTPSender)(nil)

// NewSMTPSender returns a sender that takes its settings from src.
func NewSMTPSender(src SettingsSource, opt SMTPOptions) *SMTPSender {
	if opt.DialTimeout <= 0 {
		opt.DialTimeout = DefaultDialTimeout
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultSMTPTimeout
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.HELO == "" {
		opt.HELO = "localhost"
		if h, err := os.Hostname(); err == nil && checkHostname(h) == nil {
			opt.HELO = h
		}
	}
	return &SMTPSender{src: src, opt: opt}
}

// Send delivers m.
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	_, err := s.SendReply(ctx, m)
	return err
}

// SendReply delivers m and returns the server's answer to the message,
// e.g. "250 2.0.0 Ok: queued as 4XyZ".
func (s *SMTPSender) SendReply(ctx context.Context, m Message) (string, error) {
	reply, err := s.send(ctx, m)
	log := s.opt.Logger.With("kind", string(m.Kind), "to", MaskAddress(m.To))
	if err != nil {
		// The server's answer may repeat the recipient: mask it there too.
		log.Warn("mail: delivery failed", "code", string(CodeOf(err)),
			"err", strings.ReplaceAll(err.Error(), m.To, MaskAddress(m.To)))
		return "", err
	}
	log.Info("mail: delivered", "reply", reply)
	return reply, nil
}

func (s *SMTPSender) send(ctx context.Context, m Message) (string, error) {
	if err := m.Validate(); err != nil {
		return "", &SendError{Code: CodeInvalidMessage, Err: err}
	}
	st, err := s.src.Current()
	if err != nil {
		return "", &SendError{Code: CodeNotConfigured, Err: err}
	}
	if err := st.Validate(); err != nil {
		return "", &SendError{Code: CodeNotConfigured, Err: err}
	}
	msg, err := buildMsg(st, m)
	if err != nil {
		return "", &SendError{Code: CodeInvalidMessage, Err: err}
	}

	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	state := &exchangeState{stage: stageConnect}
	tlsCfg, err := tlsConfig(st, state)
	if err != nil {
		return "", &SendError{Code: CodeTLSFailed, Err: err}
	}

	var conns []*deadlineConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: s.opt.DialTimeout}
		c, err := d.DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		dc := newDeadlineConn(c, deadline, state)
		conns = append(conns, dc)
		stop := context.AfterFunc(ctx, dc.abort)
		dc.stop = stop
		if st.Security != SecurityTLS {
			return dc, nil
		}
		// Implicit TLS: go-mail does not wrap a custom dialer's connection,
		// so the handshake happens here, on the deadline-bound connection.
		tc := tls.Client(dc, tlsCfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			return nil, err
		}
		return tc, nil
	}
	opts := []gomail.Option{
		gomail.WithPort(st.Port),
		// go-mail sets this as the deadline of each step; deadlineConn caps
		// every deadline at the end of the whole exchange.
		gomail.WithTimeout(s.opt.Timeout),
		gomail.WithDialContextFunc(dial),
		gomail.WithTLSConfig(tlsCfg),
	}
	switch st.Security {
	case SecurityStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default: // none, or tls done by the dialer
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if st.Username != "" {
		opts = append(opts, gomail.WithSMTPAuthCustom(&safeAuth{user: st.Username, pass: st.Password, st: state}))
	}
	opts = append(opts, gomail.WithHELO(s.opt.HELO))
	client, err := gomail.NewClient(strings.TrimSuffix(st.Host, "."), opts...)
	if err != nil {
		return "", &SendError{Code: CodeFailed, Err: fmt.Errorf("set up client: %w", err)}
	}
	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return "", classify(err, state, st.Security, ctx)
	}
	defer sc.Close()

	state.stage = stageMail
	if err := sc.Mail(st.From); err != nil {
		return "", classify(fmt.Errorf("MAIL FROM: %w", err), state, st.Security, ctx)
	}
	state.stage = stageRcpt
	if err := sc.Rcpt(m.To); err != nil {
		return "", classify(fmt.Errorf("RCPT TO: %w", err), state, st.Security, ctx)
	}
	state.stage = stageData
	w, err := sc.Data()
	if err != nil {
		return "", classify(fmt.Errorf("DATA: %w", err), state, st.Security, ctx)
	}
	if _, err := msg.WriteTo(w); err != nil {
		return "", classify(fmt.Errorf("write message: %w", err), state, st.Security, ctx)
	}
	if err := w.Close(); err != nil {
		return "", classify(fmt.Errorf("end of message: %w", err), state, st.Security, ctx)
	}
	reply := "250"
	if dc, ok := w.(*gosmtp.DataCloser); ok && dc.ServerResponse() != "" {
		reply = cleanReply("250 " + dc.ServerResponse())
	}
	// The server has taken the message; a failing QUIT changes nothing.
	_ = sc.Quit()
	return reply, nil
}

// buildMsg turns m into a go-mail message: text/plain UTF-8 in
// quoted-printable, with Date, Message-ID, From, To, Subject and
// Auto-Submitted (RFC 3834, so vacation responders stay quiet).
func buildMsg(st Settings, m Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg(gomail.WithCharset(gomail.CharsetUTF8), gomail.WithEncoding(gomail.EncodingQP),
		gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(&netmail.Address{Name: m.FromName, Address: st.From})
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(m.Date)
	msg.SetMessageIDWithValue(m.ID + "@" + st.From[strings.LastIndexByte(st.From, '@')+1:])
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.Body)
	return msg, nil
}

// tlsConfig verifies the server against the system roots plus ca_pem and
// records in state that verification passed.
func tlsConfig(st Settings, state *exchangeState) (*tls.Config, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	extra, err := parseCAPEM(st.CAPEM)
	if err != nil {
		return nil, fmt.Errorf("ca_pem: %w", err)
	}
	for _, c := range extra {
		roots.AddCert(c)
	}
	return &tls.Config{
		ServerName: strings.TrimSuffix(st.Host, "."),
		RootCAs:    roots,
		MinVersion: tls.VersionTLS12,
		// Called only after the chain and the name were verified.
		VerifyConnection: func(tls.ConnectionState) error {
			state.tlsDone = true
			return nil
		},
	}, nil
}

// safeAuth picks the AUTH mechanism from what the server offers and never
// sends the password in the clear: PLAIN and LOGIN only over TLS.
type safeAuth struct {
	user, pass string
	st         *exchangeState
	inner      gosmtp.Auth
}

var _ gosmtp.Auth = (*safeAuth)(nil)

// errNoSafeMechanism is the cause when no acceptable mechanism is offered.
var errNoSafeMechanism = errors.New("the server offers no authentication mechanism usable on this connection")

func (a *safeAuth) Start(si *gosmtp.ServerInfo) (string, []byte, error) {
	a.st.stage = stageAuth
	has := func(m string) bool { return slices.Contains(si.Auth, m) }
	switch {
	case si.TLS && has("PLAIN"):
		a.inner = gosmtp.PlainAuth("", a.user, a.pass, si.Name, false)
	case si.TLS && has("LOGIN"):
		a.inner = gosmtp.LoginAuth(a.user, a.pass, si.Name, false)
	case has("SCRAM-SHA-256"):
		a.inner = gosmtp.ScramSHA256Auth(a.user, a.pass)
	case has("SCRAM-SHA-1"):
		a.inner = gosmtp.ScramSHA1Auth(a.user, a.pass)
	case has("CRAM-MD5"):
		a.inner = gosmtp.CRAMMD5Auth(a.user, a.pass)
	default:
		if !si.TLS {
			return "", nil, fmt.Errorf("%w without TLS (offered: %q)", errNoSafeMechanism, si.Auth)
		}
		return "", nil, fmt.Errorf("%w (offered: %q)", errNoSafeMechanism, si.Auth)
	}
	return a.inner.Start(si)
}

func (a *safeAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	return a.inner.Next(fromServer, more)
}

// maxExchangeRead bounds what one exchange reads from the server: SMTP
// replies are lines of a few hundred bytes, and the reader below them
// keeps a line whole however long it is, so a server sending one endless
// line (or anyone before STARTTLS) filled memory until authd was killed.
const maxExchangeRead = 1 << 20

// errTooMuchRead ends an exchange whose server sent more than
// maxExchangeRead bytes.
var errTooMuchRead = fmt.Errorf("mail: the server sent more than %d KiB in one exchange", maxExchangeRead>>10)

// deadlineConn caps every deadline at the end of the whole exchange and
// what is read at maxExchangeRead, and can be aborted when the caller's
// context ends; go-mail itself only knows per-step timeouts.
type deadlineConn struct {
	net.Conn
	limit time.Time
	st    *exchangeState
	stop  func() bool

	mu      sync.Mutex
	aborted bool
	read    int
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	left := maxExchangeRead - c.read
	c.mu.Unlock()
	if left <= 0 {
		return 0, errTooMuchRead
	}
	n, err := c.Conn.Read(p[:min(len(p), left)])
	c.mu.Lock()
	c.read += n
	c.mu.Unlock()
	return n, err
}

func newDeadlineConn(c net.Conn, limit time.Time, st *exchangeState) *deadlineConn {
	dc := &deadlineConn{Conn: c, limit: limit, st: st}
	_ = c.SetDeadline(limit)
	return dc
}

var longAgo = time.Unix(1, 0)

func (c *deadlineConn) clamp(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		return longAgo
	}
	if t.IsZero() || t.After(c.limit) {
		return c.limit
	}
	return t
}

func (c *deadlineConn) abort() {
	c.mu.Lock()
	c.aborted = true
	c.mu.Unlock()
	_ = c.Conn.SetDeadline(longAgo)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.st.wrote = true
	return c.Conn.Write(p)
}

func (c *deadlineConn) SetDeadline(t time.Time) error     { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *deadlineConn) SetReadDeadline(t time.Time) error { return c.Conn.SetReadDeadline(c.clamp(t)) }
func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.clamp(t))
}

func (c *deadlineConn) Close() error {
	if c.stop != nil {
		c.stop()
	}
	return c.Conn.Close()
}
