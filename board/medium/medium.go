// Package medium finds the disk the firmware booted from (the one whose GPT
// disk GUID the boot loader named on the kernel command line) with its boot
// and state partitions, and grows its state partition to fill it.
package medium

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rknas/firmware/board/diskimage"
	"golang.org/x/sys/unix"
)

// Medium is the disk the system booted from, found by the GPT disk GUID on
// the kernel command line (rknas.disk=, written by the flasher into
// extlinux.conf), with its boot and state partitions.
type Medium struct {
	// Disk is the kernel name, e.g. "mmcblk1"; Sectors its size.
	Disk    string
	Sectors uint64
	Table   *diskimage.Table
	// Boot and State are the partitions' devices, e.g. "/dev/mmcblk1p1".
	Boot, State string
}

// Device returns the whole disk's device path.
func (m *Medium) Device() string { return "/dev/" + m.Disk }

// sysBlock is where the kernel lists block devices.
const sysBlock = "/sys/class/block"

// Disks lists the block devices that are disks, not partitions, with
// their sizes in sectors; empty devices (idle loop, ram) are left out.
func Disks() (map[string]uint64, error) {
	ents, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, fmt.Errorf("medium: list block devices: %w", err)
	}
	disks := map[string]uint64{}
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(sysBlock, e.Name(), "partition")); err == nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(sysBlock, e.Name(), "size"))
		if err != nil {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n == 0 {
			continue
		}
		disks[e.Name()] = n
	}
	return disks, nil
}

// PartitionDevice returns /dev/NAME of partition number n of disk.
func PartitionDevice(disk string, n int) (string, error) {
	ents, err := os.ReadDir(filepath.Join(sysBlock, disk))
	if err != nil {
		return "", fmt.Errorf("medium: %w", err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(sysBlock, disk, e.Name(), "partition"))
		if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(n) {
			return "/dev/" + e.Name(), nil
		}
	}
	return "", fmt.Errorf("medium: %s has no partition %d (yet)", disk, n)
}

// readTable reads the GPT of a whole disk.
func readTable(disk string, sectors uint64) (*diskimage.Table, error) {
	f, err := os.Open("/dev/" + disk)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, src, err := diskimage.ReadGPT(f, sectors)
	if err != nil {
		return nil, err
	}
	if src == diskimage.GPTBackup {
		slog.Warn("medium: the primary GPT is damaged; using the backup (it is rewritten when the state partition grows)", "disk", disk)
	}
	return t, nil
}

// Find looks for the disk whose GPT disk GUID is want, or, when want
// is empty (a boot without the flasher's extlinux.conf), for the one disk
// that has an RKNAS-STATE partition. It waits up to wait for slow devices
// (MMC and USB probe asynchronously). seen describes what was looked at.
func Find(want string, wait time.Duration) (*Medium, string, error) {
	deadline := time.Now().Add(wait)
	for {
		m, seen, err := lookFor(want)
		if err == nil || time.Now().After(deadline) {
			return m, seen, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func lookFor(want string) (*Medium, string, error) {
	disks, err := Disks()
	if err != nil {
		return nil, "", err
	}
	var seen []string
	var withState []*Medium
	for name, sectors := range disks {
		t, err := readTable(name, sectors)
		if err != nil {
			seen = append(seen, name+": no GPT")
			continue
		}
		seen = append(seen, name+": disk "+t.DiskID.String())
		if _, ok := t.Find(diskimage.StateLabel); !ok {
			continue
		}
		withState = append(withState, &Medium{Disk: name, Sectors: sectors, Table: t})
	}
	sort.Strings(seen)
	desc := strings.Join(seen, "; ")
	m, err := choose(want, withState)
	if err != nil {
		return nil, desc, err
	}
	m, _, err = m.partitions()
	return m, desc, err
}

// choose picks the medium the system booted from among the disks that
// have a state partition: the one whose GUID is want, or, with no want, the
// only one. Two disks with the GUID are a medium and a copy of it (dd of
// the whole card): either could be the one that booted, and mounting
// whichever the kernel listed first would split the settings between them
// from one boot to the next, so that is refused.
func choose(want string, withState []*Medium) (*Medium, error) {
	var names, matching []string
	var match *Medium
	for _, m := range withState {
		names = append(names, m.Disk)
		if want != "" && strings.EqualFold(m.Table.DiskID.String(), want) {
			matching = append(matching, m.Disk)
			match = m
		}
	}
	sort.Strings(names)
	sort.Strings(matching)
	switch {
	case len(matching) == 1:
		return match, nil
	case len(matching) > 1:
		return nil, fmt.Errorf("medium: %d disks (%s) have the GUID %s the boot loader named: one is a copy of the other, "+
			"and either could be the one that booted; unplug the copy", len(matching), strings.Join(matching, ", "), want)
	case want == "" && len(withState) == 1:
		return withState[0], nil
	case want != "" && len(withState) > 0:
		return nil, fmt.Errorf("medium: no disk has the GUID %s the boot loader named; %s partitions are on %s, which this system did not boot from",
			want, diskimage.StateLabel, strings.Join(names, ", "))
	case len(withState) > 1:
		return nil, fmt.Errorf("medium: %d disks have a %s partition and the command line does not say which one booted", len(withState), diskimage.StateLabel)
	}
	return nil, fmt.Errorf("medium: no disk with a %s partition", diskimage.StateLabel)
}

func (m *Medium) partitions() (*Medium, string, error) {
	var err error
	if m.Boot, err = PartitionDevice(m.Disk, diskimage.BootNumber); err != nil {
		return nil, "", err
	}
	if m.State, err = PartitionDevice(m.Disk, diskimage.StateNumber); err != nil {
		return nil, "", err
	}
	return m, "", nil
}

// Running finds the medium the system booted from, by the rknas.disk= the
// boot loader put on the kernel command line.
func Running() (*Medium, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, fmt.Errorf("medium: %w", err)
	}
	want := ""
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, diskimage.DiskArg+"="); ok {
			want = v
		}
	}
	m, _, err := Find(want, 0)
	return m, err
}

// Grow makes the state partition fill the medium (first boot after the
// image was written to a larger card or eMMC): the GPT is rewritten backup
// first, and the kernel is told the new size.
func (m *Medium) Grow() (bool, error) {
	nt, changed, err := diskimage.PlanGrow(m.Table, m.Sectors)
	if err != nil || !changed {
		return false, err
	}
	f, err := os.OpenFile(m.Device(), os.O_RDWR|unix.O_SYNC, 0)
	if err != nil {
		return false, fmt.Errorf("medium: open %s: %w", m.Disk, err)
	}
	defer f.Close()
	if err := diskimage.WriteGPT(f, nt, m.Sectors); err != nil {
		return false, err
	}
	st, _ := nt.Find(diskimage.StateLabel)
	old, _ := m.Table.Find(diskimage.StateLabel)
	m.Table = nt
	if st.Last == old.Last {
		return false, nil // only the backup GPT moved to the end
	}
	if err := diskimage.ResizePartition(f, st.Number, st.First, st.Last); err != nil {
		return false, err
	}
	slog.Info("state partition grown to fill the medium", "disk", m.Disk,
		"from_mib", old.Sectors()*diskimage.SectorSize>>20, "to_mib", st.Sectors()*diskimage.SectorSize>>20)
	return true, nil
}

// GrowFS grows the ext4 file system mounted at dir to the state
// partition's size.
func (m *Medium) GrowFS(dir string) error {
	return GrowFS(dir, m.Table)
}

// GrowFS grows the ext4 file system mounted at dir to the size of the state
// partition of t.
func GrowFS(dir string, t *diskimage.Table) error {
	st, _ := t.Find(diskimage.StateLabel)
	return ResizeFSTo(dir, st.Sectors()*diskimage.SectorSize)
}

// ResizeFSTo grows the ext4 file system mounted at dir to fill size bytes,
// when that is worth it.
func ResizeFSTo(dir string, size uint64) error {
	var s unix.Statfs_t
	if err := unix.Statfs(dir, &s); err != nil {
		return fmt.Errorf("medium: statfs %s: %w", dir, err)
	}
	bs := uint64(s.Bsize)
	want := size / bs
	if want <= s.Blocks+uint64(minFSGrowBytes)/bs {
		return nil
	}
	start := time.Now()
	if err := diskimage.ResizeFS(dir, want); err != nil {
		return err
	}
	slog.Info("state file system grown", "blocks", want, "block_size", bs, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// minFSGrowBytes is the least growth worth an online resize: ext4 keeps a
// few blocks of slack at the end of a partition anyway.
const minFSGrowBytes = 4 << 20
