package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rknas/firmware/initramfs/simctl"
	"github.com/vishvananda/netlink"
	"github.com/warthog618/go-gpiocdev"
	"golang.org/x/sys/unix"
)

type mountPoint struct {
	source, target, fstype, opts string
	flags                        uintptr
}

// mountBase mounts what u-root's init may not have mounted; it is idempotent.
func mountBase() error {
	var errs []error
	for _, m := range []mountPoint{
		{"proc", "/proc", "proc", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"sysfs", "/sys", "sysfs", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755", unix.MS_NOSUID},
		{"devpts", "/dev/pts", "devpts", "newinstance,ptmxmode=666,gid=5,mode=620", unix.MS_NOSUID | unix.MS_NOEXEC},
		{"tmpfs", "/run", "tmpfs", "mode=0755,size=16m", unix.MS_NOSUID | unix.MS_NODEV},
	} {
		if err := mount(m); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func mountConfigfs() error {
	return mount(mountPoint{"configfs", "/sys/kernel/config", "configfs", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC})
}

func mount(m mountPoint) error {
	if mounted(m.target) {
		return nil
	}
	if err := os.MkdirAll(m.target, 0o755); err != nil {
		return fmt.Errorf("mount: mkdir %s: %w", m.target, err)
	}
	if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.opts); err != nil {
		return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
	}
	return nil
}

// mounted reports whether target is a mount point, from /proc/self/mountinfo
// (before /proc is mounted, nothing is).
func mounted(target string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 4 && fs[4] == target {
			return true
		}
	}
	return false
}

// parseModuleList reads the image's module list: one path per line, relative
// to the list's directory, in load order (dependencies first); blank lines
// and lines starting with # are ignored.
func parseModuleList(r io.Reader) ([]string, error) {
	var mods []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if filepath.IsAbs(l) || !filepath.IsLocal(l) || !strings.HasSuffix(l, ".ko") {
			return nil, fmt.Errorf("modules: line %d: %.64q is not a relative .ko path", n, l)
		}
		mods = append(mods, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules: read list: %w", err)
	}
	return mods, nil
}

// loadModules loads every module of the list with finit_module(2). A module
// that is already loaded (or built in) counts as loaded; failures are
// collected and loading goes on.
func loadModules(list string) (int, error) {
	f, err := os.Open(list)
	if err != nil {
		return 0, fmt.Errorf("modules: open list: %w", err)
	}
	defer f.Close()
	mods, err := parseModuleList(f)
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, m := range mods {
		p := filepath.Join(filepath.Dir(list), m)
		if err := loadModule(p); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("modules: open %s: %w", path, err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("modules: load %s: %w", filepath.Base(path), err)
	}
	return nil
}

// ext4Label returns the volume label of the ext2/3/4 file system on r, and
// false if r holds none.
func ext4Label(r io.ReaderAt) (string, bool) {
	var sb [0x88]byte
	if _, err := r.ReadAt(sb[:], 1024); err != nil {
		return "", false
	}
	if binary.LittleEndian.Uint16(sb[0x38:]) != 0xEF53 {
		return "", false
	}
	label := sb[0x78:0x88]
	if i := strings.IndexByte(string(label), 0); i >= 0 {
		label = label[:i]
	}
	return string(label), true
}

// findByLabel returns /dev/NAME of the block device whose ext4 label is label.
func findByLabel(label string) (string, []string, error) {
	ents, err := os.ReadDir("/sys/class/block")
	if err != nil {
		return "", nil, fmt.Errorf("state: list block devices: %w", err)
	}
	var seen []string
	for _, e := range ents {
		dev := "/dev/" + e.Name()
		seen = append(seen, e.Name())
		f, err := os.Open(dev)
		if err != nil {
			continue
		}
		l, ok := ext4Label(f)
		f.Close()
		if ok && l == label {
			return dev, seen, nil
		}
	}
	return "", seen, fmt.Errorf("state: no ext4 file system labelled %s", label)
}

// mountState mounts the state partition on /state and reports whether it is
// persistent. Without one it mounts a tmpfs there, says so loudly with the
// way out, and boots on: a missing disk must never become a boot loop.
func mountState(wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	var dev string
	var seen []string
	var err error
	for {
		if dev, seen, err = findByLabel(stateLabel); err == nil || time.Now().After(deadline) {
			break
		}
		// Block devices appear asynchronously after virtio_blk/mmc probe.
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil {
		if err = os.MkdirAll(stateDir, 0o755); err == nil {
			err = unix.Mount(dev, stateDir, "ext4", unix.MS_NOATIME|unix.MS_NOSUID|unix.MS_NODEV, "")
		}
		if err == nil {
			slog.Info("state partition mounted", "dev", dev, "on", stateDir)
			return true
		}
		err = fmt.Errorf("state: mount %s: %w", dev, err)
	}
	slog.Error("FAILED: no usable state partition: settings and passwords will be LOST at power-off",
		"err", err, "block_devices", strings.Join(seen, " "))
	fmt.Fprintf(os.Stdout, `
*** RKNAS: no usable state partition (ext4 labelled %[1]s). Running with state in RAM.
*** To recover: from the rescue console or a PC, create it on the data disk, e.g.
***     mkfs.ext4 -L %[1]s /dev/<partition>
*** (in the VM: scripts/vm stop && rm out/vm/state.img && scripts/vm start), then reboot.

`, stateLabel)
	_ = os.MkdirAll(stateDir, 0o755)
	if err := unix.Mount("tmpfs", stateDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=32m"); err != nil {
		slog.Error("mount tmpfs on /state", "err", err)
	}
	return false
}

// bringUpNetwork sets lo up and runs DHCP once on eth0 so the API is
// reachable. authd's netconf takes over the configuration later.
func bringUpNetwork(ctx context.Context) {
	if lo, err := netlink.LinkByName("lo"); err == nil {
		if err := netlink.LinkSetUp(lo); err != nil {
			slog.Warn("set lo up", "err", err)
		}
	}
	for i := 0; ; i++ {
		if _, err := os.Stat("/sys/class/net/eth0"); err == nil {
			break
		}
		if i == 100 {
			slog.Warn("no eth0 after 10 s; no network")
			return
		}
		time.Sleep(100 * time.Millisecond) // the NIC driver probes asynchronously
	}
	dhclient := "/bbin/dhclient"
	if _, err := os.Stat(dhclient); err != nil {
		slog.Warn("no dhclient in the image; no network", "err", err)
		return
	}
	cmd := exec.CommandContext(ctx, dhclient, "-ipv6=false", "-timeout", "10", "-retry", "5", "eth0")
	if out, err := cmd.CombinedOutput(); err != nil {
		slog.Warn("DHCP on eth0 failed", "err", err, "output", strings.TrimSpace(string(out)))
		return
	}
	addrs := ""
	if l, err := netlink.LinkByName("eth0"); err == nil {
		if as, err := netlink.AddrList(l, netlink.FAMILY_V4); err == nil && len(as) > 0 {
			addrs = as[0].IPNet.String()
		}
	}
	slog.Info("network up", "if", "eth0", "addr", addrs)
}

// watchPowerKey turns a press of the virt machine's power key (PL061 line 3,
// pulsed by QEMU's system_powerdown) into a power-off request.
func watchPowerKey(ctx context.Context, shutdown chan<- int) error {
	chip := ""
	for _, name := range gpiocdev.Chips() {
		c, err := gpiocdev.NewChip(name)
		if err != nil {
			continue
		}
		if strings.Contains(c.Label, "pl061") {
			chip = name
		}
		c.Close()
	}
	if chip == "" {
		return errors.New("power key: no PL061 gpiochip")
	}
	l, err := gpiocdev.RequestLine(chip, 3, gpiocdev.WithConsumer("uinit-power-key"), gpiocdev.WithRisingEdge,
		gpiocdev.WithEventHandler(func(e gpiocdev.LineEvent) {
			slog.Info("power key pressed")
			select {
			case shutdown <- unix.LINUX_REBOOT_CMD_POWER_OFF:
			default:
			}
		}))
	if err != nil {
		return fmt.Errorf("power key: request %s line 3: %w", chip, err)
	}
	go func() { <-ctx.Done(); l.Close() }()
	slog.Info("power key watched", "chip", chip, "line", 3)
	return nil
}

// serveControl serves the VM's test control channel on the virtio-serial
// port named rknas.ctl. The port exists only when QEMU is started with it,
// and this runs only on the qemu-virt profile: never on a real board.
func serveControl(ctx context.Context, sim *simctl.Sim) {
	var dev string
	for i := 0; dev == "" && i < 100; i++ {
		dev = findVirtioPort(ctlPortName)
		if dev == "" {
			time.Sleep(100 * time.Millisecond) // virtio_console probes asynchronously
		}
	}
	if dev == "" {
		slog.Warn("no control channel port", "name", ctlPortName)
		return
	}
	slog.Info("control channel ready", "dev", dev)
	for ctx.Err() == nil {
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			slog.Warn("control channel", "err", err)
			return
		}
		err = simctl.Serve(ctx, f, sim)
		f.Close()
		if !errors.Is(err, io.EOF) {
			slog.Warn("control channel", "err", err)
		}
		// EOF means no host is connected: a read returns at once until one
		// connects, so poll gently.
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func findVirtioPort(name string) string {
	ents, _ := os.ReadDir("/sys/class/virtio-ports")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/sys/class/virtio-ports", e.Name(), "name"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			return "/dev/" + e.Name()
		}
	}
	return ""
}
