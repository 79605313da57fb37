package main

import (
	"log"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rknas/firmware/authd/connlimit"
)

// newHTTPServer is the server of every port authd answers on. Each
// connection is held to deadlines and to conns's limits, and HTTP/2 is
// off: this small API gains nothing from it, and its up to 250 requests
// in progress per connection, each a handler waiting up to ReadTimeout
// for a body that never comes, cost the server about 17 KiB apiece for 14
// bytes sent.
func newHTTPServer(h http.Handler, errLog *log.Logger, conns *connlimit.Limiter) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		Protocols:         &protocols,
		ConnState:         conns.ConnState,
		ErrorLog:          errLog,
	}
}

// newHTTPErrorLog is net/http's error log: its lines go to log at WARN,
// except failed TLS handshakes, which anyone can cause with a bare
// connect: those are counted and reported at most once a minute, so a
// flood of them is not a flood of log lines (on a board, lines the serial
// console carries at its speed, with authd waiting on it).
func newHTTPErrorLog(l *slog.Logger) *log.Logger {
	return log.New(&httpErrors{log: l}, "", 0)
}

type httpErrors struct {
	log *slog.Logger

	mu       sync.Mutex
	failed   int    // handshakes failed since the last report
	last     string // the last one's client and error
	reported time.Time
}

const handshakeError = "http: TLS handshake error from "

// Write implements io.Writer for log.Logger: one call per line.
func (h *httpErrors) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	last, ok := strings.CutPrefix(line, handshakeError)
	if !ok {
		h.log.Warn(line)
		return len(p), nil
	}
	h.mu.Lock()
	h.failed++
	h.last = last
	now := time.Now()
	if now.Sub(h.reported) < time.Minute {
		h.mu.Unlock()
		return len(p), nil
	}
	n := h.failed
	h.failed, h.reported = 0, now
	h.mu.Unlock()
	h.log.Warn("TLS handshakes failed", "count", n, "last", last)
	return len(p), nil
}
