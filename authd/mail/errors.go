package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"strings"
	"syscall"
)

// ErrorCode classifies a failed delivery for the user. The values are
// stable: the API returns them and the outbox stores them.
type ErrorCode string

// Error codes of SendError.
const (
	CodeNotConfigured     ErrorCode = "not_configured"     // no SMTP settings stored
	CodeInvalidMessage    ErrorCode = "invalid_message"    // refused before sending (bad address, header injection)
	CodeConnectionRefused ErrorCode = "connection_refused" // nothing listens at host:port
	CodeConnectionFailed  ErrorCode = "connection_failed"  // host unknown or unreachable
	CodeTimeout           ErrorCode = "timeout"            // no answer in time
	CodeTLSFailed         ErrorCode = "tls_failed"         // STARTTLS missing or refused, bad certificate, handshake failed
	CodeAuthFailed        ErrorCode = "auth_failed"        // credentials refused, or no safe mechanism offered
	CodeRejected          ErrorCode = "rejected"           // server refused the session, sender, recipient or content
	CodeFailed            ErrorCode = "failed"             // anything else, e.g. the connection broke
)

// SendError is the error of a failed delivery: a stable Code, the
// server's answer where there was one, and the cause for the log.
type SendError struct {
	Code ErrorCode
	// Reply is the server's answer, e.g. "535 5.7.8 Authentication failed",
	// cleaned of control characters; empty when the server said nothing.
	Reply string
	// Err is the cause. It never holds the password.
	Err error

	// recipientRefused is set for a permanent (5xx) refusal of RCPT TO:
	// retrying will not help.
	recipientRefused bool
}

func (e *SendError) Error() string {
	if e.Reply != "" {
		return fmt.Sprintf("mail: send: %s: %v (server said %q)", e.Code, e.Err, e.Reply)
	}
	return fmt.Sprintf("mail: send: %s: %v", e.Code, e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

// Message returns a fixed sentence for people, by Code, with the server's
// answer appended when there is one.
func (e *SendError) Message() string {
	msg := userMessages[e.Code]
	if errors.Is(e.Err, errNoSafeMechanism) {
		msg = "The mail server offers no way to log in that keeps the password secret on this connection: choose security starttls or tls."
	}
	if msg == "" {
		msg = userMessages[CodeFailed]
	}
	if e.Reply != "" {
		msg += " The server answered: " + e.Reply
	}
	return msg
}

var userMessages = map[ErrorCode]string{
	CodeNotConfigured:     "Mail is not set up on this device.",
	CodeInvalidMessage:    "The mail was refused before sending: an address or a name is not valid.",
	CodeConnectionRefused: "The mail server refused the connection: check host and port.",
	CodeConnectionFailed:  "The mail server could not be reached: check the host name and the network.",
	CodeTimeout:           "The mail server did not answer in time.",
	CodeTLSFailed:         "The secure connection to the mail server failed: check the security setting and the server's certificate (add its CA certificate if it uses a private one).",
	CodeAuthFailed:        "The mail server refused the user name or password.",
	CodeRejected:          "The mail server refused the mail.",
	CodeFailed:            "Sending the mail failed.",
}

// CodeOf returns the ErrorCode of err: the Code of a *SendError in its
// chain, CodeInvalidMessage for validation errors, CodeNotConfigured for
// ErrNotConfigured, else CodeFailed. nil gives "".
func CodeOf(err error) ErrorCode {
	if err == nil {
		return ""
	}
	var se *SendError
	if errors.As(err, &se) {
		return se.Code
	}
	switch {
	case errors.Is(err, ErrNotConfigured):
		return CodeNotConfigured
	case errors.Is(err, ErrHeaderInjection), errors.Is(err, ErrInvalidAddress), errors.Is(err, ErrInvalidMessage):
		return CodeInvalidMessage
	}
	return CodeFailed
}

// exchangeState records how far an SMTP exchange got, so an error can be
// put down to the right step.
type exchangeState struct {
	wrote   bool   // the client sent its first command: the greeting was fine
	tlsDone bool   // certificate verified
	stage   string // one of the stage constants
}

// Stages of an SMTP exchange.
const (
	stageConnect = "connect" // dial, greeting, EHLO, TLS
	stageAuth    = "auth"
	stageMail    = "mail"
	stageRcpt    = "rcpt"
	stageData    = "data"
)

// classify turns an error of an SMTP exchange into a *SendError.
func classify(err error, st *exchangeState, security string, ctx context.Context) *SendError {
	se := &SendError{Err: err, Code: CodeFailed}
	var tpe *textproto.Error
	hasReply := errors.As(err, &tpe)
	if hasReply {
		se.Reply = cleanReply(fmt.Sprintf("%03d %s", tpe.Code, tpe.Msg))
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled) || (ctx.Err() == context.Canceled && !hasReply):
		se.Code = CodeFailed
		se.Err = fmt.Errorf("%w (%w)", context.Canceled, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		se.Code = CodeTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		se.Code = CodeConnectionRefused
	case errors.As(err, &dnsErr), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.As(err, &opErr) && opErr.Op == "dial":
		se.Code = CodeConnectionFailed
	case isTLSError(err):
		se.Code = CodeTLSFailed
	case st.stage == stageAuth:
		se.Code = CodeAuthFailed
	case hasReply && !st.wrote:
		se.Code = CodeRejected // the greeting itself was a refusal
	case security != SecurityNone && !st.tlsDone && st.stage == stageConnect:
		// STARTTLS not offered or refused: go-mail reports these as plain errors.
		se.Code = CodeTLSFailed
	case hasReply:
		se.Code = CodeRejected
		se.recipientRefused = st.stage == stageRcpt && tpe.Code >= 500
	}
	return se
}

func isTLSError(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
		rhe tls.RecordHeaderError
		ae  tls.AlertError
	)
	return errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) ||
		errors.As(err, &rhe) || errors.As(err, &ae) || strings.Contains(err.Error(), "tls: ")
}

// cleanReply makes a server answer safe to show and store: one line, no
// control characters, at most 300 bytes.
func cleanReply(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r == '\n' {
			return ' '
		}
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}
