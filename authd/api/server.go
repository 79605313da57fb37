// Package api serves authd's login API: JSON over HTTP under /api/v1, with
// cookie sessions, cross-site request checks, strict request decoding and
// errors with stable codes.
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/regulate"
	"github.com/rknas/firmware/authd/session"
	"github.com/rknas/firmware/authd/store"
)

// Cookie names over plain HTTP (a development host, or authd with -tls off
// behind a proxy of the owner's).
const (
	SessionCookie = "rknas_session"
	DeviceCookie  = "rknas_device"
)

// Cookie names over HTTPS. A browser takes a __Host- cookie only from a
// secure origin, Secure, with Path=/ and no Domain: nothing answering plain
// HTTP for the device's name (port 80's redirect, or a stranger on the LAN
// answering in its place) can plant one that would be read before the
// owner's and sign the owner's browser in as the stranger's account.
const (
	SecureSessionCookie = "__Host-" + SessionCookie
	SecureDeviceCookie  = "__Host-" + DeviceCookie
)

// sessionCookieName is the session cookie's name on r's scheme; over HTTPS a
// cookie under the plain name is not read.
func sessionCookieName(r *http.Request) string {
	if r.TLS != nil {
		return SecureSessionCookie
	}
	return SessionCookie
}

// deviceCookieName is the trusted-device cookie's name on r's scheme.
func deviceCookieName(r *http.Request) string {
	if r.TLS != nil {
		return SecureDeviceCookie
	}
	return DeviceCookie
}

// MaxBody is the largest request body accepted.
const MaxBody = 64 << 10

// Access says who may call a route.
type Access int

// Access levels.
const (
	// Public routes need no session.
	Public Access = iota
	// AnySession routes accept restricted sessions too (password change,
	// enrolment).
	AnySession
	// EnrollSession routes accept full and enrolment sessions.
	EnrollSession
	// FullSession routes need a full session.
	FullSession
	// Admin routes need a full session of an admin.
	Admin
	// AdminStepUp routes need a full session of an admin that stepped up
	// (POST /api/v1/me/step-up) within the last five minutes: changes
	// that could hand the device to someone else.
	AdminStepUp
)

// Caller is the authenticated caller of a request.
type Caller struct {
	Client  auth.Client
	Token   string
	Session session.Session
	User    store.User
	// AppPassword is the name of the app password the request came with;
	// "" for a session.
	AppPassword string
}

// HandlerFunc handles a request; a returned error is written as the error
// response.
type HandlerFunc func(w http.ResponseWriter, r *http.Request, c Caller) error

// Server is the HTTP API.
type Server struct {
	svc *auth.Service
	log *slog.Logger
	mux *http.ServeMux
	// TrustedDeviceTTL is the device cookie's lifetime.
	deviceTTL time.Duration
	// hostNames returns the names the device answers to besides its
	// addresses and localhost; nil means none.
	hostNames atomic.Pointer[func() []string]
	// sys is the device's other parts, set by AttachSystem before serving.
	sys *System
}

// New returns the API server for svc.
func New(svc *auth.Service, log *slog.Logger, deviceTTL time.Duration) *Server {
	s := &Server{svc: svc, log: log, mux: http.NewServeMux(), deviceTTL: deviceTTL}
	s.routes()
	return s
}

// Handler returns the server's handler, with cross-site protection for
// state-changing requests (Sec-Fetch-Site and Origin checks; SameSite=Strict
// cookies are the second line).
func (s *Server) Handler() http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &auth.Error{Code: auth.CodeForbidden, Message: "cross-site request refused"})
	}))
	return securityHeaders(s.hostGuard(cop.Handler(s.mux)))
}

// SetHostNames sets where the names the device answers to come from (its
// hostname, <hostname>.local, the names of an imported certificate).
func (s *Server) SetHostNames(names func() []string) { s.hostNames.Store(&names) }

// hostGuard refuses requests whose Host is not the device's: a page that
// rebinds its own DNS name to the device's address can then not drive the
// API from the owner's browser. Addresses are always accepted: a page
// cannot rebind an IP literal, its origin would be that address itself.
func (s *Server) hostGuard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if name, _, err := net.SplitHostPort(host); err == nil {
			host = name
		}
		host = strings.ToLower(strings.TrimSuffix(host, "."))
		if _, err := netip.ParseAddr(host); err == nil || host == "localhost" {
			h.ServeHTTP(w, r)
			return
		}
		var names []string
		if f := s.hostNames.Load(); f != nil {
			names = (*f)()
		}
		for _, n := range names {
			if host != "" && strings.EqualFold(host, n) {
				h.ServeHTTP(w, r)
				return
			}
		}
		known := "its address"
		if len(names) > 0 {
			known += " or " + strings.Join(names, ", ")
		}
		writeError(w, &auth.Error{Code: auth.CodeWrongHost, Message: fmt.Sprintf(
			"this device does not answer to the name %.64q: open it by %s", r.Host, known)})
	})
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The keys are canonical and the values shared: net/http only
		// reads them, and a handler that sets its own replaces the slice.
		hdr := w.Header()
		hdr["X-Content-Type-Options"] = headerNosniff
		hdr["X-Frame-Options"] = headerDeny
		hdr["Referrer-Policy"] = headerNoReferrer
		if strings.HasPrefix(r.URL.Path, "/api/") {
			hdr["Cache-Control"] = headerNoStore
		}
		h.ServeHTTP(w, r)
	})
}

// The security headers' values, one allocation for every answer.
var (
	headerNosniff    = []string{"nosniff"}
	headerDeny       = []string{"DENY"}
	headerNoReferrer = []string{"no-referrer"}
	headerNoStore    = []string{"no-store"}
)

// Handle registers h for pattern (e.g. "GET /api/v1/time/status") with the
// given access.
func (s *Server) Handle(pattern string, access Access, h HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		// A value, not a pointer: handed to h through a func value, a
		// pointer would put the caller (its session and a copy of its
		// account, 664 bytes) on the heap at every request.
		c := Caller{Client: clientOf(r)}
		if access != Public {
			if err := s.authorize(r, &c, access); err != nil {
				writeError(w, err)
				return
			}
		}
		if err := h(w, r, c); err != nil {
			if auth.AsError(err).Code == auth.CodeInternal {
				s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, err)
		}
	})
}

// callerIsAdmin reports whether the request carries the session of an
// admin with a full session, for public routes that say more to admins.
func (s *Server) callerIsAdmin(r *http.Request) bool {
	token, ok := cookieValue(r, sessionCookieName(r))
	if !ok {
		return false
	}
	sess, u, err := s.svc.Authenticate(token)
	return err == nil && sess.Kind == session.Full && u.IsAdmin()
}

// HandleHTTP registers a plain handler (static pages).
func (s *Server) HandleHTTP(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

func (s *Server) authorize(r *http.Request, c *Caller, access Access) error {
	if h := r.Header.Get("Authorization"); h != "" {
		return s.authorizeAppPassword(r, c, access, h)
	}
	token, ok := cookieValue(r, sessionCookieName(r))
	if !ok {
		return auth.AsError(&auth.Error{Code: auth.CodeUnauthorized, Message: "not logged in"})
	}
	sess, u, err := s.svc.Authenticate(token)
	if err != nil {
		return err
	}
	c.Token, c.Session, c.User = token, sess, u
	switch sess.Kind {
	case session.PasswordChange:
		if access != AnySession {
			return &auth.Error{Code: auth.CodePasswordChangeRequired, Message: "set a new password first"}
		}
	case session.Enroll:
		if access != AnySession && access != EnrollSession {
			return &auth.Error{Code: auth.CodeEnrollRequired, Message: "set up two-factor authentication first"}
		}
	}
	if (access == Admin || access == AdminStepUp) && !u.IsAdmin() {
		return &auth.Error{Code: auth.CodeForbidden, Message: "an administrator account is needed"}
	}
	if access == AdminStepUp {
		return s.svc.RequireStepUp(sess)
	}
	return nil
}

// authorizeAppPassword lets a request in on an app password
// (Authorization: Bearer), within its scopes: read for the GET requests
// the account may make, admin for an admin's changes that need no step-up.
// It never reaches the account's credentials, sessions or app passwords:
// those stay with a person who signs in.
func (s *Server) authorizeAppPassword(r *http.Request, c *Caller, access Access, header string) error {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return &auth.Error{Code: auth.CodeUnauthorized, Message: "Authorization: only \"Bearer <app password>\" is accepted"}
	}
	a, u, err := s.svc.AuthenticateAppPassword(strings.TrimSpace(token), c.Client)
	if err != nil {
		return err
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/v1/me/app-passwords"):
		return &auth.Error{Code: auth.CodeForbidden, Message: "app passwords are managed by signing in, not with an app password"}
	case access == AdminStepUp:
		return &auth.Error{Code: auth.CodeForbidden, Message: "this change needs a person who signs in and confirms with the password; an app password cannot make it"}
	case read && !slices.Contains(a.Scopes, store.ScopeRead) && !slices.Contains(a.Scopes, store.ScopeAdmin):
		return &auth.Error{Code: auth.CodeForbidden, Message: "the app password has no read scope"}
	case !read && access != Admin:
		return &auth.Error{Code: auth.CodeForbidden, Message: "an app password cannot change the account's password, 2FA, sessions or security email"}
	case !read && !slices.Contains(a.Scopes, store.ScopeAdmin):
		return &auth.Error{Code: auth.CodeForbidden, Message: "the app password has no admin scope"}
	case !read && r.PathValue("name") == u.Name:
		// The admin routes reach the app password's own account too (its
		// sessions, through DELETE /users/{name}/sessions/{id}), which the
		// /me routes keep from it.
		return &auth.Error{Code: auth.CodeForbidden, Message: "an app password cannot change its own account or end its sessions"}
	case (access == Admin) && !u.IsAdmin():
		return &auth.Error{Code: auth.CodeForbidden, Message: "an administrator account is needed"}
	case access == Admin && !a.MadeByAdmin():
		// A read-only token the account made as a user must not start
		// reading every account when an admin promotes it.
		return &auth.Error{Code: auth.CodeForbidden, Message: "this app password was made before the account became an administrator: make a new one for the admin routes"}
	}
	c.Session = session.Session{ID: "app-" + a.ID, User: u.Name, Kind: session.Full}
	c.User, c.AppPassword = u, a.Name
	return nil
}

// clientOf returns the request's client. The peer address is used as is:
// authd is not meant to sit behind a proxy, and trusting a forwarded
// header would let anyone pick the address they are throttled under.
func clientOf(r *http.Request) auth.Client {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		addr = netip.IPv4Unspecified()
	}
	ua := r.UserAgent()
	if len(ua) > 256 {
		ua = ua[:256]
	}
	c := auth.Client{Addr: addr.Unmap(), UserAgent: ua}
	if c.Addr.Is6() { // OnLink tells IPv6 clients apart only
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
			c.OnLink = regulate.OnLink(c.Addr, la.AddrPort().Addr())
		}
	}
	return c
}

// httpStatus maps error codes to HTTP status codes.
var httpStatus = map[string]int{
	auth.CodeInvalidCredentials:     http.StatusUnauthorized,
	auth.CodeInvalidCode:            http.StatusUnauthorized,
	auth.CodeCodeReused:             http.StatusUnauthorized,
	auth.CodeChallengeExpired:       http.StatusUnauthorized,
	auth.CodeClockNotSynchronized:   http.StatusUnauthorized,
	auth.CodePasskeyCopied:          http.StatusUnauthorized,
	auth.CodeUnauthorized:           http.StatusUnauthorized,
	auth.CodeLocked:                 http.StatusTooManyRequests,
	auth.CodePasswordChangeRequired: http.StatusForbidden,
	auth.CodeEnrollRequired:         http.StatusForbidden,
	auth.CodeForbidden:              http.StatusForbidden,
	auth.CodeStepUpRequired:         http.StatusForbidden,
	auth.CodeNotFound:               http.StatusNotFound,
	auth.CodeBadRequest:             http.StatusBadRequest,
	auth.CodeConflict:               http.StatusConflict,
	auth.CodeBusy:                   http.StatusServiceUnavailable,
	auth.CodeMailFailed:             http.StatusBadGateway,
	auth.CodeInternal:               http.StatusInternalServerError,
	auth.CodeStorageFull:            http.StatusInsufficientStorage,
	auth.CodeStorageFailed:          http.StatusServiceUnavailable,
	auth.CodeWrongHost:              http.StatusMisdirectedRequest,
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		// RetryAfter repeats the Retry-After header in the body, in
		// seconds, for clients that do not read headers.
		RetryAfter int `json:"retry_after,omitempty"`
		// Locked names what a locked answer locks: "client" or
		// "account"; absent for too many attempts at once.
		Locked string `json:"locked,omitempty"`
	} `json:"error"`
}

// statusError lets a decode error carry its HTTP status (413).
type statusError struct {
	err    *auth.Error
	status int
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

func writeError(w http.ResponseWriter, err error) {
	status := 0
	var se *statusError
	if errors.As(err, &se) {
		status = se.status
	}
	e := auth.AsError(err)
	if status == 0 {
		status = httpStatus[e.Code]
	}
	if status == 0 {
		status = http.StatusInternalServerError
	}
	var b errorBody
	if e.RetryAfter > 0 {
		b.Error.RetryAfter = int((e.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(b.Error.RetryAfter))
	}
	b.Error.Code, b.Error.Message, b.Error.Locked = e.Code, e.Message, e.Locked
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := jsonBuffers.Get().(*bytes.Buffer)
	defer putAnswerBuffer(buf)
	if err := encodeJSON(buf, v); err != nil {
		// Only a value that cannot be encoded gets here: a bug, answered
		// as one rather than as half a document.
		buf.Reset()
		status = http.StatusInternalServerError
		buf.WriteString(`{"error":{"code":"internal","message":"internal error; see the device log"}}` + "\n")
	}
	sendAnswer(w, status, buf)
}

// writeOwnJSON is writeJSON for an answer that writes its own JSON, called
// on the answer's type: through an interface the answer would be copied to
// the heap at every request.
func writeOwnJSON[T jsonAppender](w http.ResponseWriter, status int, v T) {
	buf := jsonBuffers.Get().(*bytes.Buffer)
	defer putAnswerBuffer(buf)
	if !appendOwnJSON(buf, v) {
		writeJSON(w, status, v)
		return
	}
	sendAnswer(w, status, buf)
}

// appendOwnJSON writes v's own JSON and a newline into buf, as json.Encoder
// does, and tells whether v could write it; if not, buf is as it was.
func appendOwnJSON[T jsonAppender](buf *bytes.Buffer, v T) bool {
	b, err := v.appendJSON(buf.AvailableBuffer())
	if err != nil {
		return false
	}
	buf.Write(b)
	buf.WriteByte('\n')
	return true
}

// sendAnswer sends buf, a JSON answer, with status.
func sendAnswer(w http.ResponseWriter, status int, buf *bytes.Buffer) {
	hdr := w.Header()
	hdr["Content-Type"] = jsonContentType
	// net/http sends the length of an answer that fits its buffer itself,
	// without an allocation; a longer one would go chunked without this.
	if buf.Len() > answerBuffered {
		hdr["Content-Length"] = []string{strconv.Itoa(buf.Len())}
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// putAnswerBuffer keeps buf for the next answer, unless it grew large.
func putAnswerBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= 64<<10 {
		buf.Reset()
		jsonBuffers.Put(buf)
	}
}

// encodeJSON writes v and a newline into buf, as json.Encoder does.
func encodeJSON(buf *bytes.Buffer, v any) error {
	if a, ok := v.(jsonAppender); ok && appendOwnJSON(buf, a) {
		return nil
	}
	return json.NewEncoder(buf).Encode(v)
}

// answerBuffered is the most of an answer net/http holds back (its
// bufferBeforeChunkingSize) and so sends with its length.
const answerBuffered = 2048

// jsonBuffers keeps answer buffers between requests; jsonContentType is
// shared by every answer (net/http only reads it).
var (
	jsonBuffers     = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	jsonContentType = []string{"application/json; charset=utf-8"}
)

// OK writes v as a 200 JSON answer.
func OK(w http.ResponseWriter, v any) error {
	writeJSON(w, http.StatusOK, v)
	return nil
}

// Decode reads the request body as exactly one JSON object into v: unknown
// fields, wrong types, trailing data and bodies over MaxBody are refused
// with an error that names the problem.
func Decode(w http.ResponseWriter, r *http.Request, v any) error {
	if err := checkContentType(r); err != nil {
		return err
	}
	body := http.MaxBytesReader(w, r.Body, MaxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return decodeError(err)
		}
		return errBad("body: unexpected data after the JSON object")
	}
	return nil
}

// checkContentType refuses bodies that say they are not JSON.
func checkContentType(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errBad("body: Content-Type must be application/json, not %q", ct)
	}
	return nil
}

// ReadBody returns the raw request body for packages that decode their own
// JSON (netconf, mail), with the same Content-Type, size and empty-body
// rules as Decode.
func ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if err := checkContentType(r); err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		return nil, decodeError(err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errBad("body: empty; a JSON object is expected")
	}
	return raw, nil
}

func errBad(format string, args ...any) error {
	return &auth.Error{Code: auth.CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &statusError{err: &auth.Error{Code: auth.CodeBadRequest, Message: fmt.Sprintf("body: larger than %d bytes", MaxBody)}, status: http.StatusRequestEntityTooLarge}
	case errors.Is(err, io.EOF):
		return errBad("body: empty; a JSON object is expected")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errBad("body: the JSON ends too early")
	case errors.As(err, &syn):
		return errBad("body: invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return errBad("body: a JSON object is expected, not %s", typ.Value)
		}
		return errBad("%s: expected %s, got %s", field, jsonType(typ.Type.Kind().String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errBad("%s: unknown field", strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`))
	}
	return errBad("body: %v", err)
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "ptr":
		return "a value"
	}
	return "a number"
}

// auditEntry builds an audit entry for an admin's action.
func auditEntry(event string, c *Caller, detail string) store.AuditEntry {
	actor := c.User.Name
	if c.AppPassword != "" {
		actor += " (app password " + strconv.Quote(c.AppPassword) + ")"
	}
	return store.AuditEntry{Event: event, Actor: actor, Client: c.Client.String(), Detail: detail}
}
