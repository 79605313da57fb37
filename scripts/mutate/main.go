// Command mutate breaks the rules that guard accounts, secrets and
// recovery on purpose, one at a time, and checks that a test fails each
// time: a rule no test notices breaking is not proven.
//
// Each mutation in mutations.txt replaces one exact line fragment of one
// file (found exactly once, or the list is out of date) and names the
// tests that must fail. The source tree is never touched: the mutated file
// reaches the compiler through go's -overlay.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// mutation is one deliberate break of a rule.
type mutation struct {
	rule     string // what a test must notice
	file     string // relative to the module root
	from, to string // the fragment and its replacement
	pkg      string // the package whose tests must fail
	run      string // -run pattern of those tests
	line     int    // where the mutation starts in the list
}

// outcome of one mutation.
type outcome struct {
	m       mutation
	killed  bool
	err     error
	took    time.Duration
	details string
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("mutate", flag.ContinueOnError)
	list := fs.String("list", "scripts/mutate/mutations.txt", "the mutations")
	jobs := fs.Int("j", 2, "mutations tested at once")
	only := fs.String("only", "", "test only the mutations whose rule contains this text")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Open(*list)
	if err != nil {
		return err
	}
	muts, err := parse(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", *list, err)
	}
	if *only != "" {
		var kept []mutation
		for _, m := range muts {
			if strings.Contains(m.rule, *only) {
				kept = append(kept, m)
			}
		}
		muts = kept
	}
	if len(muts) == 0 {
		return errors.New("no mutations to test")
	}
	tmp, err := os.MkdirTemp("", "mutate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	start := time.Now()
	results := make([]outcome, len(muts))
	sem := make(chan struct{}, max(*jobs, 1))
	var wg sync.WaitGroup
	for i, m := range muts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = test(ctx, m, filepath.Join(tmp, fmt.Sprint(i)))
		}()
	}
	wg.Wait()

	var survived, broken int
	for _, r := range results {
		status := "killed"
		switch {
		case r.err != nil:
			status, broken = "ERROR", broken+1
		case !r.killed:
			status, survived = "SURVIVED", survived+1
		}
		fmt.Fprintf(out, "%-8s %5.1fs  %s (%s:%d)\n", status, r.took.Seconds(), r.m.rule, *list, r.m.line)
		if r.err != nil {
			fmt.Fprintf(out, "         %v\n", r.err)
		}
		if status != "killed" && r.details != "" {
			fmt.Fprintf(out, "%s\n", indent(r.details))
		}
	}
	fmt.Fprintf(out, "mutate: %d mutations, %d killed, %d survived, %d broken, in %.0fs\n",
		len(results), len(results)-survived-broken, survived, broken, time.Since(start).Seconds())
	if survived+broken > 0 {
		return fmt.Errorf("%d mutations survived and %d could not be tested", survived, broken)
	}
	return nil
}

// test applies m through an overlay in dir and runs its tests.
func test(ctx context.Context, m mutation, dir string) (o outcome) {
	o.m = m
	t0 := time.Now()
	defer func() { o.took = time.Since(t0) }()
	src, err := os.ReadFile(m.file)
	if err != nil {
		o.err = err
		return o
	}
	if n := bytes.Count(src, []byte(m.from)); n != 1 {
		o.err = fmt.Errorf("%s holds the fragment %d times, want once: %q", m.file, n, m.from)
		return o
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		o.err = err
		return o
	}
	mutated := filepath.Join(dir, filepath.Base(m.file))
	if err := os.WriteFile(mutated, bytes.Replace(src, []byte(m.from), []byte(m.to), 1), 0o644); err != nil {
		o.err = err
		return o
	}
	abs, err := filepath.Abs(m.file)
	if err != nil {
		o.err = err
		return o
	}
	overlay := filepath.Join(dir, "overlay.json")
	raw, _ := json.Marshal(map[string]map[string]string{"Replace": {abs: mutated}})
	if err := os.WriteFile(overlay, raw, 0o644); err != nil {
		o.err = err
		return o
	}
	// vet runs in make lint; here it would only double each compile.
	args := []string{"test", "-overlay", overlay, "-count=1", "-vet=off", "-timeout", "5m"}
	if m.run != "" {
		args = append(args, "-run", m.run)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, m.pkg)...)
	b, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		o.details = lastLines(string(b), 5)
		if strings.Contains(string(b), "no tests to run") {
			o.err = fmt.Errorf("-run %q matches no test in %s", m.run, m.pkg)
		}
	case errors.As(err, &exit) && strings.Contains(string(b), "--- FAIL"):
		o.killed = true
	case strings.Contains(string(b), "[build failed]") || strings.Contains(string(b), "[setup failed]"):
		// A mutation that does not compile proves nothing.
		o.err = errors.New("the mutated code does not build")
		o.details = lastLines(string(b), 15)
	default:
		o.err = fmt.Errorf("go test: %v", err)
		o.details = lastLines(string(b), 15)
	}
	return o
}

// parse reads the list: blocks of "key: value" lines, one per mutation,
// separated by blank lines; "#" starts a comment line. Values are taken
// after "key: " exactly, tabs and all.
func parse(r io.Reader) ([]mutation, error) {
	var out []mutation
	var cur mutation
	var have map[string]bool
	flush := func() error {
		if have == nil {
			return nil
		}
		for _, k := range []string{"rule", "file", "from", "to", "test"} {
			if !have[k] {
				return fmt.Errorf("line %d: mutation without %q", cur.line, k)
			}
		}
		out = append(out, cur)
		cur, have = mutation{}, nil
		return nil
	}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.TrimSpace(line) == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		key, value, ok := strings.Cut(line, ": ")
		if !ok {
			return nil, fmt.Errorf("line %d: want \"key: value\", got %q", n, line)
		}
		if have == nil {
			have, cur.line = map[string]bool{}, n
		}
		if have[key] {
			return nil, fmt.Errorf("line %d: %q given twice", n, key)
		}
		have[key] = true
		switch key {
		case "rule":
			cur.rule = value
		case "file":
			cur.file = value
		case "from":
			cur.from = unescape(value)
		case "to":
			cur.to = unescape(value)
		case "test":
			cur.pkg, cur.run, _ = strings.Cut(value, " ")
		default:
			return nil, fmt.Errorf("line %d: unknown key %q", n, key)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// unescape turns \n and \t into a newline and a tab, so a fragment may
// span lines.
func unescape(s string) string {
	return strings.NewReplacer(`\n`, "\n", `\t`, "\t").Replace(s)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func indent(s string) string { return "         " + strings.ReplaceAll(s, "\n", "\n         ") }
