package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	muts, err := parse(strings.NewReader("# comment\n\nrule: r1\nfile: a.go\nfrom: if x {\\n\\ty()\nto: if false {\ntest: ./p TestA|TestB\n\n\nrule: r2\nfile: b.go\nfrom: a\nto: b\ntest: ./q\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(muts) != 2 || muts[0].from != "if x {\n\ty()" || muts[0].pkg != "./p" || muts[0].run != "TestA|TestB" || muts[0].line != 3 ||
		muts[1].pkg != "./q" || muts[1].run != "" {
		t.Fatalf("%+v", muts)
	}
	for _, bad := range []string{
		"rule: r\nfile: a.go\nfrom: a\nto: b\n",                         // no test
		"rule: r\nrule: again\nfile: a.go\nfrom: a\nto: b\ntest: ./p\n", // twice
		"rule: r\nfile: a.go\nfrom: a\nto: b\ntest: ./p\ncolour: red\n", // unknown key
		"rule r\n", // no colon
	} {
		if _, err := parse(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestListIsValid: every mutation in the list names a file that holds its
// fragment once, so the list cannot silently go stale.
func TestListIsValid(t *testing.T) {
	f, err := os.Open("mutations.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	muts, err := parse(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range muts {
		src, err := os.ReadFile(filepath.Join("..", "..", m.file))
		if err != nil {
			t.Errorf("%s: %v", m.rule, err)
			continue
		}
		if n := strings.Count(string(src), m.from); n != 1 {
			t.Errorf("%s: %s holds the fragment %d times: %q", m.rule, m.file, n, m.from)
		}
	}
}
