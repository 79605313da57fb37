package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
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
// one run. Goal: ratio >= 0.9.
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
	var raw, step time.Duration
	parallel := func(fn func(i int)) time.Duration {
		start := time.Now()
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
		return time.Since(start)
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		raw += parallel(func(int) { argon2.IDKey([]byte(testDefaultPassword), salt, p.Time, p.MemKiB, p.Threads, p.KeyLen) })
		step += parallel(func(i int) {
			c := auth.Client{Addr: netip.AddrFrom4([4]byte{10, 0, byte(n), byte(i)})}
			if _, err := svc.Login(context.Background(), "admin", testDefaultPassword, c, ""); err != nil {
				b.Error(err)
			}
		})
	}
	ops := float64(b.N * batch)
	b.ReportMetric(ops/raw.Seconds(), "raw_hashes/s")
	b.ReportMetric(ops/step.Seconds(), "logins/s")
	b.ReportMetric(raw.Seconds()/step.Seconds(), "ratio")
}

// BenchmarkSessionGetRatio measures session-checked GET /api/v1/me over
// loopback HTTP against a bare net/http handler answering a small JSON
// object, in one run. Goal: ratio >= 0.5.
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

// compareGets measures GETs of floor and subject (each must answer 200) in
// alternating batches through hc, and reports both rates and their ratio.
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
	const batch = 200
	var tFloor, tSubject time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		s := time.Now()
		for range batch {
			get(floor)
		}
		tFloor += time.Since(s)
		s = time.Now()
		for range batch {
			get(subject)
		}
		tSubject += time.Since(s)
	}
	ops := float64(b.N * batch)
	b.ReportMetric(ops/tFloor.Seconds(), floorUnit)
	b.ReportMetric(ops/tSubject.Seconds(), subjectUnit)
	b.ReportMetric(tFloor.Seconds()/tSubject.Seconds(), "ratio")
}
