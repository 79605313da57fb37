package flash

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Target describes a block device as the kernel sees it.
type Target struct {
	// Path is what the user gave, e.g. "/dev/sdb" or "/dev/disk/by-id/usb-...".
	Path string
	// Name is the kernel name of the whole disk, e.g. "sdb", "mmcblk1".
	Name string
	// Dev is its device number, "major:minor": what the writer checks it
	// opened.
	Dev string
	// Size in bytes (/sys/class/block/NAME/size * 512); 0 for a card reader
	// without a card.
	Size int64
	// Removable is /sys/class/block/NAME/removable == 1, or an MMC device whose
	// device/type is "SD" (card slots report removable 0).
	Removable bool
	// ReadOnly is /sys/class/block/NAME/ro == 1 (an SD card's write-protect
	// switch, an eMMC boot partition).
	ReadOnly bool
	// Vendor and Model, trimmed: SCSI device/vendor and device/model; for an
	// MMC device the type ("MMC", "SD") and device/name. "" if unknown.
	Vendor, Model string
	// Transport is the bus, from the sysfs device path: "usb", "mmc", "sata",
	// "scsi", "nvme", "virtio", "loop", "dm", "md", ... or "" if unknown.
	Transport string
	// MMCType is device/type of an mmcblk device: "MMC" (eMMC), "SD", or "".
	MMCType string
	// Partitions are the kernel names of its partitions in partition-number
	// order, e.g. ["sdb1", "sdb2"].
	Partitions []string
	// Mounts are "sdb1 on /media/x" for every mount whose source is the disk,
	// one of its partitions, or a dm/md device stacked on them.
	Mounts []string
	// Swaps are the swap areas on it, as /proc/swaps names them ("/dev/sdc2",
	// "/swapfile").
	Swaps []string
	// Holders are the devices stacked on the disk or its partitions
	// (/sys/class/block/X/holders, e.g. "dm-0", "md0"), and the loop devices
	// whose backing file or device is on it (e.g. "loop0").
	Holders []string
	// System says why this disk holds the running system, one entry per
	// mount point of SystemMounts on it: "/ is on sda2", "/ is on dm-0 (via
	// nvme0n1p3)", "/state is on mmcblk0p2".
	System []string

	// stackedOn are the devices below the target itself when it is a dm, md
	// or loop device on other block devices: writing it writes them.
	stackedOn []string
}

// SystemMounts are the mount points whose disks are never a target: the
// running system.
var SystemMounts = []string{"/", "/boot", "/boot/efi", "/usr", "/state"}

// Inspector reads the kernel's view of block devices.
type Inspector struct {
	// Root is the file system holding sys/, proc/ and dev/: os.DirFS("/") in
	// production, an fstest.MapFS in tests. It must implement fs.ReadLinkFS
	// (both of those do): sysfs is made of symbolic links.
	Root fs.FS
	// DevNum returns the major and minor number of the block device at path
	// (stat(2), following symbolic links, on the real system); it returns an
	// error wrapping ErrNotBlockDevice for anything else.
	DevNum func(path string) (major, minor uint32, err error)
}

// ErrNotBlockDevice says a path is not a block device (a regular file, a
// character device, a directory).
var ErrNotBlockDevice = errors.New("not a block device")

// ErrPartition says a target is a partition, not a whole disk.
var ErrPartition = errors.New("is a partition")

// Options relax the rules of Target.Check that a careful owner may override.
type Options struct {
	// ImageSize is the size of the image in bytes; 0 skips the size check.
	ImageSize int64
	// AllowFixed allows a non-removable disk (an internal eMMC, a fixed disk).
	AllowFixed bool
	// AllowLarge allows a disk larger than MaxSize.
	AllowLarge bool
}

// MaxSize is 512 GiB: larger than any TF card or eMMC the firmware lives on.
// A larger disk is more likely to be someone's data disk.
const MaxSize = 512 << 30

// Refusal lists every reason a target is refused.
type Refusal struct {
	Target  *Target
	Reasons []string
}

// Error says which device is refused and why, one clause per reason:
// "refusing to write /dev/sda (ATA Samsung SSD 870, 500.1 GB / 465.8 GiB):
// it holds the running system (/ is on sda2); it is not removable: ...".
func (r *Refusal) Error() string {
	var b strings.Builder
	b.WriteString("refusing to write")
	if t := r.Target; t != nil {
		p := t.Path
		if p == "" {
			p = "/dev/" + t.Name
		}
		b.WriteString(" " + p + " (")
		if vm := t.vendorModel(); vm != "" {
			b.WriteString(vm + ", ")
		}
		b.WriteString(sizeSlash(t.Size) + ")")
	}
	b.WriteString(": ")
	b.WriteString(strings.Join(r.Reasons, "; "))
	return b.String()
}

// Check returns a *Refusal if any rule is broken, else nil. Options can
// allow a fixed or a large disk; nothing allows a disk that holds the running
// system, is mounted, holds swap, is in use by a dm, md or loop device, is
// itself stacked on other devices, is read-only, or is smaller than the image.
func (t *Target) Check(o Options) error {
	if t == nil {
		return errors.New("flash: check: no target")
	}
	var r []string
	if len(t.System) > 0 {
		r = append(r, "it holds the running system ("+strings.Join(t.System, ", ")+")")
	}
	if len(t.Mounts) > 0 {
		s := "it has mounted file systems (" + strings.Join(t.Mounts, ", ") + ")"
		if len(t.System) == 0 {
			s += ": unmount them first"
		}
		r = append(r, s)
	}
	if len(t.Swaps) > 0 {
		r = append(r, "it holds swap ("+strings.Join(t.Swaps, ", ")+"): swapoff first")
	}
	if len(t.Holders) > 0 {
		r = append(r, "it is in use by "+strings.Join(t.Holders, ", ")+": "+releaseHint(t.Holders))
	}
	if len(t.stackedOn) > 0 {
		r = append(r, "it is stacked on "+strings.Join(t.stackedOn, ", ")+": give the disk itself")
	}
	if t.ReadOnly {
		r = append(r, "it is read-only (write-protect switch?)")
	}
	switch {
	case t.Size <= 0:
		r = append(r, "it has no medium (size 0): insert the card")
	case o.ImageSize > 0 && t.Size < o.ImageSize:
		r = append(r, "it is smaller than the image ("+sizeCompare(t.Size, o.ImageSize)+")")
	}
	if !t.Removable && !o.AllowFixed {
		r = append(r, "it is not removable: add --allow-fixed if you really mean this disk")
	}
	if t.Size > MaxSize && !o.AllowLarge {
		r = append(r, "it is larger than 512 GiB ("+sizeSlash(t.Size)+"): add --allow-large if you really mean this disk")
	}
	if len(r) == 0 {
		return nil
	}
	return &Refusal{Target: t, Reasons: r}
}

// releaseHint says how to release the given holders.
func releaseHint(holders []string) string {
	var how []string
	add := func(s string) {
		if !slices.Contains(how, s) {
			how = append(how, s)
		}
	}
	for _, h := range holders {
		switch {
		case strings.HasPrefix(h, "dm-"):
			add("vgchange -an, cryptsetup close or dmsetup remove")
		case strings.HasPrefix(h, "md"):
			add("mdadm --stop")
		case strings.HasPrefix(h, "loop"):
			add("losetup -d")
		}
	}
	if len(how) == 0 {
		return "release them first"
	}
	return "release them first (" + strings.Join(how, ", ") + ")"
}

// Describe is a one-line summary for a list of disks:
// "sdb: Generic STORAGE DEVICE, 31.9 GB (29.7 GiB), removable, usb".
func (t *Target) Describe() string {
	var parts []string
	if vm := t.vendorModel(); vm != "" {
		parts = append(parts, vm)
	}
	parts = append(parts, fmt.Sprintf("%.1f GB (%.1f GiB)", gb(t.Size), gib(t.Size)))
	if t.Removable {
		parts = append(parts, "removable")
	} else {
		parts = append(parts, "fixed")
	}
	if t.ReadOnly {
		parts = append(parts, "read-only")
	}
	if t.Transport != "" {
		parts = append(parts, t.Transport)
	}
	return t.Name + ": " + strings.Join(parts, ", ")
}

func (t *Target) vendorModel() string {
	return strings.TrimSpace(t.Vendor + " " + t.Model)
}

func gb(n int64) float64  { return float64(n) / 1e9 }
func gib(n int64) float64 { return float64(n) / (1 << 30) }

// sizeSlash is "500.1 GB / 465.8 GiB".
func sizeSlash(n int64) string { return fmt.Sprintf("%.1f GB / %.1f GiB", gb(n), gib(n)) }

// sizeCompare is "disk 2.0 GB / 1.9 GiB < image 3.0 GB / 2.8 GiB", with the
// byte counts when one decimal does not show the difference.
func sizeCompare(disk, image int64) string {
	d, i := sizeSlash(disk), sizeSlash(image)
	s := "disk " + d + " < image " + i
	if d == i {
		s += fmt.Sprintf(": %d < %d bytes", disk, image)
	}
	return s
}

// maxDepth bounds the walk down stacked devices (dm on dm on md on a
// partition, loop devices backed by files on other devices).
const maxDepth = 16

// Inspect resolves path (following symbolic links such as
// /dev/disk/by-id/..., through DevNum) to /sys/dev/block/MAJ:MIN and fills a
// Target. A partition is an error: the flasher writes whole disks. Mounts come
// from /proc/self/mountinfo (a block device source is identified by MAJ:MIN,
// not by name), swap from /proc/swaps, stacking from holders/ and slaves/ in
// sysfs and from loop/backing_file. Anything it cannot read is an error, never
// a silent pass.
func (in Inspector) Inspect(p string) (*Target, error) {
	if in.Root == nil || in.DevNum == nil {
		return nil, errors.New("flash: inspect: Inspector needs Root and DevNum")
	}
	maj, min, err := in.DevNum(p)
	if err != nil {
		return nil, fmt.Errorf("flash: inspect %s: %w", p, err)
	}
	g := &graph{in: in}
	name, dir, err := g.byDevNum(fmt.Sprintf("%d:%d", maj, min))
	if err != nil {
		return nil, fmt.Errorf("flash: inspect %s: %w", p, err)
	}
	if name == "" {
		return nil, fmt.Errorf("flash: inspect %s: block device %d:%d is not in /sys/dev/block", p, maj, min)
	}
	if parent, ok, err := g.partitionOf(name); err != nil {
		return nil, fmt.Errorf("flash: inspect %s: %w", p, err)
	} else if ok {
		return nil, fmt.Errorf("flash: %s %w of %s; give the whole disk /dev/%s", p, ErrPartition, parent, parent)
	}
	t := &Target{Path: p, Name: name, Dev: fmt.Sprintf("%d:%d", maj, min), Transport: transportOf(dir, name)}
	if err := g.attributes(t); err != nil {
		return nil, fmt.Errorf("flash: inspect %s: %w", p, err)
	}
	if err := g.usage(t); err != nil {
		return nil, fmt.Errorf("flash: inspect %s: %w", p, err)
	}
	return t, nil
}

// attributes fills size, flags, vendor, model and partitions.
func (g *graph) attributes(t *Target) error {
	cls := "sys/class/block/" + t.Name
	size, _, err := g.attr(cls + "/size")
	if err != nil {
		return err
	}
	sectors, err := strconv.ParseInt(size, 10, 64)
	if err != nil || sectors < 0 || sectors > 1<<54 {
		return fmt.Errorf("read %s/size: bad sector count %q", cls, size)
	}
	t.Size = sectors * 512
	for _, a := range []struct {
		file string
		dst  *bool
	}{{"removable", &t.Removable}, {"ro", &t.ReadOnly}} {
		v, _, err := g.attr(cls + "/" + a.file)
		if err != nil {
			return err
		}
		*a.dst = v == "1"
	}
	if strings.HasPrefix(t.Name, "mmcblk") {
		if t.MMCType, _, err = g.attr(cls + "/device/type"); err != nil {
			return err
		}
		if t.Model, _, err = g.attr(cls + "/device/name"); err != nil {
			return err
		}
		t.Vendor = t.MMCType
		if t.MMCType == "SD" {
			t.Removable = true
		}
	} else {
		if t.Vendor, _, err = g.attr(cls + "/device/vendor"); err != nil {
			return err
		}
		if strings.HasPrefix(t.Vendor, "0x") { // a PCI or virtio vendor id, not a name
			t.Vendor = ""
		}
		if t.Model, _, err = g.attr(cls + "/device/model"); err != nil {
			return err
		}
	}
	ents, err := g.readDir(cls)
	if err != nil {
		return err
	}
	type part struct {
		name string
		n    int
	}
	var parts []part
	for _, e := range ents {
		if !strings.HasPrefix(e, t.Name) || e == t.Name {
			continue
		}
		num, ok, err := g.attr(cls + "/" + e + "/partition")
		if err != nil {
			return err
		}
		if ok {
			n, _ := strconv.Atoi(num)
			parts = append(parts, part{e, n})
		}
	}
	sort.SliceStable(parts, func(i, j int) bool { return parts[i].n < parts[j].n })
	for _, pt := range parts {
		t.Partitions = append(t.Partitions, pt.name)
	}
	return nil
}

// usage fills mounts, swaps, holders, system and stackedOn.
func (g *graph) usage(t *Target) error {
	b, err := fs.ReadFile(g.in.Root, "proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	if g.mounts, err = parseMountinfo(b); err != nil {
		return err
	}
	on := func(chains []chain) (chain, bool) {
		for _, c := range chains {
			if c.disk == t.Name {
				return c, true
			}
		}
		return chain{}, false
	}

	// Mounts: the disk, its partitions, and dm/md devices on them.
	for _, m := range g.mounts {
		devs, err := g.mountDevices(m)
		if err != nil {
			return err
		}
		for _, d := range devs {
			chains, err := g.lower(d, false, 0)
			if err != nil {
				return err
			}
			if _, ok := on(chains); ok {
				t.Mounts = append(t.Mounts, d+" on "+m.point)
				break
			}
		}
	}

	// System: the topmost mount at each system mount point, through every
	// layer including loop devices. A mount point on no block device (tmpfs,
	// ramfs, overlay: the firmware's initramfs) puts no disk at risk.
	for _, sm := range SystemMounts {
		m, ok := g.topMount(sm)
		if !ok {
			continue
		}
		devs, err := g.mountDevices(m)
		if err != nil {
			return err
		}
		for _, d := range devs {
			chains, err := g.lower(d, true, 0)
			if err != nil {
				return err
			}
			if c, ok := on(chains); ok {
				s := sm + " is on " + d
				if len(c.via) > 1 {
					s += " (via " + strings.Join(c.via[1:], ", ") + ")"
				}
				t.System = append(t.System, s)
				break
			}
		}
	}

	// Swaps.
	b, err = fs.ReadFile(g.in.Root, "proc/swaps")
	if err != nil && !errors.Is(err, fs.ErrNotExist) { // no /proc/swaps: a kernel without swap
		return fmt.Errorf("read swaps: %w", err)
	}
	for _, s := range parseSwaps(b) {
		var devs []string
		if s.kind == "partition" {
			d, err := g.deviceAt(s.name)
			if err != nil {
				return fmt.Errorf("locate swap %s: %w", s.name, err)
			}
			devs = []string{d}
		} else if devs, _, err = g.fileDevices(s.name); err != nil {
			return fmt.Errorf("locate swap %s: %w", s.name, err)
		}
		for _, d := range devs {
			chains, err := g.lower(d, true, 0)
			if err != nil {
				return err
			}
			if _, ok := on(chains); ok {
				t.Swaps = append(t.Swaps, s.name)
				break
			}
		}
	}

	// Holders: dm and md devices on the disk or its partitions, and loop
	// devices whose backing file or device is on it (those have no holders
	// link).
	add := func(h string) {
		if h != t.Name && !slices.Contains(t.Holders, h) {
			t.Holders = append(t.Holders, h)
		}
	}
	for _, x := range append([]string{t.Name}, t.Partitions...) {
		hs, err := g.readDir("sys/class/block/" + x + "/holders")
		if err != nil {
			return err
		}
		for _, h := range hs {
			add(h)
		}
	}
	all, err := g.readDir("sys/class/block")
	if err != nil {
		return err
	}
	for _, l := range all {
		if _, ok, err := g.backingFile(l); err != nil {
			return err
		} else if !ok || l == t.Name {
			continue
		}
		chains, err := g.lower(l, true, 0)
		if err != nil {
			return err
		}
		if _, ok := on(chains); ok {
			add(l)
		}
	}

	// The target itself stacked on other devices: writing it writes them.
	if t.stackedOn, err = g.readDir("sys/class/block/" + t.Name + "/slaves"); err != nil {
		return err
	}
	if bf, ok, err := g.backingFile(t.Name); err != nil {
		return err
	} else if ok {
		if d, isDev := g.blockDeviceAt(bf); isDev {
			t.stackedOn = append(t.stackedOn, d)
		}
	}
	return nil
}

// graph answers questions about the block device graph in sysfs.
type graph struct {
	in     Inspector
	mounts []mount
}

// chain is a way down from a device to a whole disk: via are the devices
// (and backing files) passed, starting with the device itself; empty when
// the device is the disk.
type chain struct {
	disk string
	via  []string
}

// lower returns the whole disks below block device name: itself, the disk
// of a partition, the disks below a dm or md device's slaves, and, with
// loops, the disks holding a loop device's backing file or device.
func (g *graph) lower(name string, loops bool, depth int) ([]chain, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("device stack deeper than %d at %s", maxDepth, name)
	}
	prepend := func(cs []chain, head ...string) []chain {
		for i := range cs {
			cs[i].via = append(slices.Clone(head), cs[i].via...)
		}
		return cs
	}
	parent, ok, err := g.partitionOf(name)
	if err != nil {
		return nil, err
	}
	if ok {
		return []chain{{disk: parent, via: []string{name}}}, nil
	}
	slaves, err := g.readDir("sys/class/block/" + name + "/slaves")
	if err != nil {
		return nil, err
	}
	if len(slaves) > 0 {
		var out []chain
		for _, s := range slaves {
			cs, err := g.lower(s, loops, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, prepend(cs, name)...)
		}
		return out, nil
	}
	if loops {
		bf, ok, err := g.backingFile(name)
		if err != nil {
			return nil, err
		}
		if ok {
			devs, isDev, err := g.fileDevices(bf)
			if err != nil {
				return nil, err
			}
			head := []string{name}
			if !isDev {
				head = append(head, bf)
			}
			var out []chain
			for _, d := range devs {
				cs, err := g.lower(d, loops, depth+1)
				if err != nil {
					return nil, err
				}
				out = append(out, prepend(cs, head...)...)
			}
			return out, nil // a file on tmpfs: on no disk at all
		}
	}
	return []chain{{disk: name}}, nil
}

// byDevNum returns the kernel name and sysfs directory of block device
// "MAJ:MIN", or "" if there is no such block device.
func (g *graph) byDevNum(majmin string) (name, dir string, err error) {
	dir, err = g.readLink("sys/dev/block/" + majmin)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	return path.Base(dir), dir, nil
}

// partitionOf returns the disk of partition name; ok is false if name is
// not a partition.
func (g *graph) partitionOf(name string) (disk string, ok bool, err error) {
	cls := "sys/class/block/" + name
	if _, ok, err := g.attr(cls + "/partition"); err != nil || !ok {
		return "", false, err
	}
	dir, err := g.readLink(cls)
	if err != nil {
		return "", false, err
	}
	return path.Base(path.Dir(dir)), true, nil
}

// backingFile returns a loop device's backing file (or device), if it has one.
func (g *graph) backingFile(name string) (string, bool, error) {
	if !strings.HasPrefix(name, "loop") {
		return "", false, nil
	}
	b, err := fs.ReadFile(g.in.Root, "sys/class/block/"+name+"/loop/backing_file")
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), " (deleted)")
	return s, s != "", nil
}

// mountDevices returns the block devices a mount is on: the device MAJ:MIN
// names, or, for a file system that reports an anonymous device (btrfs), the
// /dev path of its source. A btrfs file system brings all its devices.
// A mount on no block device (tmpfs, proc, overlay, NFS) returns none.
func (g *graph) mountDevices(m mount) ([]string, error) {
	name, _, err := g.byDevNum(m.dev)
	if err != nil {
		return nil, err
	}
	if name == "" && strings.HasPrefix(m.source, "/dev/") {
		name, _ = g.blockDeviceAt(m.source)
	}
	if name == "" {
		return nil, nil
	}
	devs := []string{name}
	if m.fstype == "btrfs" {
		more, err := g.btrfsDevices(name)
		if err != nil {
			return nil, err
		}
		for _, d := range more {
			if !slices.Contains(devs, d) {
				devs = append(devs, d)
			}
		}
	}
	return devs, nil
}

// btrfsDevices returns all devices of the btrfs file system that has dev.
func (g *graph) btrfsDevices(dev string) ([]string, error) {
	fss, err := g.readDir("sys/fs/btrfs")
	if err != nil {
		return nil, err
	}
	for _, f := range fss {
		devs, err := g.readDir("sys/fs/btrfs/" + f + "/devices")
		if err != nil {
			return nil, err
		}
		if slices.Contains(devs, dev) {
			return devs, nil
		}
	}
	return nil, nil
}

// blockDeviceAt returns the kernel name of the block device at p, if p is one.
func (g *graph) blockDeviceAt(p string) (string, bool) {
	maj, min, err := g.in.DevNum(p)
	if err != nil {
		return "", false
	}
	name, _, err := g.byDevNum(fmt.Sprintf("%d:%d", maj, min))
	return name, err == nil && name != ""
}

// deviceAt returns the kernel name of the block device at p, falling back to
// the last element of p when the node is missing from this mount namespace.
func (g *graph) deviceAt(p string) (string, error) {
	if d, ok := g.blockDeviceAt(p); ok {
		return d, nil
	}
	base := path.Base(p)
	if _, ok, err := g.attr("sys/class/block/" + base + "/dev"); err != nil {
		return "", err
	} else if ok {
		return base, nil
	}
	return "", fmt.Errorf("%s: no such block device", p)
}

// fileDevices returns the block devices holding file p: p itself if it is a
// block device (isDev), else the devices of the mount it lives on.
func (g *graph) fileDevices(p string) (devs []string, isDev bool, err error) {
	if d, ok := g.blockDeviceAt(p); ok {
		return []string{d}, true, nil
	}
	m, ok := g.mountOf(p)
	if !ok {
		return nil, false, nil
	}
	devs, err = g.mountDevices(m)
	return devs, false, err
}

// mountOf returns the mount holding path p: the longest mount point that
// contains it, the later one when a mount point is mounted over.
func (g *graph) mountOf(p string) (mount, bool) {
	p = path.Clean("/" + p)
	best := -1
	for i, m := range g.mounts {
		if p == m.point || m.point == "/" || strings.HasPrefix(p, m.point+"/") {
			if best < 0 || len(m.point) >= len(g.mounts[best].point) {
				best = i
			}
		}
	}
	if best < 0 {
		return mount{}, false
	}
	return g.mounts[best], true
}

// topMount returns the last mount at point.
func (g *graph) topMount(point string) (mount, bool) {
	for i := len(g.mounts) - 1; i >= 0; i-- {
		if g.mounts[i].point == point {
			return g.mounts[i], true
		}
	}
	return mount{}, false
}

// readLink returns where the symbolic link name points, as a clean path in Root.
func (g *graph) readLink(name string) (string, error) {
	t, err := fs.ReadLink(g.in.Root, name)
	if err != nil {
		return "", err
	}
	if path.IsAbs(t) {
		return strings.TrimPrefix(path.Clean(t), "/"), nil
	}
	return path.Join(path.Dir(name), t), nil
}

// attr reads a sysfs attribute, trimmed; ok is false if it does not exist.
func (g *graph) attr(name string) (string, bool, error) {
	b, err := fs.ReadFile(g.in.Root, name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return strings.TrimSpace(string(b)), true, nil
}

// readDir returns the names in a directory; none if it does not exist.
func (g *graph) readDir(name string) ([]string, error) {
	ents, err := fs.ReadDir(g.in.Root, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

var (
	usbBus = regexp.MustCompile(`^usb[0-9]+$`)
	ataBus = regexp.MustCompile(`^ata[0-9]+$`)
	scsi   = regexp.MustCompile(`^host[0-9]+$`)
)

// transportOf names the bus of a block device from its sysfs directory, e.g.
// sys/devices/platform/fc000000.usb/xhci-hcd.0.auto/usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0/block/sda.
func transportOf(dir, name string) string {
	segs := strings.Split(dir, "/")
	has := func(match func(string) bool) bool { return slices.ContainsFunc(segs, match) }
	switch {
	case has(usbBus.MatchString): // before SCSI: USB storage is SCSI over USB
		return "usb"
	case has(func(s string) bool { return s == "nvme" || strings.HasPrefix(s, "nvme-subsys") }):
		return "nvme"
	case has(func(s string) bool { return s == "mmc_host" }):
		return "mmc"
	case has(func(s string) bool { return strings.HasPrefix(s, "virtio") }):
		return "virtio"
	case has(ataBus.MatchString):
		return "sata"
	case strings.Contains(dir, "devices/virtual/block/"):
		for _, k := range []string{"loop", "dm", "md", "zram", "nbd", "ram"} {
			if strings.HasPrefix(name, k) {
				return k
			}
		}
		return "virtual"
	case has(scsi.MatchString):
		return "scsi"
	}
	return ""
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	dev    string // MAJ:MIN (field 3)
	point  string // mount point (field 5), unescaped
	fstype string
	source string // unescaped
}

// parseMountinfo parses /proc/self/mountinfo (proc(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Fields are separated by single spaces; spaces, tabs, newlines and
// backslashes inside them are escaped as \040, \011, \012, \134.
func parseMountinfo(b []byte) ([]mount, error) {
	var ms []mount
	for i, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, " ")
		sep := slices.Index(f, "-")
		if len(f) < 10 || sep < 6 || len(f) < sep+4 || !strings.Contains(f[2], ":") {
			return nil, fmt.Errorf("parse mountinfo line %d: %q", i+1, line)
		}
		ms = append(ms, mount{
			dev:    f[2],
			point:  unescape(f[4]),
			fstype: f[sep+1],
			source: unescape(f[sep+2]),
		})
	}
	return ms, nil
}

// swap is one line of /proc/swaps.
type swap struct {
	name string // unescaped, without " (deleted)"
	kind string // "partition" or "file"
}

// parseSwaps parses /proc/swaps: a header line, then
// "NAME TYPE SIZE USED PRIORITY" separated by blanks, NAME escaped like
// mountinfo.
func parseSwaps(b []byte) []swap {
	var ss []swap
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 2 {
			continue // the header, blank lines
		}
		ss = append(ss, swap{name: strings.TrimSuffix(unescape(f[0]), " (deleted)"), kind: f[1]})
	}
	return ss
}

// unescape undoes the kernel's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) && s[i+1] <= '3' {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
