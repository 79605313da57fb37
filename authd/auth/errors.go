package auth

import (
	"errors"
	"fmt"
	"syscall"
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
	CodeStepUpRequired         = "step_up_required"
	// CodePasskeyCopied: a passkey answered with a signature counter not
	// above the last one seen, so a copy of it may exist.
	CodePasskeyCopied = "passkey_copied"
	CodeInternal      = "internal"
	// CodeWrongHost: the request named a host the device does not answer
	// to (a DNS-rebinding page, or a stale bookmark).
	CodeWrongHost = "wrong_host"
	// CodeStorageFull: the state partition has no space left; nothing was
	// changed.
	CodeStorageFull = "storage_full"
	// CodeStorageFailed: the state partition refused the write (read-only
	// after a file system error, or an I/O error); nothing was changed.
	CodeStorageFailed = "storage_failed"
)

// Error is an error a user sees: a stable code and a fixed, clear message.
// The cause, if any, is for the log only.
type Error struct {
	Code    string
	Message string
	// RetryAfter is set for locked and busy.
	RetryAfter time.Duration
	// Locked names what a locked error locks: BlockClient, BlockAccount,
	// or "" for too many attempts at once.
	Locked string
	cause  error
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
	return errInternal(err)
}

// storageError names a write the state partition refused, or returns nil
// for any other failure.
func storageError(cause error) *Error {
	switch {
	case errors.Is(cause, syscall.ENOSPC), errors.Is(cause, syscall.EDQUOT):
		return &Error{Code: CodeStorageFull, cause: cause,
			Message: "the storage for accounts and settings is full, so nothing was changed; the device log says more"}
	case errors.Is(cause, syscall.EROFS):
		return &Error{Code: CodeStorageFailed, cause: cause,
			Message: "the storage for accounts and settings is read-only after a file system error, so nothing was changed; restart the NAS to mount it again"}
	case errors.Is(cause, syscall.EIO):
		return &Error{Code: CodeStorageFailed, cause: cause,
			Message: "the storage for accounts and settings could not be written (an I/O error), so nothing was changed; restart the NAS, and if it happens again the disk is failing"}
	}
	return nil
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
	errStepUp             = newErr(CodeStepUpRequired, "this change needs your password (and a code, if you use two-factor authentication) again: "+
		"POST /api/v1/me/step-up, then repeat the change within 5 minutes")
	errClock = newErr(CodeClockNotSynchronized, "the code was not accepted and the device clock is not synchronized: "+
		"codes depend on the time, so set up NTP in the time settings or set the device time by hand, then try again")
)

// errLocked says what is locked and for how long. kind is BlockClient,
// BlockAccount or "" (too many attempts at once, on a login challenge).
func errLocked(kind string, wait time.Duration) *Error {
	var msg string
	switch kind {
	case BlockClient:
		msg = "too many failed attempts from this address: it is blocked for " + waitText(wait)
	case BlockAccount:
		msg = "too many failed attempts on this account from elsewhere: it is locked for " + waitText(wait) +
			"; a trusted device or an allow-listed address can still sign in"
	default:
		msg = "too many attempts at once; try again in " + waitText(wait)
	}
	return &Error{Code: CodeLocked, Message: msg, RetryAfter: wait, Locked: kind}
}

// waitText is a wait as people say it, rounded up: "40 seconds", "15
// minutes", "2 hours 5 minutes".
func waitText(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	secs := int64((d + time.Second - 1) / time.Second)
	switch {
	case secs < 120:
		return plural(max(secs, 1), "second")
	case secs < 2*3600:
		return plural((secs+59)/60, "minute")
	}
	mins := (secs + 59) / 60
	if mins%60 == 0 {
		return plural(mins/60, "hour")
	}
	return plural(mins/60, "hour") + " " + plural(mins%60, "minute")
}

func errBusy() *Error {
	return &Error{Code: CodeBusy, Message: "the device is busy with other logins; try again in a few seconds", RetryAfter: 2 * time.Second}
}

func errInternal(cause error) *Error {
	if e := storageError(cause); e != nil {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error; see the device log", cause: cause}
}
