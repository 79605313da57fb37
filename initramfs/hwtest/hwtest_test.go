package hwtest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("a.test", "#!/bin/sh\n[ \"$RKNAS_REQUIRE_HW\" = 1 ] && [ \"$1\" = -test.v ]\n", 0o755)
	write("b.test", "#!/bin/sh\necho boom\nexit 1\n", 0o755)
	write("c.test", "#!/bin/sh\nexit 0\n", 0o644) // not executable: ignored
	write("notes.txt", "x", 0o755)                // not a test binary: ignored
	if err := os.Mkdir(filepath.Join(dir, "pkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Runs from its own directory, where its testdata sits.
	write("pkg/testdata", "x", 0o644)
	write("pkg/pkg.test", "#!/bin/sh\n[ -f testdata ] && [ \"$4 $5\" = \"-test.run ^TestHW$\" ]\n", 0o755)
	write("pkg/pkg.test.run", "^TestHW$\n", 0o644)
	var out bytes.Buffer
	r, err := RunDir(context.Background(), dir, &out)
	if err != nil {
		t.Fatal(err)
	}
	if r != (Result{Pass: 2, Fail: 1}) {
		t.Errorf("result %+v, want 2 pass 1 fail", r)
	}
	for _, want := range []string{"RKNAS-TEST PASS a.test\n", "boom\n", "RKNAS-TEST FAIL b.test (exit status 1)\n", "RKNAS-TEST PASS pkg.test\n", "RKNAS-TEST DONE pass=2 fail=1\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunDirMissing(t *testing.T) {
	if _, err := RunDir(context.Background(), filepath.Join(t.TempDir(), "none"), &bytes.Buffer{}); err == nil {
		t.Fatal("RunDir on a missing directory succeeded")
	}
}
