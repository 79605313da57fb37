package board

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/warthog618/go-gpiocdev"
)

// ErrChipNotFound is returned by FindChipByLabel when no chip has the label.
var ErrChipNotFound = errors.New("no GPIO chip with that label")

// ChipFinder finds GPIO character devices by label. Its fields are the seams
// tests replace; the zero value is not usable, use NewChipFinder.
type ChipFinder struct {
	// Glob lists candidate device paths, e.g. filepath.Glob("/dev/gpiochip*").
	Glob func(pattern string) ([]string, error)
	// Label returns the label of the chip at path.
	Label func(path string) (string, error)
}

// NewChipFinder returns a finder that reads chip labels through the GPIO
// character device (GPIO_GET_CHIPINFO_IOCTL via go-gpiocdev).
func NewChipFinder() ChipFinder {
	return ChipFinder{Glob: filepath.Glob, Label: cdevLabel}
}

func cdevLabel(path string) (string, error) {
	c, err := gpiocdev.NewChip(path)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.Label, nil
}

// FindChipByLabel returns the /dev/gpiochipN path of the chip labelled label.
func FindChipByLabel(label string) (string, error) {
	return NewChipFinder().Find(label)
}

// Find returns the path of the chip labelled label, scanning /dev/gpiochip*
// in numeric order. Chips whose label cannot be read are skipped but named in
// the error if nothing matches.
func (f ChipFinder) Find(label string) (string, error) {
	if label == "" {
		return "", errors.New("board: find GPIO chip: empty label")
	}
	paths, err := f.Glob("/dev/gpiochip*")
	if err != nil {
		return "", fmt.Errorf("board: list /dev/gpiochip*: %w", err)
	}
	sort.Slice(paths, func(i, j int) bool { return chipIndex(paths[i]) < chipIndex(paths[j]) })
	var seen, failed []string
	for _, p := range paths {
		l, err := f.Label(p)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		if l == label {
			return p, nil
		}
		seen = append(seen, fmt.Sprintf("%s=%q", filepath.Base(p), l))
	}
	msg := fmt.Sprintf("board: find GPIO chip %q: %v", label, ErrChipNotFound)
	if len(paths) == 0 {
		msg += " (no /dev/gpiochip* devices)"
	} else {
		msg += " (have " + strings.Join(seen, ", ") + ")"
	}
	if len(failed) > 0 {
		msg += "; unreadable: " + strings.Join(failed, "; ")
	}
	return "", &chipError{msg: msg}
}

// chipError keeps the message and still matches ErrChipNotFound.
type chipError struct{ msg string }

func (e *chipError) Error() string { return e.msg }
func (e *chipError) Unwrap() error { return ErrChipNotFound }

func chipIndex(p string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "gpiochip"))
	if err != nil {
		return 1 << 30
	}
	return n
}
