//go:build linux

package flash

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// fixture is a fake root (sysfs and procfs laid out as the kernel does, with
// relative symbolic links) and the device numbers DevNum reports.
type fixture struct {
	t      testing.TB
	fs     fstest.MapFS
	dirs   map[string]string // kernel name → sysfs device directory
	names  map[string]string // MAJ:MIN → kernel name
	devs   map[string]string // path → MAJ:MIN; "" for a path that is not a block device
	mounts []string
	swaps  []string
	n      int
}

// sys builds an Inspector from a compact description, one item a line:
//
//	disk NAME MAJ:MIN BUS SIZE [rm] [ro] [vendor=V] [model=M] [type=T]
//	     BUS usb|sata|nvme|mmc|virtio; SIZE bytes, or 32G, 1T (decimal);
//	     "_" in V and M is a space; an mmc disk's model is device/name
//	part NAME MAJ:MIN             a partition of the disk its name extends
//	dm NAME MAJ:MIN SLAVE...      (md too) a device stacked on SLAVEs
//	loop NAME MAJ:MIN [FILE]      a loop device and its backing file
//	mount MAJ:MIN POINT [FSTYPE [SOURCE]]   a /proc/self/mountinfo line
//	swap FILE [TYPE]              a /proc/swaps line
//	btrfs UUID DEV...             a btrfs file system's devices
//	alias PATH NAME               another path DevNum resolves to NAME
//	file PATH                     a path that is not a block device
func sys(t testing.TB, desc string) Inspector {
	t.Helper()
	fx := &fixture{t: t, fs: fstest.MapFS{}, dirs: map[string]string{}, names: map[string]string{}, devs: map[string]string{}}
	for line := range strings.SplitSeq(desc, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		fx.need(line, f, 2)
		switch f[0] {
		case "disk":
			fx.need(line, f, 5)
			fx.disk(f[1], f[2], f[3], fx.size(f[4]), f[5:])
		case "part":
			fx.need(line, f, 3)
			fx.part(f[1], f[2])
		case "dm", "md":
			fx.need(line, f, 4)
			fx.stack(f[1], f[2], f[3:])
		case "loop":
			fx.need(line, f, 3)
			dir := fx.virtual(f[1], f[2])
			if len(f) > 3 {
				fx.file(dir+"/loop/backing_file", f[3])
			}
		case "mount":
			fx.need(line, f, 3)
			fstype, source := "ext4", "none"
			if n, ok := fx.names[f[1]]; ok {
				source = "/dev/" + n
			}
			if len(f) > 3 {
				fstype = f[3]
			}
			if len(f) > 4 {
				source = f[4]
			}
			id := 20 + len(fx.mounts)
			fx.mounts = append(fx.mounts, fmt.Sprintf("%d 1 %s / %s rw,relatime shared:%d - %s %s rw", id, f[1], f[2], id, fstype, source))
		case "swap":
			kind := "file"
			if strings.HasPrefix(f[1], "/dev/") {
				kind = "partition"
			}
			if len(f) > 2 {
				kind = f[2]
			}
			fx.swaps = append(fx.swaps, f[1]+"\t\t\t\t"+kind+"\t\t2097148\t\t0\t\t-2")
		case "btrfs":
			for _, d := range f[2:] {
				fx.link("sys/fs/btrfs/"+f[1]+"/devices/"+d, fx.dir(d))
			}
		case "alias":
			fx.need(line, f, 3)
			fx.devs[f[1]] = fx.devs["/dev/"+f[2]]
		case "file":
			fx.devs[f[1]] = ""
		default:
			t.Fatalf("fixture: unknown item %q", line)
		}
	}
	mi := strings.Join(fx.mounts, "\n")
	if mi != "" {
		mi += "\n"
	}
	fx.fs["proc/self/mountinfo"] = &fstest.MapFile{Data: []byte(mi)}
	sw := "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
	for _, s := range fx.swaps {
		sw += s + "\n"
	}
	fx.fs["proc/swaps"] = &fstest.MapFile{Data: []byte(sw)}
	devs := fx.devs
	return Inspector{Root: fx.fs, DevNum: func(p string) (uint32, uint32, error) {
		mm, ok := devs[p]
		if !ok {
			return 0, 0, fmt.Errorf("stat: %w", fs.ErrNotExist)
		}
		if mm == "" {
			return 0, 0, fmt.Errorf("%w (a regular file)", ErrNotBlockDevice)
		}
		var maj, min uint32
		if _, err := fmt.Sscanf(mm, "%d:%d", &maj, &min); err != nil {
			return 0, 0, err
		}
		return maj, min, nil
	}}
}

func (fx *fixture) need(line string, f []string, n int) {
	fx.t.Helper()
	if len(f) < n {
		fx.t.Fatalf("fixture: %q needs %d fields", line, n)
	}
}

func (fx *fixture) size(s string) int64 {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1e9, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "T"):
		mult, s = 1e12, strings.TrimSuffix(s, "T")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fx.t.Fatalf("fixture: size %q: %v", s, err)
	}
	return n * mult
}

func (fx *fixture) dir(name string) string {
	d, ok := fx.dirs[name]
	if !ok {
		fx.t.Fatalf("fixture: no device %s yet", name)
	}
	return d
}

func (fx *fixture) file(name, data string) {
	fx.fs[name] = &fstest.MapFile{Data: []byte(data + "\n"), Mode: 0o444}
}

// link makes a relative symbolic link, as sysfs has: up to the root, then
// down to target.
func (fx *fixture) link(name, target string) {
	up := strings.Repeat("../", strings.Count(path.Dir(name), "/")+1)
	fx.fs[name] = &fstest.MapFile{Data: []byte(up + target), Mode: fs.ModeSymlink | 0o777}
}

// block registers a block device whose sysfs directory is dir.
func (fx *fixture) block(name, majmin, dir string, whole bool) {
	fx.file(dir+"/dev", majmin)
	fx.link("sys/class/block/"+name, dir)
	fx.link("sys/dev/block/"+majmin, dir)
	if whole {
		fx.link("sys/block/"+name, dir)
	}
	fx.dirs[name], fx.names[majmin], fx.devs["/dev/"+name] = dir, name, majmin
}

func (fx *fixture) disk(name, majmin, bus string, size int64, opts []string) {
	n := fx.n
	fx.n++
	var host, dir string
	switch bus {
	case "usb":
		host = fmt.Sprintf("sys/devices/pci0000:00/0000:00:14.0/usb2/2-%d/2-%d:1.0/host%d/target%d:0:0/%d:0:0:0", n, n, n, n, n)
		dir = host + "/block/" + name
	case "sata":
		host = fmt.Sprintf("sys/devices/pci0000:00/0000:00:17.0/ata%d/host%d/target%d:0:0/%d:0:0:0", n+1, n, n, n)
		dir = host + "/block/" + name
	case "nvme":
		host = "sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/" + name[:strings.LastIndex(name, "n")]
		dir = host + "/" + name
	case "mmc":
		i := strings.TrimPrefix(name, "mmcblk")
		host = fmt.Sprintf("sys/devices/platform/fe2%s0000.mmc/mmc_host/mmc%s/mmc%s:0001", i, i, i)
		dir = host + "/block/" + name
	case "virtio":
		host = fmt.Sprintf("sys/devices/pci0000:00/0000:00:0%d.0/virtio%d", n, n)
		dir = host + "/block/" + name
	default:
		fx.t.Fatalf("fixture: unknown bus %q", bus)
	}
	fx.block(name, majmin, dir, true)
	fx.link(dir+"/device", host)
	fx.file(dir+"/size", strconv.FormatInt(size/512, 10))
	rm, ro := "0", "0"
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		v = strings.ReplaceAll(v, "_", " ")
		switch k {
		case "rm":
			rm = "1"
		case "ro":
			ro = "1"
		case "vendor":
			fx.file(host+"/vendor", fmt.Sprintf("%-8s", v)) // SCSI pads with blanks
		case "model":
			if bus == "mmc" {
				fx.file(host+"/name", v)
			} else {
				fx.file(host+"/model", fmt.Sprintf("%-16s", v))
			}
		case "type":
			fx.file(host+"/type", v)
		default:
			fx.t.Fatalf("fixture: unknown disk option %q", o)
		}
	}
	fx.file(dir+"/removable", rm)
	fx.file(dir+"/ro", ro)
}

func (fx *fixture) part(name, majmin string) {
	disk := strings.TrimRight(name, "0123456789")
	num := strings.TrimPrefix(name, disk)
	if d, ok := strings.CutSuffix(disk, "p"); ok && strings.IndexAny(d[len(d)-1:], "0123456789") == 0 {
		disk = d // nvme0n1p3, mmcblk1p2
	}
	dir := fx.dir(disk) + "/" + name
	fx.block(name, majmin, dir, false)
	fx.file(dir+"/partition", num)
	fx.file(dir+"/size", "2048")
}

func (fx *fixture) virtual(name, majmin string) string {
	dir := "sys/devices/virtual/block/" + name
	fx.block(name, majmin, dir, true)
	fx.file(dir+"/size", "2048")
	fx.file(dir+"/removable", "0")
	fx.file(dir+"/ro", "0")
	return dir
}

func (fx *fixture) stack(name, majmin string, slaves []string) {
	dir := fx.virtual(name, majmin)
	for _, s := range slaves {
		fx.link(fx.dir(s)+"/holders/"+name, dir)
		fx.link(dir+"/slaves/"+s, fx.dir(s))
	}
}

// Common fixtures.
const (
	cardReader = `
		disk sdb 8:16 usb 31914983424 rm vendor=Generic model=STORAGE_DEVICE
		part sdb1 8:17
		part sdb2 8:18`
	pcDisk = `
		disk sda 8:0 sata 500107862016 vendor=ATA model=Samsung_SSD_870
		part sda1 8:1
		part sda2 8:2
		part sda3 8:3`
	pcRoot = pcDisk + `
		mount 8:2 /
		mount 8:1 /boot vfat`
	// The firmware itself: / in RAM, the state partition on a card or eMMC.
	initramfs = `
		mount 0:2 / rootfs rootfs`
	emmc = `
		disk mmcblk0 179:0 mmc 31268536320 type=MMC model=BJTD4R
		part mmcblk0p1 179:1
		part mmcblk0p2 179:2`
	sdCard = `
		disk mmcblk1 179:32 mmc 31914983424 type=SD model=SD32G
		part mmcblk1p1 179:33
		part mmcblk1p2 179:34`
)

func TestInspectAndCheck(t *testing.T) {
	const gbImage = 1e9
	tests := []struct {
		name  string
		sys   string
		path  string
		opt   Options
		err   string   // Inspect fails with this
		errIs error    // and this
		want  []string // Check refuses with these reasons (substrings, in order); nil: it passes
		check func(*testing.T, *Target)
	}{{
		name: "USB card reader",
		sys:  cardReader + pcRoot,
		path: "/dev/sdb",
		opt:  Options{ImageSize: gbImage},
		check: func(t *testing.T, tg *Target) {
			eq(t, "Describe", tg.Describe(), "sdb: Generic STORAGE DEVICE, 31.9 GB (29.7 GiB), removable, usb")
			eq(t, "Partitions", tg.Partitions, []string{"sdb1", "sdb2"})
			eq(t, "Name Vendor Model Transport", []string{tg.Name, tg.Vendor, tg.Model, tg.Transport}, []string{"sdb", "Generic", "STORAGE DEVICE", "usb"})
			eq(t, "Size", tg.Size, int64(31914983424))
			if len(tg.Mounts)+len(tg.Swaps)+len(tg.Holders)+len(tg.System) != 0 {
				t.Errorf("in use: %+v", tg)
			}
		},
	}, {
		name: "by-id link to the card reader",
		sys:  cardReader + pcRoot + "\nalias /dev/disk/by-id/usb-Generic_STORAGE_DEVICE-0:0 sdb",
		path: "/dev/disk/by-id/usb-Generic_STORAGE_DEVICE-0:0",
		opt:  Options{ImageSize: gbImage},
		check: func(t *testing.T, tg *Target) {
			eq(t, "Path Name", []string{tg.Path, tg.Name}, []string{"/dev/disk/by-id/usb-Generic_STORAGE_DEVICE-0:0", "sdb"})
		},
	}, {
		name: "card reader with a mounted partition",
		sys:  cardReader + pcRoot + "\nmount 8:17 /media/card vfat",
		path: "/dev/sdb",
		opt:  Options{ImageSize: gbImage},
		want: []string{"it has mounted file systems (sdb1 on /media/card): unmount them first"},
	}, {
		name: "mount point with a space, whole-disk file system",
		sys: cardReader + pcRoot + `
			mount 8:18 /media/my\040card
			mount 8:16 /mnt/raw`,
		path: "/dev/sdb",
		want: []string{"(sdb2 on /media/my card, sdb on /mnt/raw)"},
	}, {
		name: "PC system disk, even with --allow-fixed",
		sys:  cardReader + pcRoot,
		path: "/dev/sda",
		opt:  Options{ImageSize: gbImage, AllowFixed: true},
		want: []string{
			"it holds the running system (/ is on sda2, /boot is on sda1)",
			"it has mounted file systems (sda2 on /, sda1 on /boot)", // no "unmount them first" for the system
		},
		check: func(t *testing.T, tg *Target) {
			eq(t, "Transport", tg.Transport, "sata")
		},
	}, {
		name: "PC system disk",
		sys:  pcRoot,
		path: "/dev/sda",
		want: []string{"running system", "mounted", "not removable: add --allow-fixed"},
	}, {
		name: "partition",
		sys:  cardReader + pcRoot,
		path: "/dev/sdb1",
		err:  "flash: /dev/sdb1 is a partition of sdb; give the whole disk /dev/sdb",
	}, {
		name: "partition by id",
		sys:  emmc + "\nalias /dev/disk/by-path/platform-fe310000.mmc-part2 mmcblk0p2",
		path: "/dev/disk/by-path/platform-fe310000.mmc-part2",
		err:  "flash: /dev/disk/by-path/platform-fe310000.mmc-part2 is a partition of mmcblk0; give the whole disk /dev/mmcblk0",
	}, {
		name:  "image file instead of a device",
		sys:   pcRoot + "\nfile /home/owner/rknas.img",
		path:  "/home/owner/rknas.img",
		err:   "flash: inspect /home/owner/rknas.img: not a block device (a regular file)",
		errIs: ErrNotBlockDevice,
	}, {
		name:  "no such device",
		sys:   pcRoot,
		path:  "/dev/sdz",
		errIs: fs.ErrNotExist,
	}, {
		name: "internal NVMe disk",
		sys:  pcRoot + "\ndisk nvme0n1 259:0 nvme 256060514304 model=Samsung_SSD_980",
		path: "/dev/nvme0n1",
		opt:  Options{ImageSize: gbImage},
		want: []string{"it is not removable: add --allow-fixed if you really mean this disk"},
		check: func(t *testing.T, tg *Target) {
			eq(t, "Describe", tg.Describe(), "nvme0n1: Samsung SSD 980, 256.1 GB (238.5 GiB), fixed, nvme")
		},
	}, {
		name: "internal NVMe disk with --allow-fixed",
		sys:  pcRoot + "\ndisk nvme0n1 259:0 nvme 256060514304 model=Samsung_SSD_980",
		path: "/dev/nvme0n1",
		opt:  Options{ImageSize: gbImage, AllowFixed: true},
	}, {
		name: "LVM: / on dm-0 on nvme0n1p3",
		sys: `
			disk nvme0n1 259:0 nvme 256060514304 model=Samsung_SSD_980
			part nvme0n1p1 259:1
			part nvme0n1p2 259:2
			part nvme0n1p3 259:3
			dm dm-0 253:0 nvme0n1p3
			mount 253:0 / ext4 /dev/mapper/vg-root` + cardReader,
		path: "/dev/nvme0n1",
		opt:  Options{ImageSize: gbImage, AllowFixed: true},
		want: []string{
			"it holds the running system (/ is on dm-0 (via nvme0n1p3))",
			"it has mounted file systems (dm-0 on /)",
			"it is in use by dm-0: release them first (vgchange -an, cryptsetup close or dmsetup remove)",
		},
		check: func(t *testing.T, tg *Target) {
			eq(t, "Holders", tg.Holders, []string{"dm-0"})
		},
	}, {
		name: "LUKS on LVM: / on dm-1 on dm-0 on nvme0n1p3",
		sys: `
			disk nvme0n1 259:0 nvme 256060514304
			part nvme0n1p3 259:3
			dm dm-0 253:0 nvme0n1p3
			dm dm-1 253:1 dm-0
			mount 253:1 /`,
		path: "/dev/nvme0n1",
		opt:  Options{AllowFixed: true},
		want: []string{"(/ is on dm-1 (via dm-0, nvme0n1p3))", "(dm-1 on /)", "in use by dm-0"},
	}, {
		name: "md RAID member",
		sys: pcRoot + `
			disk sdc 8:32 usb 16G rm
			part sdc1 8:33
			disk sdd 8:48 usb 16G rm
			part sdd1 8:49
			md md0 9:0 sdc1 sdd1
			mount 9:0 /srv`,
		path: "/dev/sdd",
		want: []string{"(md0 on /srv)", "it is in use by md0: release them first (mdadm --stop)"},
	}, {
		name: "1 TB removable disk",
		sys:  pcRoot + "\ndisk sdb 8:16 usb 1T rm",
		path: "/dev/sdb",
		opt:  Options{ImageSize: gbImage},
		want: []string{"it is larger than 512 GiB (1000.0 GB / 931.3 GiB): add --allow-large if you really mean this disk"},
	}, {
		name: "1 TB removable disk with --allow-large",
		sys:  pcRoot + "\ndisk sdb 8:16 usb 1T rm",
		path: "/dev/sdb",
		opt:  Options{ImageSize: gbImage, AllowLarge: true},
	}, {
		name: "2 GB card, 3 GB image",
		sys:  pcRoot + "\ndisk sdb 8:16 usb 2G rm",
		path: "/dev/sdb",
		opt:  Options{ImageSize: 3e9},
		want: []string{"it is smaller than the image (disk 2.0 GB / 1.9 GiB < image 3.0 GB / 2.8 GiB)"},
	}, {
		name: "card reader without a card",
		sys:  pcRoot + "\ndisk sdb 8:16 usb 0 rm",
		path: "/dev/sdb",
		opt:  Options{ImageSize: 3e9},
		want: []string{"it has no medium (size 0): insert the card"},
	}, {
		name: "write-protected SD card",
		sys:  pcRoot + "\ndisk mmcblk1 179:32 mmc 31914983424 ro type=SD model=SD32G",
		path: "/dev/mmcblk1",
		opt:  Options{ImageSize: gbImage},
		want: []string{"it is read-only (write-protect switch?)"},
	}, {
		name: "swap partition",
		sys: pcRoot + `
			disk sdc 8:32 usb 16G rm
			part sdc1 8:33
			part sdc2 8:34
			swap /dev/sdc2`,
		path: "/dev/sdc",
		want: []string{"it holds swap (/dev/sdc2): swapoff first"},
	}, {
		name: "swap file",
		sys: cardReader + pcRoot + `
			mount 8:17 /media/card
			swap /media/card/swap\040file`,
		path: "/dev/sdb",
		want: []string{"(sdb1 on /media/card)", "it holds swap (/media/card/swap file)"},
	}, {
		name: "swap elsewhere",
		sys:  cardReader + pcRoot + "\nswap /dev/sda3\nswap /swapfile",
		path: "/dev/sdb",
	}, {
		name: "eMMC",
		sys:  initramfs + emmc + sdCard + "\nmount 179:34 /state",
		path: "/dev/mmcblk0",
		opt:  Options{ImageSize: gbImage},
		want: []string{"not removable"},
		check: func(t *testing.T, tg *Target) {
			eq(t, "Describe", tg.Describe(), "mmcblk0: MMC BJTD4R, 31.3 GB (29.1 GiB), fixed, mmc")
			eq(t, "MMCType", tg.MMCType, "MMC")
		},
	}, {
		name: "eMMC with --allow-fixed, firmware running from the SD card",
		sys:  initramfs + emmc + sdCard + "\nmount 179:34 /state",
		path: "/dev/mmcblk0",
		opt:  Options{ImageSize: gbImage, AllowFixed: true},
	}, {
		name: "SD card in a card slot",
		sys:  pcRoot + sdCard,
		path: "/dev/mmcblk1",
		opt:  Options{ImageSize: gbImage},
		check: func(t *testing.T, tg *Target) {
			eq(t, "Describe", tg.Describe(), "mmcblk1: SD SD32G, 31.9 GB (29.7 GiB), removable, mmc")
			eq(t, "Partitions", tg.Partitions, []string{"mmcblk1p1", "mmcblk1p2"})
		},
	}, {
		name: "firmware's own SD card: /state on mmcblk1p2",
		sys:  initramfs + emmc + sdCard + "\nmount 179:34 /state",
		path: "/dev/mmcblk1",
		opt:  Options{ImageSize: gbImage, AllowFixed: true},
		want: []string{"it holds the running system (/state is on mmcblk1p2)", "(mmcblk1p2 on /state)"},
	}, {
		name: "loop device backed by a file on the target",
		sys: `
			mount 0:2 / tmpfs tmpfs
			disk sda 8:0 sata 500107862016
			part sda1 8:1
			mount 8:1 /var
			loop loop0 7:0 /var/img.bin
			mount 7:0 /mnt`,
		path: "/dev/sda",
		opt:  Options{ImageSize: gbImage, AllowFixed: true},
		want: []string{"(sda1 on /var): unmount them first", "it is in use by loop0: release them first (losetup -d)"},
	}, {
		name: "live system: / on a loop device backed by a file on the target",
		sys: pcDisk + cardReader + `
			mount 8:17 /run/medium
			loop loop0 7:0 /run/medium/live/filesystem.squashfs
			mount 7:0 / squashfs`,
		path: "/dev/sdb",
		opt:  Options{ImageSize: gbImage},
		want: []string{"(/ is on loop0 (via /run/medium/live/filesystem.squashfs, sdb1))", "(sdb1 on /run/medium)", "in use by loop0"},
	}, {
		name: "loop device on a partition of the target",
		sys:  cardReader + pcRoot + "\nloop loop1 7:1 /dev/sdb2",
		path: "/dev/sdb",
		want: []string{"it is in use by loop1"},
	}, {
		name: "loop device on a partition as the target",
		sys:  cardReader + pcRoot + "\nloop loop1 7:1 /dev/sdb2",
		path: "/dev/loop1",
		opt:  Options{AllowFixed: true},
		want: []string{"it is stacked on sdb2: give the disk itself"},
	}, {
		name: "loop device on an image file as the target",
		sys:  pcRoot + "\nloop loop0 7:0 /var/lib/rknas/test.img",
		path: "/dev/loop0",
		opt:  Options{AllowFixed: true},
		check: func(t *testing.T, tg *Target) {
			eq(t, "Transport", tg.Transport, "loop")
		},
	}, {
		name: "btrfs root over two disks reports an anonymous device",
		sys: pcDisk + `
			disk nvme0n1 259:0 nvme 256060514304
			part nvme0n1p2 259:2
			mount 0:31 / btrfs /dev/nvme0n1p2
			btrfs 2d5c1b4c-3d47-4a31-a4a1-8d1a1f0c0a11 nvme0n1p2 sda3`,
		path: "/dev/sda",
		opt:  Options{AllowFixed: true},
		want: []string{"it holds the running system (/ is on sda3)", "(sda3 on /)"},
	}, {
		name: "overlay root: no disk under /",
		sys:  pcDisk + "\nmount 0:30 / overlay overlay",
		path: "/dev/sda",
		opt:  Options{AllowFixed: true},
	}, {
		name: "virtio disk",
		sys:  initramfs + "\ndisk vdb 254:16 virtio 8G",
		path: "/dev/vdb",
		opt:  Options{AllowFixed: true},
		check: func(t *testing.T, tg *Target) {
			eq(t, "Describe", tg.Describe(), "vdb: 8.0 GB (7.5 GiB), fixed, virtio")
		},
	}, {
		name: "partitions sorted by number",
		sys: `
			disk sdb 8:16 usb 32G rm
			part sdb10 8:26
			part sdb2 8:18
			part sdb1 8:17`,
		path: "/dev/sdb",
		check: func(t *testing.T, tg *Target) {
			eq(t, "Partitions", tg.Partitions, []string{"sdb1", "sdb2", "sdb10"})
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := sys(t, tc.sys).Inspect(tc.path)
			if tc.err != "" || tc.errIs != nil {
				if err == nil {
					t.Fatalf("Inspect(%s) = %+v, want an error", tc.path, tg)
				}
				if tc.err != "" && !strings.Contains(err.Error(), tc.err) {
					t.Errorf("Inspect(%s) error = %q, want %q", tc.path, err, tc.err)
				}
				if tc.errIs != nil && !errors.Is(err, tc.errIs) {
					t.Errorf("Inspect(%s) error = %v, want errors.Is %v", tc.path, err, tc.errIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Inspect(%s): %v", tc.path, err)
			}
			if tc.check != nil {
				tc.check(t, tg)
			}
			err = tg.Check(tc.opt)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Check(%+v) = %v, want nil\ntarget: %+v", tc.opt, err, tg)
				}
				return
			}
			var r *Refusal
			if !errors.As(err, &r) {
				t.Fatalf("Check(%+v) = %v, want a *Refusal\ntarget: %+v", tc.opt, err, tg)
			}
			if len(r.Reasons) != len(tc.want) {
				t.Fatalf("Check(%+v) reasons:\n%s\nwant %d:\n%s", tc.opt, strings.Join(r.Reasons, "\n"), len(tc.want), strings.Join(tc.want, "\n"))
			}
			for i, w := range tc.want {
				if !strings.Contains(r.Reasons[i], w) {
					t.Errorf("reason %d = %q, want it to contain %q", i, r.Reasons[i], w)
				}
			}
			if r.Target != tg || !strings.HasPrefix(err.Error(), "refusing to write "+tc.path+" (") {
				t.Errorf("Error() = %q", err)
			}
		})
	}
}

func TestRefusalListsEveryReason(t *testing.T) {
	in := sys(t, `
		disk sda 8:0 sata 1T ro vendor=ATA model=WDC_WD10EZEX
		part sda1 8:1
		part sda2 8:2
		part sda3 8:3
		part sda4 8:4
		mount 8:2 /
		mount 8:1 /boot vfat
		swap /dev/sda3
		dm dm-0 253:0 sda4`)
	tg, err := in.Inspect("/dev/sda")
	if err != nil {
		t.Fatal(err)
	}
	err = tg.Check(Options{ImageSize: 2e12})
	want := "refusing to write /dev/sda (ATA WDC WD10EZEX, 1000.0 GB / 931.3 GiB): " +
		"it holds the running system (/ is on sda2, /boot is on sda1); " +
		"it has mounted file systems (sda2 on /, sda1 on /boot); " +
		"it holds swap (/dev/sda3): swapoff first; " +
		"it is in use by dm-0: release them first (vgchange -an, cryptsetup close or dmsetup remove); " +
		"it is read-only (write-protect switch?); " +
		"it is smaller than the image (disk 1000.0 GB / 931.3 GiB < image 2000.0 GB / 1862.6 GiB); " +
		"it is not removable: add --allow-fixed if you really mean this disk; " +
		"it is larger than 512 GiB (1000.0 GB / 931.3 GiB): add --allow-large if you really mean this disk"
	if err == nil || err.Error() != want {
		t.Errorf("Check:\n got %v\nwant %s", err, want)
	}
	// Options relax only the fixed and large rules.
	err = tg.Check(Options{ImageSize: 2e12, AllowFixed: true, AllowLarge: true})
	var r *Refusal
	if !errors.As(err, &r) || len(r.Reasons) != 6 {
		t.Errorf("Check with every option = %v, want 6 reasons", err)
	}
}

func TestCheckHandmade(t *testing.T) {
	card := func(size int64) *Target {
		return &Target{Path: "/dev/sdb", Name: "sdb", Size: size, Removable: true}
	}
	tests := []struct {
		name string
		t    *Target
		opt  Options
		want string // "" for a pass
	}{
		{"no image size skips the size check", card(2e9), Options{}, ""},
		{"exact fit", card(3e9), Options{ImageSize: 3e9}, ""},
		{"one decimal hides the difference", card(3e9 - 512), Options{ImageSize: 3e9},
			"refusing to write /dev/sdb (3.0 GB / 2.8 GiB): it is smaller than the image (disk 3.0 GB / 2.8 GiB < image 3.0 GB / 2.8 GiB: 2999999488 < 3000000000 bytes)"},
		{"exactly MaxSize", card(MaxSize), Options{}, ""},
		{"one sector over MaxSize", card(MaxSize + 512), Options{}, "larger than 512 GiB"},
		{"no path", &Target{Name: "sdx", Size: 1e9, Removable: true, Holders: []string{"nbd0"}}, Options{},
			"refusing to write /dev/sdx (1.0 GB / 0.9 GiB): it is in use by nbd0: release them first"},
		{"nil target", nil, Options{}, "flash: check: no target"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.t.Check(tc.opt)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Check = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestInspectFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(fstest.MapFS)
		want string
	}{
		{"no mountinfo", func(m fstest.MapFS) { delete(m, "proc/self/mountinfo") }, "read mounts"},
		{"garbled mountinfo", func(m fstest.MapFS) {
			m["proc/self/mountinfo"] = &fstest.MapFile{Data: []byte("26 1 8:2 / /\n")}
		}, "parse mountinfo line 1"},
		{"no size", func(m fstest.MapFS) {
			for k := range m {
				if strings.HasSuffix(k, "/block/sdb/size") {
					delete(m, k)
				}
			}
		}, "bad sector count"},
		{"unknown swap device", func(m fstest.MapFS) {
			m["proc/swaps"] = &fstest.MapFile{Data: []byte("Filename Type Size Used Priority\n/dev/gone partition 1 0 -2\n")}
		}, "locate swap /dev/gone"},
		{"stack deeper than any real one", func(m fstest.MapFS) {
			// loop0 backed by a file on a file system mounted from loop0.
			m["proc/self/mountinfo"] = &fstest.MapFile{Data: []byte("20 1 7:0 / /mnt rw - ext4 /dev/loop0 rw\n")}
		}, "device stack deeper than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := sys(t, cardReader+"\nloop loop0 7:0 /mnt/img")
			tc.edit(in.Root.(fstest.MapFS))
			_, err := in.Inspect("/dev/sdb")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Inspect = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := (Inspector{}).Inspect("/dev/sdb"); err == nil {
		t.Error("zero Inspector: Inspect succeeded")
	}
}

func TestTransport(t *testing.T) {
	for _, tc := range []struct{ dir, name, want string }{
		{"sys/devices/platform/usbdrd3_0/fc000000.usb/xhci-hcd.0.auto/usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0/block/sda", "sda", "usb"},
		{"sys/devices/platform/fc800000.sata/ata1/host0/target0:0:0/0:0:0:0/block/sda", "sda", "sata"},
		{"sys/devices/platform/fe2e0000.mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0", "mmcblk0", "mmc"},
		{"sys/devices/pci0000:00/0000:00:04.0/mmc_host/mmc0/mmc0:aaaa/block/mmcblk0", "mmcblk0", "mmc"},
		{"sys/devices/platform/3c0800000.pcie/pci0002:20/0002:20:00.0/0002:21:00.0/nvme/nvme0/nvme0n1", "nvme0n1", "nvme"},
		{"sys/devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1", "nvme0n1", "nvme"},
		{"sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda", "vda", "virtio"},
		{"sys/devices/virtual/block/loop0", "loop0", "loop"},
		{"sys/devices/virtual/block/dm-0", "dm-0", "dm"},
		{"sys/devices/virtual/block/md127", "md127", "md"},
		{"sys/devices/virtual/block/zram0", "zram0", "zram"},
		{"sys/devices/pci0000:00/0000:00:10.0/host2/target2:0:0/2:0:0:0/block/sdc", "sdc", "scsi"},
		{"sys/devices/platform/data/block/sdd", "sdd", ""}, // "data" is no ATA bus
	} {
		if got := transportOf(tc.dir, tc.name); got != tc.want {
			t.Errorf("transportOf(%s) = %q, want %q", tc.dir, got, tc.want)
		}
	}
}

func TestParseMountinfo(t *testing.T) {
	in := "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n" +
		"37 35 0:40 / /media/my\\040card\\011tab rw - vfat /dev/sdb\\0401 rw\n" +
		"38 35 0:41 / /empty\\134source rw shared:2 master:3 - tmpfs  rw\n"
	got, err := parseMountinfo([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []mount{
		{dev: "98:0", point: "/mnt2", fstype: "ext3", source: "/dev/root"},
		{dev: "0:40", point: "/media/my card\ttab", fstype: "vfat", source: "/dev/sdb 1"},
		{dev: "0:41", point: `/empty\source`, fstype: "tmpfs", source: ""},
	}
	eq(t, "parseMountinfo", got, want)
}

func TestParseSwaps(t *testing.T) {
	in := "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n" +
		"/dev/sdc2                               partition\t2097148\t\t0\t\t-2\n" +
		"/swap\\040file\\040(deleted)                 file\t\t1048572\t\t0\t\t-3\n"
	eq(t, "parseSwaps", parseSwaps([]byte(in)), []swap{{"/dev/sdc2", "partition"}, {"/swap file", "file"}})
	eq(t, "parseSwaps(nil)", len(parseSwaps(nil)), 0)
}

// mangle escapes like the kernel's seq_file mangle() for mountinfo and swaps.
func mangle(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; strings.IndexByte(" \t\n\\", c) >= 0 {
			fmt.Fprintf(&b, `\%03o`, c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func FuzzUnescape(f *testing.F) {
	for _, s := range []string{"", "/media/my card", `a\b`, "\t\n", `\040`, `\777`, `\\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := unescape(mangle(s)); got != s {
			t.Errorf("unescape(mangle(%q)) = %q", s, got)
		}
		_ = unescape(s) // any input: no panic
	})
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add([]byte("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"))
	f.Add([]byte("1 2 3:4 / / rw - - - -\n- - - - - - - - - -"))
	f.Add([]byte("36 35 98:0 / /x\\04 rw - ext4 \\ rw"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := parseMountinfo(b)
		if err != nil {
			return
		}
		for _, m := range ms {
			if !strings.Contains(m.dev, ":") {
				t.Errorf("mount %+v: device without ':'", m)
			}
		}
	})
}

func FuzzParseSwaps(f *testing.F) {
	f.Add([]byte("Filename Type Size Used Priority\n/dev/sdc2 partition 2097148 0 -2\n"))
	f.Add([]byte("\n\n/x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, s := range parseSwaps(b) {
			if s.name == "" || s.kind == "" {
				t.Errorf("empty field in %+v", s)
			}
		}
	})
}

// TestInspectHost inspects every disk of the machine running the test
// (read-only: sysfs, procfs, stat) and checks that the disk holding / is
// refused.
func TestInspectHost(t *testing.T) {
	in := NewInspector()
	tmp := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(tmp, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{tmp, "/dev/null", t.TempDir()} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if _, _, err := in.DevNum(p); !errors.Is(err, ErrNotBlockDevice) {
			t.Errorf("DevNum(%s) = %v, want ErrNotBlockDevice", p, err)
		}
		if _, err := in.Inspect(p); !errors.Is(err, ErrNotBlockDevice) {
			t.Errorf("Inspect(%s) = %v, want ErrNotBlockDevice", p, err)
		}
	}
	if _, _, err := in.DevNum("/dev/does-not-exist"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("DevNum(missing) = %v, want fs.ErrNotExist", err)
	}

	disks, err := os.ReadDir("/sys/block")
	if err != nil {
		t.Fatalf("read /sys/block (the flasher needs sysfs, as on every Linux): %v", err)
	}
	rootOnBlock := false
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		if ms, err := parseMountinfo(b); err == nil {
			for _, m := range ms {
				if m.point == "/" {
					_, err := os.Stat("/sys/dev/block/" + m.dev)
					rootOnBlock = err == nil
				}
			}
		}
	}
	var systemDisks []string
	for _, d := range disks {
		p := "/dev/" + d.Name()
		if _, err := os.Stat(p); err != nil {
			continue // no node in this container
		}
		tg, err := in.Inspect(p)
		if err != nil {
			t.Errorf("Inspect(%s): %v", p, err)
			continue
		}
		t.Logf("%s: %v", tg.Describe(), tg.Check(Options{}))
		if len(tg.System) > 0 {
			systemDisks = append(systemDisks, tg.Name)
			if tg.Check(Options{AllowFixed: true, AllowLarge: true}) == nil {
				t.Errorf("%s holds the system (%v) but passes Check", tg.Name, tg.System)
			}
		}
		if slices.ContainsFunc(tg.System, func(s string) bool { return strings.HasPrefix(s, "/ is on ") }) {
			rootOnBlock = false // found it
		}
	}
	if rootOnBlock {
		t.Errorf("/ is on a block device, but no disk says so (system disks: %v)", systemDisks)
	}
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if g, w := fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want); g != w {
		t.Errorf("%s = %s, want %s", what, g, w)
	}
}
