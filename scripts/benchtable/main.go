// Command benchtable reads benchmark output (`go test -bench` lines, from
// `make bench` or `make bench-vm`) on stdin, passes it through, and ends
// with one table of the figures the firmware is held to: figure, floor, the
// value measured now (the median of the runs, with their spread), the goal,
// and pass or short.
//
// A figure no benchmark reported is "missing" and makes the exit status 1,
// so a renamed benchmark or metric cannot quietly drop a row; a figure
// short of its goal is reported, not an error: the table is a measurement.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// figure is one row: the metric a benchmark reports and the goal it is held to.
type figure struct {
	set    string // "host" (make bench) or "vm" (make bench-vm)
	name   string
	floor  string
	bench  string // benchmark name without the -N GOMAXPROCS suffix
	metric string // unit of the b.ReportMetric value
	op     string // ">=", "<=" or ">"
	goal   float64
	unit   string // printed after values
	// besides: other metrics of the same benchmark shown in the row, which
	// say what the figure is made of; they are not judged.
	besides []beside
}

// beside is a metric shown with a figure: format takes its median.
type beside struct {
	metric string
	format string
}

// figures are the firmware's performance goals (issue: performance).
var figures = []figure{
	{"host", "password step logins/s ÷ raw argon2id hashes/s", "raw argon2id, same parameters and parallelism, interleaved rounds, each ending with a full collection",
		"BenchmarkPasswordStepRatio", "ratio", ">=", 0.95, "", nil},
	{"host", "session-checked GET /api/v1/me req/s ÷ bare net/http req/s", "bare net/http handler, interleaved rounds",
		"BenchmarkSessionGetRatio", "ratio", ">=", 0.85, "", nil},
	{"host", "HTTPS login (new connection) ÷ plain HTTP login", "the same login over HTTP, interleaved rounds, each ending with a full collection",
		"BenchmarkTLSLoginRatio", "ratio", ">=", 0.8, "", nil},
	{"host", "HTTPS session-checked GET ÷ bare TLS handler", "bare net/http over TLS, same certificate, interleaved rounds",
		"BenchmarkTLSSessionGetRatio", "ratio", ">=", 0.85, "", nil},
	{"host", "authd idle RSS after start (start-up hashes done)", "-",
		"BenchmarkDaemonMemory", "idle_MiB", "<=", 20, " MiB", nil},
	{"host", "authd idle RSS again after 20 hashes", "-",
		"BenchmarkDaemonMemory", "idle_after_20_hashes_MiB", "<=", 20, " MiB", nil},
	{"host", "peak RSS under 200 concurrent logins ÷ (4 hash slots × 32 MiB + 16 MiB)", "the hashing memory the cap allows",
		"BenchmarkDaemonMemory", "peak/goal", "<=", 1.0, "", []beside{
			{"peak_MiB", "peak %.1f MiB"}, {"peak_anon_MiB", "allocated %.1f MiB"},
			{"peak_file_MiB", "binary's pages %.2f MiB"}}},
	{"host", "of those 200 logins, served within the 3 s slot wait", "53 (before this goal)",
		"BenchmarkDaemonMemory", "logins_ok", ">", 53, "", nil},
	{"host", "flasher write MiB/s ÷ dd bs=4M oflag=direct", "dd to the same loop device, alternating",
		"BenchmarkFlashVsDD", "flash/dd", ">=", 0.9, "", nil},

	{"vm", "firmware initramfs ÷ bare u-root core, both zstd -19 as shipped", "u-root's core commands alone",
		"BenchmarkInitramfsSize", "ratio", "<=", 1.4, "", []beside{{"xz_ratio", "xz -9 of both: %.3f"}}},
	{"vm", "boot to \"authd ready\" ÷ bare u-root core boot to its uinit", "bare u-root core, same QEMU flags (-kernel), interleaved",
		"BenchmarkBootRatio", "ratio", "<=", 1.3, "", nil},
	{"vm", "qemu-virt disk boot through U-Boot ÷ -kernel boot of the same initramfs", "-kernel boot, same disk and flags, interleaved",
		"BenchmarkUBootRatio", "ratio", "<=", 1.3, "", []beside{
			{"ratio_without_countdown", "%.3f without U-Boot's countdown"}, {"countdown_s", "the countdown %.2f s"}}},
	{"vm", "RESET release (kernel timestamp) to recovery durable", "one fsync of 4 KiB on the same disk",
		"BenchmarkResetDurable", "ms", "<=", 60, " ms", nil},
}

// spreadMetric is the metric in which a benchmark reports the spread of its
// own samples, in percent: (max - min) / median for the VM's figures, the
// interquartile range / median for the login ratios' rounds and the
// flasher's.
const spreadMetric = "spread_%"

// benchLine matches "BenchmarkName-2   	  5	  1234 ns/op	  0.97 ratio".
// A benchmark that prints while it runs splits its line: the name comes
// first (benchName), the count and figures on a later line (benchRest).
var (
	benchLine = regexp.MustCompile(`^(Benchmark[^\s/-]+(?:/[^\s]+?)?)(?:-\d+)?\s+\d+\s+(.*)$`)
	benchName = regexp.MustCompile(`^(Benchmark[^\s/-]+(?:/[^\s]+?)?)(?:-\d+)?\s`)
	benchRest = regexp.MustCompile(`^\s+\d+\s+(.*\d.*)$`)
)

// parse collects every value reported per benchmark and metric, in order.
func parse(r io.Reader, echo io.Writer) (map[string][]float64, error) {
	got := map[string][]float64{}
	pending := "" // a benchmark whose figures have not come yet
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if echo != nil {
			fmt.Fprintln(echo, line)
		}
		var name, figures string
		if m := benchLine.FindStringSubmatch(line); m != nil {
			name, figures, pending = m[1], m[2], ""
		} else if m := benchName.FindStringSubmatch(line); m != nil {
			pending = m[1]
			continue
		} else if m := benchRest.FindStringSubmatch(line); m != nil && pending != "" {
			name, figures, pending = pending, m[1], ""
		} else {
			continue
		}
		f := strings.Fields(figures)
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			key := name + " " + f[i+1]
			got[key] = append(got[key], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("benchtable: read benchmark output: %w", err)
	}
	return got, nil
}

// row is a figure as measured.
type row struct {
	figure
	runs   int
	now    float64 // median of the runs
	spread float64 // (max - min) / median, in percent
	result string  // "pass", "short" or "missing"
	// samples and sampleSpread: what a single run reported of its own
	// samples (the "samples" and "spread_%" metrics), for the figures
	// whose one run is several boots, presses or flasher rounds.
	samples      int
	sampleSpread float64
	// besides are the figure's besides as measured (median of the runs).
	besides []string
}

func judge(f figure, vals []float64) row {
	r := row{figure: f, runs: len(vals)}
	if len(vals) == 0 {
		r.result = "missing"
		return r
	}
	r.now = median(vals)
	if r.now != 0 {
		r.spread = 100 * (slices.Max(vals) - slices.Min(vals)) / math.Abs(r.now)
	}
	ok := false
	switch f.op {
	case ">=":
		ok = r.now >= f.goal
	case "<=":
		ok = r.now <= f.goal
	case ">":
		ok = r.now > f.goal
	}
	r.result = "short"
	if ok {
		r.result = "pass"
	}
	return r
}

// median is the middle value of vals (not empty), or the mean of the two
// middle ones.
func median(vals []float64) float64 {
	s := slices.Sorted(slices.Values(vals))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func number(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// table renders rows as Markdown.
func table(rows []row) string {
	var b strings.Builder
	b.WriteString("| figure | floor | now | goal | result |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		now := "not measured"
		if r.runs > 0 {
			now = number(r.now) + r.unit
			var notes []string
			switch {
			case r.runs > 1:
				notes = append(notes, fmt.Sprintf("%d runs, spread %.1f %%", r.runs, r.spread))
			case r.samples > 1:
				notes = append(notes, fmt.Sprintf("%d samples, spread %.1f %%", r.samples, r.sampleSpread))
			}
			notes = append(notes, r.besides...)
			if len(notes) > 0 {
				now += " (" + strings.Join(notes, "; ") + ")"
			}
		}
		goal := strings.Replace(strings.Replace(r.op, ">=", "≥", 1), "<=", "≤", 1) + " " + number(r.goal) + r.unit
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.name, r.floor, now, goal, r.result)
	}
	return b.String()
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("benchtable", flag.ContinueOnError)
	set := fs.String("set", "host", `which figures: "host" (make bench) or "vm" (make bench-vm)`)
	out := fs.String("o", "", "also write the table to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rows []row
	got, err := parse(stdin, stdout)
	if err != nil {
		return err
	}
	var missing []string
	for _, f := range figures {
		if f.set != *set {
			continue
		}
		r := judge(f, got[f.bench+" "+f.metric])
		if n, sp := got[f.bench+" samples"], got[f.bench+" "+spreadMetric]; r.runs == 1 && len(n) == 1 && len(sp) == 1 {
			r.samples, r.sampleSpread = int(n[0]), sp[0]
		}
		for _, b := range f.besides {
			if vals := got[f.bench+" "+b.metric]; len(vals) > 0 {
				r.besides = append(r.besides, fmt.Sprintf(b.format, median(vals)))
			}
		}
		if r.result == "missing" {
			missing = append(missing, f.bench+" "+f.metric)
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return fmt.Errorf("benchtable: -set %q: no such set of figures (host, vm)", *set)
	}
	t := table(rows)
	fmt.Fprintf(stdout, "\n%s", t)
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			return fmt.Errorf("benchtable: %w", err)
		}
		if err := os.WriteFile(*out, []byte(t), 0o644); err != nil {
			return fmt.Errorf("benchtable: write the table: %w", err)
		}
	}
	if len(missing) > 0 {
		return errors.New("benchtable: no benchmark reported " + strings.Join(missing, ", "))
	}
	return nil
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
