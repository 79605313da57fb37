// Package simctl creates the qemu-virt board's simulated GPIO chip (gpio-sim)
// and serves the VM's test control channel that presses the simulated RESET
// button and reads the simulated LEDs. It is used only in the VM.
package simctl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The qemu-virt convention: one bank labelled rknas-sim with four lines.
const (
	DevName       = "rknas"
	BankLabel     = "rknas-sim"
	NumLines      = 4
	LineReset     = 0 // RESET button, active low: pulled up while released
	LineLEDStatus = 1
	LineLEDAlert  = 2
)

// lineNames are the convention's line names by offset (line 3 is unused).
var lineNames = map[int]string{LineReset: "reset", LineLEDStatus: "led-status", LineLEDAlert: "led-alert"}

// Sim is a live gpio-sim chip.
type Sim struct {
	// Chip is the gpiochip name (e.g. "gpiochip1") the kernel gave the bank.
	Chip string
	// lineDir is /sys/devices/platform/<dev_name>/<chip_name>.
	lineDir string
}

// Create builds the convention's gpio-sim device under configfs (normally
// /sys/kernel/config) and makes it live, then releases the RESET button
// (gpio-sim lines start pulled down, which would read as "pressed"). sysfs is
// normally /sys. Every attribute is written with a single write(2): configfs
// treats each write as a separate store.
func Create(configfs, sysfs string) (*Sim, error) {
	dev := filepath.Join(configfs, "gpio-sim", DevName)
	bank := filepath.Join(dev, "bank0")
	if live, err := os.ReadFile(filepath.Join(dev, "live")); err == nil && strings.TrimSpace(string(live)) == "1" {
		return open(dev, sysfs) // already created (uinit restarted)
	}
	if err := os.MkdirAll(bank, 0o755); err != nil {
		return nil, fmt.Errorf("simctl: create %s (is gpio-sim loaded and configfs mounted?): %w", bank, err)
	}
	writes := [][2]string{
		{filepath.Join(bank, "label"), BankLabel},
		{filepath.Join(bank, "num_lines"), strconv.Itoa(NumLines)},
	}
	for off := 0; off < NumLines; off++ {
		name, ok := lineNames[off]
		if !ok {
			continue
		}
		line := filepath.Join(bank, fmt.Sprintf("line%d", off))
		if err := os.MkdirAll(line, 0o755); err != nil {
			return nil, fmt.Errorf("simctl: create %s: %w", line, err)
		}
		writes = append(writes, [2]string{filepath.Join(line, "name"), name})
	}
	writes = append(writes, [2]string{filepath.Join(dev, "live"), "1"})
	for _, w := range writes {
		if err := writeAttr(w[0], w[1]); err != nil {
			return nil, err
		}
	}
	s, err := open(dev, sysfs)
	if err != nil {
		return nil, err
	}
	if err := s.SetPull(LineReset, true); err != nil {
		return nil, err
	}
	return s, nil
}

func open(dev, sysfs string) (*Sim, error) {
	devName, err := readAttr(filepath.Join(dev, "dev_name"))
	if err != nil {
		return nil, err
	}
	chip, err := readAttr(filepath.Join(dev, "bank0", "chip_name"))
	if err != nil {
		return nil, err
	}
	if devName == "" || chip == "" {
		return nil, errors.New("simctl: gpio-sim device is not live (empty dev_name or chip_name)")
	}
	return &Sim{Chip: chip, lineDir: filepath.Join(sysfs, "devices", "platform", devName, chip)}, nil
}

// SetPull pulls line off up (true) or down (false).
func (s *Sim) SetPull(off int, up bool) error {
	v := "pull-down"
	if up {
		v = "pull-up"
	}
	return writeAttr(s.attr(off, "pull"), v)
}

// Pull reports whether line off is pulled up.
func (s *Sim) Pull(off int) (bool, error) {
	v, err := readAttr(s.attr(off, "pull"))
	return v == "pull-up", err
}

// Value reads the line's current value (0 or 1) as the chip sees it: the pull
// for an input, the driven value for an output.
func (s *Sim) Value(off int) (int, error) {
	v, err := readAttr(s.attr(off, "value"))
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("simctl: parse %s: %w", s.attr(off, "value"), err)
	}
	return n, nil
}

func (s *Sim) attr(off int, name string) string {
	return filepath.Join(s.lineDir, fmt.Sprintf("sim_gpio%d", off), name)
}

func writeAttr(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("simctl: write %s: %w", path, err)
	}
	return nil
}

func readAttr(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("simctl: read %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}
