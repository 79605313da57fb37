// Package modules works out which kernel modules a board's image carries: the
// drivers its device tree asks for (matched through the kernel's
// modules.alias), plus what the tree cannot tell, with their dependencies
// through modules.dep.
package modules

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// Name returns the canonical module name of a module file path or name:
// "kernel/drivers/net/ethernet/realtek/r8169.ko.xz" and "r8169" give "r8169",
// and dashes become underscores, as the kernel names modules.
func Name(p string) string {
	b := path.Base(p)
	for _, ext := range []string{".xz", ".gz", ".zst"} {
		b = strings.TrimSuffix(b, ext)
	}
	b = strings.TrimSuffix(b, ".ko")
	return strings.ReplaceAll(b, "-", "_")
}

// Alias is one line of modules.alias: modaliases matching Pattern (a shell
// glob) are served by Module.
type Alias struct {
	Pattern string
	Module  string
}

// maxLine bounds a line of modules.alias or modules.dep.
const maxLine = 64 << 10

// ParseAliases reads modules.alias ("alias PATTERN MODULE" lines; blank lines
// and # comments are skipped).
func ParseAliases(r io.Reader) ([]Alias, error) {
	var out []Alias
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		// A few aliases hold spaces (sound card names): the module is the
		// last field, the pattern everything between.
		f := strings.Fields(l)
		if len(f) < 3 || f[0] != "alias" {
			return nil, fmt.Errorf("modules: modules.alias line %d: want \"alias PATTERN MODULE\", got %.80q", n, l)
		}
		out = append(out, Alias{Pattern: strings.Join(f[1:len(f)-1], " "), Module: Name(f[len(f)-1])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules: read modules.alias: %w", err)
	}
	return out, nil
}

// Index is modules.dep: where each module's file is and what it needs.
type Index struct {
	// Path maps a module name to its file, relative to /lib/modules/<abi>.
	Path map[string]string
	// Deps maps a module name to the names of the modules it needs.
	Deps map[string][]string
}

// ParseDep reads modules.dep ("PATH: DEP_PATH ..." lines).
func ParseDep(r io.Reader) (*Index, error) {
	ix := &Index{Path: map[string]string{}, Deps: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		file, deps, ok := strings.Cut(l, ":")
		file = strings.TrimSpace(file)
		if !ok || file == "" || !path.IsAbs("/"+file) || strings.Contains(file, "..") {
			return nil, fmt.Errorf("modules: modules.dep line %d: want \"PATH: DEPS\", got %.80q", n, l)
		}
		name := Name(file)
		ix.Path[name] = file
		var ds []string
		for _, d := range strings.Fields(deps) {
			ds = append(ds, Name(d))
		}
		ix.Deps[name] = ds
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules: read modules.dep: %w", err)
	}
	return ix, nil
}

// ErrUnknown says a module is not in modules.dep.
var ErrUnknown = errors.New("no such module in modules.dep")

// Closure returns the modules named and everything they need, each once,
// every module after the modules it needs. Names of built-in modules (in
// builtin) are dropped: the kernel has them already.
func (ix *Index) Closure(names []string, builtin map[string]bool) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, from []string) error
	visit = func(n string, from []string) error {
		n = Name(n)
		if builtin[n] || state[n] == 2 {
			return nil
		}
		if state[n] == 1 {
			return fmt.Errorf("modules: dependency cycle: %s -> %s", strings.Join(from, " -> "), n)
		}
		if _, ok := ix.Path[n]; !ok {
			if len(from) > 0 {
				return fmt.Errorf("modules: %s (needed by %s): %w", n, from[len(from)-1], ErrUnknown)
			}
			return fmt.Errorf("modules: %s: %w", n, ErrUnknown)
		}
		state[n] = 1
		for _, d := range ix.Deps[n] {
			if err := visit(d, append(from, n)); err != nil {
				return err
			}
		}
		state[n] = 2
		order = append(order, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// ParseBuiltin reads modules.builtin (one path per line) into a set of names.
func ParseBuiltin(r io.Reader) (map[string]bool, error) {
	set := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			set[Name(l)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules: read modules.builtin: %w", err)
	}
	return set, nil
}

// Match returns the modules whose alias patterns match modalias, sorted.
func Match(aliases []Alias, modalias string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range aliases {
		if !seen[a.Module] && Glob(a.Pattern, modalias) {
			seen[a.Module] = true
			out = append(out, a.Module)
		}
	}
	sort.Strings(out)
	return out
}

// Glob reports whether s matches the shell pattern p the way fnmatch(3)
// without flags does, as the kernel's module aliases are written: '*'
// matches any run of bytes (slashes too), '?' one byte, '[...]' a set
// ('!' or '^' negates, ranges with '-'), and '\' quotes the next byte. A
// malformed set matches its '[' literally.
func Glob(p, s string) bool {
	// Iterative matching with one backtrack point for the last '*'.
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch c := p[pi]; c {
			case '*':
				starP, starS = pi, si
				pi++
				continue
			case '?':
				pi++
				si++
				continue
			case '[':
				if ok, next, valid := matchSet(p, pi, s[si]); valid {
					if ok {
						pi, si = next, si+1
						continue
					}
				} else if s[si] == '[' {
					pi++
					si++
					continue
				}
			case '\\':
				if pi+1 < len(p) && p[pi+1] == s[si] {
					pi += 2
					si++
					continue
				}
				if pi+1 == len(p) && s[si] == '\\' {
					pi++
					si++
					continue
				}
			default:
				if c == s[si] {
					pi++
					si++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP+1, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchSet matches byte c against the set starting at p[i] == '['. It
// returns whether c is in the set, the index after the set, and whether the
// set is well formed (has its closing ']').
func matchSet(p string, i int, c byte) (bool, int, bool) {
	j := i + 1
	neg := false
	if j < len(p) && (p[j] == '!' || p[j] == '^') {
		neg = true
		j++
	}
	in := false
	first := true
	for j < len(p) {
		if p[j] == ']' && !first {
			return in != neg, j + 1, true
		}
		first = false
		lo := p[j]
		if lo == '\\' && j+1 < len(p) {
			j++
			lo = p[j]
		}
		hi := lo
		if j+2 < len(p) && p[j+1] == '-' && p[j+2] != ']' {
			hi = p[j+2]
			if hi == '\\' && j+3 < len(p) {
				j++
				hi = p[j+2]
			}
			j += 2
		}
		if lo <= c && c <= hi {
			in = true
		}
		j++
	}
	return false, i + 1, false
}
