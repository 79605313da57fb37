package timesync

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func res(server string, offsets ...time.Duration) serverResult {
	r := serverResult{server: server}
	for i, o := range offsets {
		r.samples = append(r.samples, sample{server: server, addr: server + "#" + string(rune('a'+i)), offset: o, rtt: time.Millisecond})
	}
	if len(offsets) == 0 {
		r.errs = []string{server + ": i/o timeout"}
	}
	return r
}

func TestDecide(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name       string
		results    []serverResult
		wantOffset time.Duration
		wantServer string
		wantOut    int
		wantErr    error
		errText    []string
	}{
		{"one server", []serverResult{res("a", 5*ms)}, 5 * ms, "a", 0, nil, nil},
		{"two agree: midpoint", []serverResult{res("a", 4*ms), res("b", 10*ms)}, 7 * ms, "a", 0, nil, nil},
		{"three agree: median", []serverResult{res("a", 30*ms), res("b", -ms), res("c", 2*ms)}, 2 * ms, "c", 0, nil, nil},
		{"liar outvoted", []serverResult{res("a", ms), res("liar", 3*time.Hour), res("b", 2*ms)}, 1500 * time.Microsecond, "a", 1, nil, nil},
		{"liar behind outvoted", []serverResult{res("liar", -5*time.Hour), res("a", ms), res("b", 2*ms)}, 1500 * time.Microsecond, "a", 1, nil, nil},
		{"two disagree", []serverResult{res("a", ms), res("liar", 3*time.Hour)}, 0, "", 0, ErrDisagree,
			[]string{"a says +1ms", "liar says +3h0m0s"}},
		{"two against two", []serverResult{res("a", 0), res("b", ms), res("x", time.Hour), res("y", time.Hour)}, 0, "", 0, ErrDisagree, nil},
		{"silent server does not vote", []serverResult{res("a", 3*ms), res("silent")}, 3 * ms, "a", 0, nil, nil},
		{"none answer", []serverResult{res("a"), res("b")}, 0, "", 0, ErrNoAnswer,
			[]string{"a: i/o timeout", "b: i/o timeout"}},
		{"one name, many addresses, one vote", []serverResult{res("many", time.Hour, time.Hour, time.Hour), res("a", 0), res("b", ms)}, 500 * time.Microsecond, "a", 1, nil, nil},
		{"own addresses: median", []serverResult{res("pool", 0, 10*time.Hour, 2*ms)}, 2 * ms, "pool", 0, nil, nil},
		{"spread edge agrees", []serverResult{res("a", 0), res("b", 2*time.Second)}, time.Second, "a", 0, nil, nil},
		{"just beyond spread", []serverResult{res("a", 0), res("b", 2*time.Second+ms)}, 0, "", 0, ErrDisagree, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := decide(tt.results, 2*time.Second)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("decide: err = %v, want %v", err, tt.wantErr)
				}
				for _, s := range tt.errText {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("decide: %v", err)
			}
			if d.offset != tt.wantOffset || d.best.server != tt.wantServer || len(d.outvoted) != tt.wantOut {
				t.Errorf("decide = offset %v server %q outvoted %d; want %v %q %d",
					d.offset, d.best.server, len(d.outvoted), tt.wantOffset, tt.wantServer, tt.wantOut)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 2*time.Second, 10*time.Minute
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}
	for i, w := range want {
		if got := backoff(i+1, lo, hi); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	for _, n := range []int{10, 11, 50, 1000} {
		if got := backoff(n, lo, hi); got != hi {
			t.Errorf("backoff(%d) = %v, want the cap %v", n, got, hi)
		}
	}
}

func TestBuildTime(t *testing.T) {
	old := BuildTime
	t.Cleanup(func() { BuildTime = old })
	fallback, _ := time.Parse(time.RFC3339, fallbackBuildTime)
	for in, want := range map[string]time.Time{
		"":                     fallback,
		"garbage":              fallback,
		"-5":                   fallback,
		"1800000000":           time.Unix(1800000000, 0),
		"2027-01-02T03:04:05Z": time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC),
	} {
		BuildTime = in
		if got := DefaultBuildTime(); !got.Equal(want) {
			t.Errorf("BuildTime %q: DefaultBuildTime() = %v, want %v", in, got, want)
		}
	}
}
