package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rknas/firmware/authd/button"
	"github.com/rknas/firmware/board"
)

// part is one thing the board must bring up, checked until it is there or
// the time is up.
type part struct {
	name  string
	check func() (string, error) // what was found, or why not
}

// boardParts lists what the profile says must come up: an Ethernet port,
// the eMMC when the board has one, and the button; and, for a profile that
// says which kernels its facts hold for, a kernel among them.
func boardParts(p board.Profile) []part {
	parts := []part{{"network", ethernetPorts}}
	if p.Kernels != "" {
		parts = append(parts, part{"kernel", func() (string, error) { return kernelFits(p, "/proc/sys/kernel/osrelease") }})
	}
	if p.EMMC.Alias >= 0 {
		parts = append(parts, part{"eMMC", func() (string, error) { return p.EMMC.Locate() }})
	}
	switch p.Button.Kind {
	case board.ButtonGPIO:
		parts = append(parts, part{"button", func() (string, error) {
			chip, err := board.FindChipByLabel(p.Button.GPIO.Chip)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s line %d", chip, p.Button.GPIO.Offset), nil
		}})
	case board.ButtonInput:
		parts = append(parts, part{"button", func() (string, error) {
			d, err := button.FindInputDevice(p.Button.KeyCode, p.Button.InputName, nil)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s %q %s", d.Path, d.Name, p.Button.KeyName), nil
		}})
	}
	return parts
}

// kernelFits reads the running kernel's release from path and says whether
// the profile's facts (button, LEDs, eMMC alias) were checked for it.
func kernelFits(p board.Profile, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	release := strings.TrimSpace(string(b))
	if !p.HoldsFor(release) {
		return "", fmt.Errorf("kernel %s is outside the releases the %s profile was checked against (%s): its button, LEDs or eMMC may be named differently", release, p.Name, p.Kernels)
	}
	return "Linux " + release + ", within the profile's " + p.Kernels, nil
}

// ethernetPorts lists the network interfaces backed by a device (not lo,
// bridges or tunnels) of Ethernet type.
func ethernetPorts() (string, error) {
	ents, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return "", err
	}
	var ports []string
	for _, e := range ents {
		dir := filepath.Join("/sys/class/net", e.Name())
		if _, err := os.Stat(filepath.Join(dir, "device")); err != nil {
			continue
		}
		if t, err := os.ReadFile(filepath.Join(dir, "type")); err == nil && strings.TrimSpace(string(t)) == "1" {
			ports = append(ports, e.Name())
		}
	}
	if len(ports) == 0 {
		return "", fmt.Errorf("no Ethernet interface (is the driver in the image and did it load? see \"kernel module\" lines above)")
	}
	sort.Strings(ports)
	return strings.Join(ports, " "), nil
}

// checkBoard waits up to d for every part the profile names and then says,
// in one line each, what came up and what did not. Devices probe
// asynchronously after their modules load, so a part missing at first is
// retried until the time is up.
func checkBoard(ctx context.Context, p board.Profile, d time.Duration) {
	parts := boardParts(p)
	found := make([]string, len(parts))
	errs := make([]error, len(parts))
	deadline := time.Now().Add(d)
	for {
		missing := 0
		for i, pt := range parts {
			if found[i] != "" {
				continue
			}
			found[i], errs[i] = pt.check()
			if found[i] == "" {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
	for i, pt := range parts {
		if found[i] != "" {
			slog.Info("board check: up", "part", pt.name, "found", found[i])
		} else {
			slog.Error("FAILED: board check: did not come up", "part", pt.name, "board", p.Name, "err", errs[i])
		}
	}
}
