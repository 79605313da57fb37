package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/rknas/firmware/board/medium"
	"github.com/rknas/firmware/board/provision"
	"golang.org/x/sys/unix"
)

// bootDir is where the boot medium's boot partition is mounted.
const bootDir = "/boot"

// mountBoot mounts the boot partition read-only on /boot, readable by root
// only: it holds the device's default password.
func mountBoot(m *medium.Medium) error {
	if err := os.MkdirAll(bootDir, 0o700); err != nil {
		return err
	}
	err := unix.Mount(m.Boot, bootDir, "vfat", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC,
		"uid=0,gid=0,fmask=0177,dmask=0077,codepage=437,iocharset=utf8")
	if err != nil {
		return fmt.Errorf("medium: mount %s on %s: %w", m.Boot, bootDir, err)
	}
	return nil
}

// provisioned reads the flasher's values from the mounted boot partition:
// the default password's file (path, when the flasher wrote one) and the
// hostname ("" when none).
func provisioned() (passwordFile, hostname string) {
	p := filepath.Join(bootDir, provision.PasswordFile)
	if b, err := os.ReadFile(p); err == nil {
		if _, err := provision.Value(b); err == nil {
			passwordFile = p
		} else if errors.Is(err, provision.ErrNotProvisioned) {
			slog.Warn("this medium was not provisioned by the flasher: authd makes up a default password and prints it on this console")
		} else {
			slog.Error("the provisioned password file is damaged: authd makes up a default password and prints it on this console", "err", err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(bootDir, provision.HostnameFile)); err == nil {
		if h, err := provision.Value(b); err == nil && provision.CheckHostname(h) == nil {
			hostname = h
		}
	}
	return passwordFile, hostname
}
