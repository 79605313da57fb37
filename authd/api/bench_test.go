package api

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"runtime/debug"
	"sort"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/auth"
	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/store"
)

// BenchmarkPasswordStepRatio measures the whole password step (lookup,
// throttling, argon2id with the default parameters, session, audit write)
// against raw argon2id hashes with the same parameters and parallelism, in
// one run. Goal: ratio >= 0.95 (make bench prints the table).
func BenchmarkPasswordStepRatio(b *testing.B) {
	p := account.DefaultParams
	par := runtime.NumCPU()
	db, err := store.Open(b.TempDir() + "/auth.db")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	hasher, err := account.NewHasher(p, par, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	cfg := auth.DefaultConfig()
	cfg.DefaultPassword = testDefaultPassword
	svc, err := auth.New(context.Background(), cfg, auth.Deps{Store: db, Clock: clock.System{}, Hasher: hasher, Log: discardLog()})
	if err != nil {
		b.Fatal(err)
	}
	salt := make([]byte, 16)
	const batch = 8
	parallel := func(fn func(i int)) {
		var wg sync.WaitGroup
		next := make(chan int, batch)
		for i := 0; i < batch; i++ {
			next <- i
		}
		close(next)
		for w := 0; w < par; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					fn(i)
				}
			}()
		}
		wg.Wait()
	}
	round := 0
	collected := collectedRounds(b)
	interleave(b, batch, "raw_hashes/s", "logins/s",
		collected(func() {
			parallel(func(int) { argon2.IDKey([]byte(testDefaultPassword), salt, p.Time, p.MemKiB, p.Threads, p.KeyLen) })
		}),
		collected(func() {
			round++
			parallel(func(i int) {
				c := auth.Client{Addr: netip.AddrFrom4([4]byte{10, byte(round >> 8), byte(round), byte(i)})}
				if _, err := svc.Login(context.Background(), "admin", testDefaultPassword, c, ""); err != nil {
					b.Error(err)
				}
			})
		}))
}

// collectedRounds turns the garbage collector's automatic cycles off for
// the benchmark and returns a wrapper that ends a round with a full
// collection, timed with it: each side pays for the garbage it made. For
// the login benchmarks: with automatic cycles the runtime handed argon2's
// freed buffers back to the kernel whenever a cycle ended between two
// logins, and faulting 8 MiB back in (2048 page faults) added about 30 ms
// to the next login on whichever side it fell, deciding rounds at random.
// Without them nothing is handed back, as in authd between two logins
// under its memory limit (0 page faults per login after the first two).
func collectedRounds(b *testing.B) func(round func()) func() {
	old := debug.SetGCPercent(-1)
	b.Cleanup(func() { debug.SetGCPercent(old) })
	return func(round func()) func() {
		return func() {
			round()
			runtime.GC()
		}
	}
}

// interleave measures floor and subject (each doing ops operations per
// call) in b.N short alternating rounds, which side goes first alternating
// too, so that load changing on the machine lands on both. It reports both
// rates, the ratio floor time / subject time as the median of the rounds'
// ratios, and their spread: the interquartile range over the median, in
// percent.
func interleave(b *testing.B, ops int, floorUnit, subjectUnit string, floor, subject func()) {
	timed := func(fn func()) time.Duration {
		s := time.Now()
		fn()
		return time.Since(s)
	}
	var tFloor, tSubject time.Duration
	ratios := make([]float64, 0, b.N)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		var f, s time.Duration
		if n%2 == 0 {
			f, s = timed(floor), timed(subject)
		} else {
			s, f = timed(subject), timed(floor)
		}
		tFloor += f
		tSubject += s
		ratios = append(ratios, f.Seconds()/s.Seconds())
	}
	b.StopTimer()
	sort.Float64s(ratios)
	q := func(p float64) float64 { return ratios[int(p*float64(len(ratios)-1)+0.5)] }
	total := float64(b.N * ops)
	b.ReportMetric(total/tFloor.Seconds(), floorUnit)
	b.ReportMetric(total/tSubject.Seconds(), subjectUnit)
	b.ReportMetric(q(0.5), "ratio")
	b.ReportMetric(100*(q(0.75)-q(0.25))/q(0.5), "spread_%")
}

// BenchmarkSessionGetRatio measures session-checked GET /api/v1/me over
// loopback HTTP against a bare net/http handler answering a small JSON
// object, in one run. Goal: ratio >= 0.85.
func BenchmarkSessionGetRatio(b *testing.B) {
	e := newEnv(b, clock.System{})
	br := e.browser()
	br.setUpAdmin("correct horse")
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name":"admin"}`)
	}))
	defer bare.Close()
	compareGets(b, br.hc, bare.URL, e.url+"/api/v1/me", "bare_req/s", "me_req/s")
}

// compareGets measures GETs of floor and subject (each must answer 200)
// through hc in interleaved rounds, and reports both rates and their ratio.
func compareGets(b *testing.B, hc *http.Client, floor, subject, floorUnit, subjectUnit string) {
	get := func(url string) {
		resp, err := hc.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("GET %s: %d", url, resp.StatusCode)
		}
	}
	const batch = 1000
	interleave(b, batch, floorUnit, subjectUnit,
		func() {
			for range batch {
				get(floor)
			}
		},
		func() {
			for range batch {
				get(subject)
			}
		})
}

// BenchmarkMeHandler measures authd's own work for one session-checked
// GET /api/v1/me (routing, cookie, session, JSON), without the network.
func BenchmarkMeHandler(b *testing.B) {
	serve := meHandler(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if status := serve(); status != 200 {
			b.Fatalf("GET /api/v1/me: %d", status)
		}
	}
}

// meHandler sets up an admin's session and returns a function that serves
// one session-checked GET /api/v1/me through authd's whole handler, its
// answer discarded, and returns the status.
func meHandler(tb testing.TB) func() int {
	return meHandlerFrom(tb, "127.0.0.1:40000", "127.0.0.1:443")
}

// meHandlerFrom is meHandler with the request coming from remote to the
// server's address local, as a real connection's are.
func meHandlerFrom(tb testing.TB, remote, local string) func() int {
	e := newEnv(tb, clock.System{})
	br := e.browser()
	br.setUpAdmin("correct horse")
	u, _ := url.Parse(e.url)
	h := New(e.svc, discardLog(), auth.DefaultConfig().TrustedDeviceTTL).Handler()
	req := httptest.NewRequest("GET", e.url+"/api/v1/me", nil)
	req.RemoteAddr = remote
	la, err := net.ResolveTCPAddr("tcp", local)
	if err != nil {
		tb.Fatal(err)
	}
	req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, la))
	for _, c := range br.hc.Jar.Cookies(u) {
		req.AddCookie(c)
	}
	w := &discardWriter{hdr: http.Header{}}
	return func() int {
		clear(w.hdr)
		w.status = 0
		h.ServeHTTP(w, req)
		return w.status
	}
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	hdr    http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.hdr }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(200)
	return len(p), nil
}
