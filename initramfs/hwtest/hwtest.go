// Package hwtest runs Go test binaries (built with `go test -c` for arm64) that
// need real hardware inside the VM and reports each result on the console with
// markers the host-side VM test waits for.
package hwtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Markers printed at the start of a line, followed by the binary's name.
const (
	MarkerPass = "RKNAS-TEST PASS"
	MarkerFail = "RKNAS-TEST FAIL"
	MarkerDone = "RKNAS-TEST DONE" // followed by pass=N fail=M
)

// Timeout bounds one test binary.
const Timeout = 5 * time.Minute

// Result counts the binaries run by RunDir.
type Result struct{ Pass, Fail int }

// RunDir runs every executable regular file named "*.test" in dir or in
// its direct subdirectories (one per package, beside the package's testdata),
// in path order, with RKNAS_REQUIRE_HW=1 (so hardware tests fail instead of
// skipping) and -test.v, from the binary's directory, streaming its output to
// w; then it prints one marker line per binary and a final MarkerDone line.
// A file "<binary>.run" beside a binary holds a -test.run pattern for it.
func RunDir(ctx context.Context, dir string, w io.Writer) (Result, error) {
	var paths []string
	for _, pat := range []string{"*.test", "*/*.test"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return Result{}, fmt.Errorf("hwtest: list %s: %w", dir, err)
		}
		for _, p := range m {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				paths = append(paths, p)
			}
		}
	}
	if _, err := os.Stat(dir); err != nil {
		return Result{}, fmt.Errorf("hwtest: %w", err)
	}
	sort.Strings(paths)
	var r Result
	for _, p := range paths {
		n := filepath.Base(p)
		err := runOne(ctx, p, w)
		if err != nil {
			r.Fail++
			fmt.Fprintf(w, "%s %s (%v)\n", MarkerFail, n, err)
		} else {
			r.Pass++
			fmt.Fprintf(w, "%s %s\n", MarkerPass, n)
		}
	}
	fmt.Fprintf(w, "%s pass=%d fail=%d\n", MarkerDone, r.Pass, r.Fail)
	return r, nil
}

func runOne(ctx context.Context, path string, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	args := []string{"-test.v", "-test.timeout", Timeout.String()}
	if b, err := os.ReadFile(path + ".run"); err == nil {
		args = append(args, "-test.run", strings.TrimSpace(string(b)))
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "RKNAS_REQUIRE_HW=1")
	// Tests find their testdata next to the binary, as under go test.
	cmd.Dir = filepath.Dir(path)
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %v", Timeout)
	}
	return err
}
