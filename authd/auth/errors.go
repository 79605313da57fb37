package auth

import (
	"errors"
	"fmt"
	"time"
)

// Stable error codes of the API. Clients may rely on them; messages may
// change.
const (
	CodeInvalidCredentials     = "invalid_credentials"
	CodeInvalidCode            = "invalid_code"
	CodeCodeReused             = "code_reused"
	CodeChallengeExpired       = "challenge_expired"
	CodeLocked                 = "locked"
	CodePasswordChangeRequired = "password_change_required"
	CodeEnrollRequired         = "enroll_required"
	CodeUnauthorized           = "unauthorized"
	CodeForbidden              = "forbidden"
	CodeNotFound               = "not_found"
	CodeBadRequest             = "bad_request"
	CodeConflict               = "conflict"
	CodeBusy                   = "busy"
	CodeClockNotSynchronized   = "clock_not_synchronized"
	CodeInternal               = "internal"
)

// Error is an error a user sees: a stable code and a fixed, clear message.
// The cause, if any, is for the log only.
type Error struct {
	Code    string
	Message string
	// RetryAfter is set for locked and busy.
	RetryAfter time.Duration
	cause      error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.cause)
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.cause }

func newErr(code, msg string) *Error { return &Error{Code: code, Message: msg} }

// AsError returns err as an *Error, mapping anything else to internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error; see the device log", cause: err}
}

func errBadRequest(format string, args ...any) *Error {
	return newErr(CodeBadRequest, fmt.Sprintf(format, args...))
}

var (
	errInvalidCredentials = newErr(CodeInvalidCredentials, "wrong username or password")
	errInvalidCode        = newErr(CodeInvalidCode, "wrong code")
	errCodeReused         = newErr(CodeCodeReused, "this code was already used; wait for the next one")
	errChallengeExpired   = newErr(CodeChallengeExpired, "the login has expired; enter your password again")
	errUnauthorized       = newErr(CodeUnauthorized, "not logged in")
	errClock              = newErr(CodeClockNotSynchronized, "the code was not accepted and the device clock is not synchronized: "+
		"codes depend on the time, so set up NTP in the time settings or set the device time by hand, then try again")
)

func errLocked(wait time.Duration) *Error {
	secs := int((wait + time.Second - 1) / time.Second)
	return &Error{Code: CodeLocked, Message: fmt.Sprintf("too many failed attempts; try again in %d seconds", secs), RetryAfter: wait}
}

func errBusy() *Error {
	return &Error{Code: CodeBusy, Message: "the device is busy with other logins; try again in a few seconds", RetryAfter: 2 * time.Second}
}

func errInternal(cause error) *Error {
	return &Error{Code: CodeInternal, Message: "internal error; see the device log", cause: cause}
}
