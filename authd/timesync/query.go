package timesync

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/beevik/ntp"
)

// sample is one answer that passed every check.
type sample struct {
	server string // the configured entry
	addr   string // the address that answered
	offset time.Duration
	rtt    time.Duration
}

// serverResult is what one configured server gave: its good samples and
// why the other addresses failed.
type serverResult struct {
	server  string
	samples []sample
	errs    []string
}

func (r serverResult) why() string {
	if len(r.errs) == 0 {
		return "no answer"
	}
	return strings.Join(r.errs, "; ")
}

// queryAll asks every server in parallel. When ctx ends first it returns
// nil at once, so Run can save the time and exit promptly at shutdown; the
// queries finish on their own within their timeout.
func (s *Service) queryAll(ctx context.Context, servers []string) []serverResult {
	out := make([]serverResult, len(servers))
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for i, srv := range servers {
			wg.Go(func() { out[i] = s.queryServer(ctx, srv) })
		}
		wg.Wait()
	}()
	select {
	case <-done:
		return out
	case <-ctx.Done():
		return nil
	}
}

// queryServer resolves one entry and queries up to cfg.MaxAddrs of its
// addresses in parallel.
func (s *Service) queryServer(ctx context.Context, entry string) serverResult {
	res := serverResult{server: entry}
	host, port, err := splitServer(entry)
	if err != nil {
		res.errs = append(res.errs, err.Error())
		return res
	}
	var hosts []string
	if _, err := netip.ParseAddr(host); err == nil {
		hosts = []string{host}
	} else {
		lctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
		hosts, err = s.resolver.LookupHost(lctx, host)
		cancel()
		if err != nil {
			res.errs = append(res.errs, fmt.Sprintf("%s: lookup: %v", entry, err))
			return res
		}
		slices.Sort(hosts)
		hosts = slices.Compact(hosts)
		if len(hosts) > s.cfg.MaxAddrs {
			hosts = hosts[:s.cfg.MaxAddrs]
		}
	}
	type answer struct {
		sm  sample
		err error
	}
	answers := make([]answer, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		addr := net.JoinHostPort(h, port)
		wg.Go(func() {
			sm, err := s.queryAddr(addr)
			sm.server = entry
			answers[i] = answer{sm, err}
		})
	}
	// ntp.QueryWithOptions takes no context; its own timeout bounds the wait.
	wg.Wait()
	for _, a := range answers {
		if a.err != nil {
			res.errs = append(res.errs, a.err.Error())
			continue
		}
		res.samples = append(res.samples, a.sm)
	}
	return res
}

// queryAddr sends one query to addr (host:port) and checks the answer.
func (s *Service) queryAddr(addr string) (sample, error) {
	now := s.clk.Now()
	s.mu.Lock()
	until, kissed := s.kissed[addr]
	s.mu.Unlock()
	if kissed && now.Before(until) {
		return sample{}, fmt.Errorf("%s: not asked: it sent a kiss-of-death; next try after %s", addr, until.UTC().Format(time.RFC3339))
	}
	opts := ntp.QueryOptions{Timeout: s.cfg.QueryTimeout, GetSystemTime: s.sysTime}
	r, err := ntp.QueryWithOptions(addr, opts)
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w", addr, err)
	}
	if r.IsKissOfDeath() {
		// RFC 5905 7.4: stop asking a server that says DENY, RSTR or RATE.
		// Leave it alone for one sync interval.
		s.mu.Lock()
		for a, until := range s.kissed {
			// Served their time: forgotten, so addresses that come and go
			// in DNS answers do not pile up.
			if !now.Before(until) {
				delete(s.kissed, a)
			}
		}
		s.kissed[addr] = now.Add(s.cfg.Interval)
		s.mu.Unlock()
		return sample{}, fmt.Errorf("%s: %w (code %q)", addr, ntp.ErrKissOfDeath, r.KissCode)
	}
	if err := r.Validate(); err != nil {
		return sample{}, fmt.Errorf("%s: %w", addr, err)
	}
	if r.Time.IsZero() || r.Timestamps.ServerXmit.IsZero() {
		return sample{}, fmt.Errorf("%s: %w", addr, ntp.ErrInvalidTransmitTime)
	}
	if r.RTT > s.cfg.MaxRTT {
		return sample{}, fmt.Errorf("%s: round trip %v is longer than %v", addr, r.RTT.Round(time.Millisecond), s.cfg.MaxRTT)
	}
	if t := s.clk.Now().Add(r.ClockOffset); t.Before(s.build) {
		return sample{}, fmt.Errorf("%s: %w: it says %s", addr, ErrBeforeBuild, t.UTC().Format(time.RFC3339))
	}
	return sample{addr: addr, offset: r.ClockOffset, rtt: r.RTT}, nil
}

// decision is the outcome of a vote among the servers.
type decision struct {
	offset   time.Duration // the median of the agreeing servers' offsets
	best     sample        // the agreeing server at (or just below) the median
	outvoted []sample      // servers that disagreed with the majority
	agreeing int
	voters   int
}

// decide turns the servers' answers into one offset. Each server gets one
// vote, the median of its own addresses' offsets, so a name that resolves to
// many addresses of one broken operator can not outvote the others. The
// largest group of votes that lie within spread of each other wins if it is
// a strict majority of the servers that answered; otherwise nothing is done.
// A single answering server is trusted: there is nothing to compare it with,
// and refusing would leave a one-server setup never synchronised.
func decide(results []serverResult, spread time.Duration) (decision, error) {
	var votes []sample
	var failed []string
	for _, r := range results {
		if len(r.samples) == 0 {
			failed = append(failed, r.why())
			continue
		}
		votes = append(votes, medianSample(r.samples))
	}
	if len(votes) == 0 {
		return decision{}, fmt.Errorf("%w: %s", ErrNoAnswer, strings.Join(failed, "; "))
	}
	slices.SortFunc(votes, func(a, b sample) int { return cmpDuration(a.offset, b.offset) })
	// Sliding window over the sorted offsets: the widest run within spread.
	bestI, bestN := 0, 0
	for i := range votes {
		j := i
		for j+1 < len(votes) && votes[j+1].offset-votes[i].offset <= spread {
			j++
		}
		if n := j - i + 1; n > bestN {
			bestI, bestN = i, n
		}
	}
	if 2*bestN <= len(votes) {
		parts := make([]string, len(votes))
		for i, v := range votes {
			parts[i] = fmt.Sprintf("%s says %s", v.server, fmtOffset(v.offset))
		}
		return decision{}, fmt.Errorf("%w (no majority within %v): %s", ErrDisagree, spread, strings.Join(parts, ", "))
	}
	agree := votes[bestI : bestI+bestN]
	d := decision{
		best:     agree[(len(agree)-1)/2],
		agreeing: bestN,
		voters:   len(votes),
	}
	if n := len(agree); n%2 == 1 {
		d.offset = agree[n/2].offset
	} else {
		d.offset = agree[n/2-1].offset + (agree[n/2].offset-agree[n/2-1].offset)/2
	}
	d.outvoted = append(d.outvoted, votes[:bestI]...)
	d.outvoted = append(d.outvoted, votes[bestI+bestN:]...)
	return d, nil
}

// medianSample returns one server's representative answer: the sample with
// the median offset (the lower one of an even count, so it is a real answer
// with its own round trip).
func medianSample(ss []sample) sample {
	ss = slices.Clone(ss)
	slices.SortFunc(ss, func(a, b sample) int { return cmpDuration(a.offset, b.offset) })
	return ss[(len(ss)-1)/2]
}

func cmpDuration(a, b time.Duration) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fmtOffset prints an offset with its sign, rounded to the millisecond.
func fmtOffset(d time.Duration) string {
	d = d.Round(time.Millisecond)
	if d >= 0 {
		return "+" + d.String()
	}
	return d.String()
}
