package board

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Paths of the device-tree files read by Detect, relative to the root of the
// file system handed to DetectFS.
const (
	CompatiblePath = "proc/device-tree/compatible"
	ModelPath      = "proc/device-tree/model"
)

// maxPropertyLen bounds what is read from a device-tree property: real
// compatible lists are a few hundred bytes.
const maxPropertyLen = 4096

// All returns every known profile, "none" last. The slice is a fresh copy.
func All() []Profile { return profiles() }

// ByName returns the profile with the given name.
func ByName(name string) (Profile, error) {
	var names []string
	for _, p := range profiles() {
		if p.Name == name {
			return p, nil
		}
		names = append(names, p.Name)
	}
	return Profile{}, fmt.Errorf("board: unknown board %q (known: %s)", name, strings.Join(names, ", "))
}

// Detect reads the running system's device tree and returns its profile.
func Detect() Profile { return DetectFS(os.DirFS("/")) }

// DetectFS detects the board from CompatiblePath (most specific string first)
// and, failing that, ModelPath in fsys. An unknown board or a missing device
// tree yields the "none" profile; Reason always says what happened.
func DetectFS(fsys fs.FS) Profile {
	table := profiles()
	compat, cerr := readProperty(fsys, CompatiblePath)
	var list []string
	if cerr == nil {
		list, cerr = ParseCompatible(compat)
	}
	if cerr == nil {
		for _, c := range list {
			for _, p := range table {
				for _, pc := range p.Compatible {
					if pc == c {
						p.Reason = fmt.Sprintf("compatible %q", c)
						return p
					}
				}
			}
		}
	}
	model, merr := readProperty(fsys, ModelPath)
	m := strings.TrimSpace(strings.TrimRight(string(model), "\x00"))
	if merr == nil && m != "" {
		for _, p := range table {
			for _, pm := range p.Models {
				if pm == m {
					p.Reason = fmt.Sprintf("model %q", m)
					if cerr != nil {
						p.Reason += fmt.Sprintf(" (compatible unusable: %v)", cerr)
					}
					return p
				}
			}
		}
	}
	switch {
	case errors.Is(cerr, fs.ErrNotExist) && errors.Is(merr, fs.ErrNotExist):
		return NoneProfile("no device tree at /proc/device-tree (development host?)")
	case cerr != nil:
		return NoneProfile(fmt.Sprintf("unknown board: %v; model %q matches no profile", cerr, m))
	default:
		return NoneProfile(fmt.Sprintf("unknown board: compatible %s and model %q match no profile",
			quoteList(list), m))
	}
}

func readProperty(fsys fs.FS, path string) ([]byte, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return nil, fmt.Errorf("board: read /%s: %w", path, err)
	}
	defer f.Close()
	buf := make([]byte, maxPropertyLen+1)
	n := 0
	for n < len(buf) {
		k, err := f.Read(buf[n:])
		n += k
		if err != nil {
			break
		}
	}
	if n > maxPropertyLen {
		return nil, fmt.Errorf("board: read /%s: longer than %d bytes", path, maxPropertyLen)
	}
	return buf[:n], nil
}

// ParseCompatible splits a device-tree compatible property: NUL-terminated
// strings, most specific first. It rejects empty input, empty entries,
// unprintable bytes and oversized input, naming what is wrong.
func ParseCompatible(b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, errors.New("board: compatible is empty")
	}
	if len(b) > maxPropertyLen {
		return nil, fmt.Errorf("board: compatible is %d bytes, more than %d", len(b), maxPropertyLen)
	}
	// The property ends with a NUL; tolerate its absence (a hand-made file).
	s := strings.TrimSuffix(string(b), "\x00")
	parts := strings.Split(s, "\x00")
	for i, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("board: compatible entry %d is empty", i)
		}
		for j := 0; j < len(p); j++ {
			if c := p[j]; c < 0x21 || c > 0x7e {
				return nil, fmt.Errorf("board: compatible entry %d has byte 0x%02x at %d", i, c, j)
			}
		}
	}
	return parts, nil
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, " ") + "]"
}
