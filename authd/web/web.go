// Package web serves authd's reference web pages: a small single-page app
// over the login API, under a strict Content-Security-Policy.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rknas/firmware/authd/api"
)

// CSP is the Content-Security-Policy of the pages: only this origin's own
// script, style and API, images from data: URLs (the QR code), no framing,
// no inline code, and Trusted Types so that no string can become markup.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; require-trusted-types-for 'script'"

//go:embed static
var static embed.FS

// file is one page served from memory.
type file struct {
	name  string // in static/
	ctype string
	body  []byte
	etag  string
	// gzipped is body compressed once (prepare), for browsers that take
	// it: the pages hold no secret, so compressing them cannot leak one.
	gzipped []byte
	gzEtag  string
}

// Paths are the URL paths the pages are served at; everything else is not
// theirs.
var Paths = []string{"/", "/index.html", "/app.js", "/style.css"}

var index = &file{name: "index.html", ctype: "text/html; charset=utf-8"}

var files = map[string]*file{
	"/":           index,
	"/index.html": index,
	"/app.js":     {name: "app.js", ctype: "text/javascript; charset=utf-8"},
	"/style.css":  {name: "style.css", ctype: "text/css; charset=utf-8"},
}

// prepared reads and compresses the pages once, when authd calls Prepare
// (in the background, once it answers) or at the first request, whichever
// comes first: not at package init, which every command of the firmware's
// busybox runs at every start (it was 0.1 to 0.3 s of each start in the
// VM), and not during authd's start, whose CPU it would share on a
// one-core board.
var prepared sync.Once

// Prepare reads and compresses the pages now, if that is not done yet.
func Prepare() {
	prepared.Do(func() {
		done := map[*file]bool{}
		for _, f := range files {
			if done[f] {
				continue
			}
			done[f] = true
			b, err := static.ReadFile("static/" + f.name)
			if err != nil {
				// The files are embedded at build time: a missing one is a
				// build mistake, not a run-time condition.
				panic("web: embedded " + f.name + ": " + err.Error())
			}
			sum := sha256.Sum256(b)
			f.body, f.etag = b, `"`+hex.EncodeToString(sum[:8])+`"`
			var gz bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
			_, _ = zw.Write(b)
			_ = zw.Close()
			f.gzipped, f.gzEtag = gz.Bytes(), `"`+hex.EncodeToString(sum[:8])+`-gz"`
		}
	})
}

// acceptsGzip reports whether the request's Accept-Encoding takes gzip
// (and does not refuse it with q=0).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// Handler returns the handler for the pages: GET and HEAD of the paths in
// Paths, 404 for any other path and 405 for other methods. Every answer
// carries the CSP and nosniff headers.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		f, ok := files[r.URL.Path]
		Prepare()
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Content-Type", f.ctype)
		// Revalidate every time: a firmware update changes the files,
		// and the ETag keeps the check cheap.
		h.Set("Cache-Control", "no-cache")
		h.Set("Vary", "Accept-Encoding")
		body, etag := f.body, f.etag
		if acceptsGzip(r) {
			body, etag = f.gzipped, f.gzEtag
			h.Set("Content-Encoding", "gzip")
		}
		h.Set("ETag", etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
}

// Attach registers the pages on srv. The patterns carry no method, so they
// match exactly the page paths and leave /api/, /healthz and every other
// path to the server's own routes; a wrong method gets 405 from Handler.
func Attach(srv *api.Server) {
	h := Handler()
	for _, p := range Paths {
		if p == "/" {
			p = "/{$}"
		}
		srv.HandleHTTP(p, h)
	}
}
