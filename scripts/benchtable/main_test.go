package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJudge(t *testing.T) {
	atLeast := figure{op: ">=", goal: 0.95}
	atMost := figure{op: "<=", goal: 20}
	above := figure{op: ">", goal: 53}
	for _, tc := range []struct {
		name   string
		f      figure
		vals   []float64
		now    float64
		spread float64
		result string
	}{
		{"one run above", atLeast, []float64{0.97}, 0.97, 0, "pass"},
		{"exactly the goal", atLeast, []float64{0.95}, 0.95, 0, "pass"},
		{"median of five, short", atLeast, []float64{0.99, 0.90, 0.93, 0.94, 0.96}, 0.94, 100 * 0.09 / 0.94, "short"},
		{"median of an even count", atMost, []float64{18, 22}, 20, 20, "pass"},
		{"above the most", atMost, []float64{20.5}, 20.5, 0, "short"},
		{"strictly more: equal is short", above, []float64{53}, 53, 0, "short"},
		{"strictly more", above, []float64{54}, 54, 0, "pass"},
		{"nothing reported", atLeast, nil, 0, 0, "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := judge(tc.f, tc.vals)
			if r.result != tc.result || abs(r.now-tc.now) > 1e-9 || abs(r.spread-tc.spread) > 1e-6 {
				t.Errorf("got now %v spread %v %s, want now %v spread %v %s", r.now, r.spread, r.result, tc.now, tc.spread, tc.result)
			}
		})
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func TestParse(t *testing.T) {
	in := `goos: linux
BenchmarkPasswordStepRatio-2   	       3	 1234 ns/op	        15.1 logins/s	         0.97 ratio	 1.2 spread_%
BenchmarkPasswordStepRatio-2   	       3	 1234 ns/op	        15.0 logins/s	         0.99 ratio
BenchmarkReleaseToRecovery/gpio-sim-2 	 10	 55 µs/release-to-recovery
BenchmarkResetDurable 1 41.5 ms 9.0 fsync_ms
BenchmarkFlashVsDD-2   	flash: write 513.8 MiB/s, dd 678.5 MiB/s: ratio 0.76 (goal >= 0.9)
       3	1084132291 ns/op	         0.7572 flash/dd
--- FAIL: BenchmarkOther
ok  	github.com/rknas/firmware/authd/api	12.3s
`
	var echo bytes.Buffer
	got, err := parse(strings.NewReader(in), &echo)
	if err != nil {
		t.Fatal(err)
	}
	if echo.String() != in {
		t.Errorf("the input is not passed through:\n%s", echo.String())
	}
	want := map[string][]float64{
		"BenchmarkPasswordStepRatio ns/op":                           {1234, 1234},
		"BenchmarkPasswordStepRatio logins/s":                        {15.1, 15.0},
		"BenchmarkPasswordStepRatio ratio":                           {0.97, 0.99},
		"BenchmarkPasswordStepRatio spread_%":                        {1.2},
		"BenchmarkReleaseToRecovery/gpio-sim µs/release-to-recovery": {55},
		"BenchmarkResetDurable ms":                                   {41.5},
		"BenchmarkResetDurable fsync_ms":                             {9},
		"BenchmarkFlashVsDD ns/op":                                   {1084132291},
		"BenchmarkFlashVsDD flash/dd":                                {0.7572},
	}
	if len(got) != len(want) {
		t.Errorf("got %d figures, want %d: %v", len(got), len(want), got)
	}
	for k, w := range want {
		if g := got[k]; len(g) != len(w) || (len(g) > 0 && g[0] != w[0]) {
			t.Errorf("%s: got %v, want %v", k, g, w)
		}
	}
}

func TestRunNamesMissingFigures(t *testing.T) {
	in := "BenchmarkPasswordStepRatio-2 3 1 ns/op 0.97 ratio\n"
	var out bytes.Buffer
	file := filepath.Join(t.TempDir(), "bench", "table.md")
	err := run([]string{"-set", "host", "-o", file}, strings.NewReader(in), &out)
	if err == nil || !strings.Contains(err.Error(), "BenchmarkSessionGetRatio ratio") {
		t.Fatalf("want an error naming the missing figure, got %v", err)
	}
	if strings.Contains(err.Error(), "BenchmarkPasswordStepRatio") {
		t.Errorf("a reported figure is named missing: %v", err)
	}
	table, rerr := os.ReadFile(file)
	if rerr != nil {
		t.Fatal(rerr)
	}
	hasRows(t, string(table), "| password step logins/s ÷ raw argon2id hashes/s | raw argon2id", "| 0.970 | ≥ 0.950 | pass |", "| not measured |", "| missing |")
	if err := run([]string{"-set", "nope"}, strings.NewReader(""), &out); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("an unknown set: %v", err)
	}
}

// A VM figure's one run shows the spread of its own samples.
func TestRunShowsTheSamplesOfOneRun(t *testing.T) {
	in := "BenchmarkInitramfsSize-2 1 1 ns/op 1.286 ratio\n" +
		"BenchmarkBootRatio-2 1 1 ns/op 1.70 ratio 5 samples 4.25 spread_%\n" +
		"BenchmarkUBootRatio-2 1 1 ns/op 1.33 ratio\n" +
		"BenchmarkResetDurable-2 1 1 ns/op 40 ms 9 samples 12.5 spread_%\n"
	hasRows(t, vmTable(t, in), "| 1.700 (5 samples, spread 4.2 %) | ≤ 1.300 | short |", "| 40 ms (9 samples, spread 12.5 %) |",
		"| 1.330 | ≤ 1.300 | short |", "| 1.286 | ≤ 1.400 | pass |")
}

// vmTable is the VM set's table made from in, all of whose figures are
// reported.
func vmTable(t *testing.T, in string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run([]string{"-set", "vm"}, strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// hasRows checks that table holds each of wants.
func hasRows(t *testing.T, table string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
}

// A figure's besides are shown in its row (median of their runs), and a
// beside no benchmark reported is left out rather than called missing.
func TestRunShowsBesides(t *testing.T) {
	in := "BenchmarkInitramfsSize-2 1 1 ns/op 1.286 ratio 1.308 xz_ratio\n" +
		"BenchmarkBootRatio-2 1 1 ns/op 1.70 ratio 5 samples 4.25 spread_%\n" +
		"BenchmarkUBootRatio-2 1 1 ns/op 1.45 ratio 5 samples 6.6 spread_% 1.039 ratio_without_countdown 2.001 countdown_s\n" +
		"BenchmarkResetDurable-2 1 1 ns/op 40 ms\n"
	hasRows(t, vmTable(t, in), "| 1.286 (xz -9 of both: 1.308) | ≤ 1.400 | pass |",
		"| 1.450 (5 samples, spread 6.6 %; 1.039 without U-Boot's countdown; the countdown 2.00 s) | ≤ 1.300 | short |",
		"| 40 ms | ≤ 60 ms | pass |")

	in = "BenchmarkDaemonMemory-2 1 1 ns/op 14 idle_MiB 15 idle_after_20_hashes_MiB 150 peak_MiB 1.04 peak/goal 138 peak_anon_MiB 11.5 peak_file_MiB 80 logins_ok\n" +
		"BenchmarkDaemonMemory-2 1 1 ns/op 14 idle_MiB 15 idle_after_20_hashes_MiB 152 peak_MiB 1.05 peak/goal 140 peak_anon_MiB 11.75 peak_file_MiB 82 logins_ok\n" +
		"BenchmarkDaemonMemory-2 1 1 ns/op 14 idle_MiB 15 idle_after_20_hashes_MiB 149 peak_MiB 1.03 peak/goal 139 peak_anon_MiB 12 peak_file_MiB 84 logins_ok\n"
	var out bytes.Buffer
	_ = run([]string{"-set", "host"}, strings.NewReader(in), &out) // the other host figures are missing
	hasRows(t, out.String(), "| 1.040 (3 runs, spread 1.9 %; peak 150.0 MiB; allocated 139.0 MiB; binary's pages 11.75 MiB) | ≤ 1.000 | short |")
}
