package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rknas/firmware/board/diskimage"
	"github.com/rknas/firmware/board/medium"
	"github.com/rknas/firmware/board/modules"
	"github.com/rknas/firmware/initramfs/simctl"
	"github.com/u-root/u-root/pkg/kmodule"
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

// buttonModules are the drivers the RESET button needs: Rockchip's GPIO
// banks, gpio-keys and adc-keys with the SARADC they read, evdev, and the
// VM's gpio-sim with configfs. They load first, so that the failsafe window
// opens while the others load.
var buttonModules = map[string]bool{
	"gpio_rockchip": true, "gpio_keys": true, "adc_keys": true, "rockchip_saradc": true, "evdev": true,
	"configfs": true, "gpio_sim": true,
}

// lateModules are drivers no service needs while the board starts: USB
// and SATA disks, and loop devices. They load in the background once the
// rest is in; a state partition on a USB disk is still found, since the
// medium's search waits for its disk.
var lateModules = map[string]bool{
	"usb_storage": true, "uas": true, "sd_mod": true, "loop": true,
	"xhci_pci": true, "xhci_plat_hcd": true, "ahci": true, "ahci_platform": true,
}

// moduleOrder splits the image's module list into the button's drivers,
// the others and the late ones, each in the list's order.
func moduleOrder(list []string) (button, now, late []string) {
	for _, name := range list {
		switch {
		case buttonModules[name]:
			button = append(button, name)
		case lateModules[name]:
			late = append(late, name)
		default:
			now = append(now, name)
		}
	}
	return button, now, late
}

// loadModules loads the kernel modules the image carries for this board,
// listed in /lib/modules/<release>/rknas.load, each with its dependencies
// (u-root's kmodule reads modules.dep). The button's drivers load before
// it returns; the others load in the background, then the late ones
// (lateModules) at the lowest CPU priority until hurry is called. wait
// waits for all but the late ones. A module that fails is logged by name
// and loading goes on: a missing NIC driver must not stop the console.
func loadModules() (wait, hurry func()) {
	none := func() {}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		slog.Warn("kernel modules: uname", "err", err)
		return none, none
	}
	dir := filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:]))
	b, err := os.ReadFile(filepath.Join(dir, modules.LoadList))
	if err != nil {
		slog.Warn("kernel modules: no module list in the image", "err", err)
		return none, none
	}
	prober, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		slog.Error("FAILED: kernel modules: read modules.dep", "dir", dir, "err", err)
		return none, none
	}
	button, now, late := moduleOrder(strings.Fields(string(b)))
	if len(button) > 0 {
		probeAll(prober, button, "kernel modules for the button loaded")
	}
	done := make(chan struct{})
	bg := &backgroundPriority{}
	go func() {
		probeAll(prober, now, "kernel modules loaded")
		close(done)
		if len(late) > 0 {
			// Loading a module is the kernel's work on the calling thread:
			// at normal priority it would take half the CPU from authd's
			// start on a one-core VM. The thread is locked and never
			// unlocked, so it ends with this goroutine.
			runtime.LockOSThread()
			bg.lower()
			probeAll(prober, late, "kernel modules loaded in the background")
			bg.finish()
		}
	}()
	return func() { <-done }, bg.restore
}

// backgroundPriority lowers one thread's CPU priority until restore.
type backgroundPriority struct {
	mu       sync.Mutex
	tid      int // 0: not lowered, or finished
	restored bool
}

// lower sets the calling (locked) thread to the lowest priority, unless
// restore came first.
func (p *backgroundPriority) lower() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.restored {
		return
	}
	tid := unix.Gettid()
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, 19); err != nil {
		slog.Warn("kernel modules: lower the background loading's priority", "err", err)
		return
	}
	p.tid = tid
}

// finish is called by the thread before it ends: its id may be reused.
func (p *backgroundPriority) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tid = 0
}

// restore puts the thread back to normal priority, now and for good.
func (p *backgroundPriority) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.restored = true
	if p.tid != 0 {
		if err := unix.Setpriority(unix.PRIO_PROCESS, p.tid, 0); err != nil {
			slog.Warn("kernel modules: restore the background loading's priority", "err", err)
		}
		p.tid = 0
	}
}

// probeAll loads names in order and logs msg with the count, the failures,
// the time taken and the three slowest (with what they pulled in), which
// say where the boot's time goes.
func probeAll(prober *kmodule.Prober, names []string, msg string) {
	start := time.Now()
	var failed []string
	type took struct {
		name string
		d    time.Duration
	}
	var times []took
	for _, name := range names {
		t0 := time.Now()
		if err := prober.Probe(name, ""); err != nil {
			failed = append(failed, name)
			slog.Error("FAILED: kernel module", "module", name, "err", err)
			continue
		}
		times = append(times, took{name, time.Since(t0)})
	}
	sort.Slice(times, func(i, j int) bool { return times[i].d > times[j].d })
	var slowest []string
	for _, t := range times[:min(3, len(times))] {
		slowest = append(slowest, fmt.Sprintf("%s %s", t.name, t.d.Round(time.Millisecond)))
	}
	slog.Info(msg, "count", len(times), "failed", strings.Join(failed, " "), "took", time.Since(start).Round(time.Millisecond),
		"slowest", strings.Join(slowest, ", "))
}

// mountMedium finds the medium the system booted from, grows its state
// partition to fill it on the first boot, mounts the state partition on
// /state and the boot partition (read-only) on /boot. It reports whether
// the state is persistent. Without a state partition it mounts a tmpfs on
// /state, says so loudly with the way out, and boots on: a missing or
// broken medium must never become a boot loop.
func mountMedium(wait time.Duration) (*medium.Medium, bool) {
	want := kernelValue(diskimage.DiskArg)
	m, seen, err := medium.Find(want, wait)
	if err == nil {
		if _, err := m.Grow(); err != nil {
			slog.Error("state partition: could not grow it to fill the medium; it keeps its size", "err", err)
		}
		if err = os.MkdirAll(stateDir, 0o755); err == nil {
			err = unix.Mount(m.State, stateDir, "ext4", unix.MS_NOATIME|unix.MS_NOSUID|unix.MS_NODEV, "")
		}
		if err == nil {
			slog.Info("state partition mounted", "dev", m.State, "on", stateDir, "disk", m.Table.DiskID.String())
			if err := m.GrowFS(stateDir); err != nil {
				slog.Error("state file system: could not grow it; it keeps its size", "err", err)
			}
			if err := mountBoot(m); err != nil {
				slog.Error("boot partition: the device's provisioned password and hostname are unreadable", "err", err)
			}
			return m, true
		}
		err = fmt.Errorf("state: mount %s: %w", m.State, err)
	}
	slog.Error("FAILED: no usable state partition: settings and passwords will be LOST at power-off",
		"err", err, "disks", seen)
	fmt.Fprintf(os.Stdout, `
*** RKNAS: no usable %[1]s partition on the medium this system booted from.
*** Running with the settings in RAM: they are lost at power-off.
*** To recover, write the firmware image to the TF card or eMMC again with
*** rknas-flash (README.md, "Putting the firmware on a board"), then boot from it.

`, diskimage.StateLabel)
	_ = os.MkdirAll(stateDir, 0o755)
	if err := unix.Mount("tmpfs", stateDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=32m"); err != nil {
		slog.Error("mount tmpfs on /state", "err", err)
	}
	return nil, false
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
	var seen []string
	for _, name := range gpiocdev.Chips() {
		c, err := gpiocdev.NewChip(name)
		if err != nil {
			seen = append(seen, name+": "+err.Error())
			continue
		}
		seen = append(seen, name+" "+c.Label)
		if strings.Contains(c.Label, "pl061") {
			chip = name
		}
		c.Close()
	}
	if chip == "" {
		return fmt.Errorf("power key: no PL061 gpiochip among [%s]", strings.Join(seen, ", "))
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

// vmControl is what the VM's control channel drives: the gpio-sim lines,
// processes to freeze for the watchdog's test, and the disk probe.
type vmControl struct{ *simctl.Sim }

// SyncProbe writes 4 KiB to a file of its own on the state partition and
// times the fsync, as authd's durable writes pay it.
func (vmControl) SyncProbe() (time.Duration, error) {
	f, err := os.OpenFile(filepath.Join(stateDir, "rknas", "fsync-probe"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("fsync probe: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 4096)); err != nil {
		return 0, fmt.Errorf("fsync probe: %w", err)
	}
	start := time.Now()
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("fsync probe: %w", err)
	}
	return time.Since(start), nil
}

// Freeze stops (SIGSTOP) every process whose name is name.
func (vmControl) Freeze(name string) ([]int, error) {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "comm")); err == nil && strings.TrimSpace(string(b)) == name {
			if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
				return pids, fmt.Errorf("freeze %s (pid %d): %w", name, pid, err)
			}
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("no process %s", name)
	}
	slog.Warn("control channel: froze a process", "name", name, "pids", pids)
	return pids, nil
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
	// The port stays open for good: closing it makes the guest driver drop
	// whatever the host sent meanwhile, so a command sent just as the last
	// host went away would be lost.
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		slog.Warn("control channel", "err", err)
		return
	}
	defer f.Close()
	for ctx.Err() == nil {
		err := simctl.Serve(ctx, f, vmControl{sim})
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
