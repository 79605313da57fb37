package diskimage

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The layout every board's image shares. The first 16 MiB belong to the
// Rockchip boot chain: the mask ROM reads idbloader (or the one-file
// u-boot-rockchip.bin) at sector 64, and a split build puts u-boot.itb at
// sector 16384. The GPT fits before sector 64. The manifest and
// provisioning live in files of the boot partition.
const (
	// BootChainSector is where idbloader.img or u-boot-rockchip.bin starts.
	BootChainSector = 64
	// UBootITBSector is where a split build's u-boot.itb starts.
	UBootITBSector = 16384
	// BootChainEnd is the first sector after the boot chain area: 16 MiB.
	BootChainEnd = 32768
	// BootStart is the boot partition's first sector.
	BootStart = BootChainEnd
	// BootSectors is the boot partition's size: 128 MiB, room for the
	// kernel (about 36 MiB), the initramfs, the device trees and an update.
	BootSectors = 128 << 20 / SectorSize
	// StateSectors is the state partition's size in the image: 64 MiB. It
	// grows to fill the medium on its first boot (or when flashed).
	StateSectors = 64 << 20 / SectorSize
	// tailSectors keeps the backup GPT and 1 MiB alignment at the end.
	tailSectors = 2048

	// BootLabel and StateLabel are the GPT partition names (and the file
	// systems' labels) the firmware looks for.
	BootLabel  = "RKNAS-BOOT"
	StateLabel = "RKNAS-STATE"
	// BootNumber and StateNumber are the partitions' numbers.
	BootNumber  = 1
	StateNumber = 2
)

// Files on the boot partition, relative to its root.
const (
	ExtlinuxFile  = "extlinux/extlinux.conf"
	KernelFile    = "rknas/Image"
	InitramfsFile = "rknas/initramfs.cpio.zst"
	DTBDir        = "rknas/dtb"
	ManifestFile  = "rknas/image.json"
	// StateTemplateFile is an empty state file system (gzip), from which the
	// firmware makes the state partition of a medium it installs to.
	StateTemplateFile = "rknas/state.ext4.gz"
	ReadmeFile        = "rknas/README.txt"
)

// ImageSectors is the size of an image file in sectors.
const ImageSectors = BootChainEnd + BootSectors + StateSectors + tailSectors

// DiskArg is the kernel command-line parameter naming the medium the system
// booted from, by its GPT disk GUID: the firmware mounts the state partition
// of that disk and no other (a TF card and an eMMC may both hold one).
const DiskArg = "rknas.disk"

// MediumTable returns the partition table of a medium of sectors sectors: the boot
// partition, and the state partition up to the end of the medium (aligned
// down to 1 MiB, which keeps 4 KiB file-system blocks whole).
func MediumTable(disk, boot, state GUID, sectors uint64) (*Table, error) {
	last := sectors - 34 // the backup GPT takes the last 33 sectors
	end := (last+1)/2048*2048 - 1
	if end < BootStart+BootSectors+StateSectors-1 {
		return nil, fmt.Errorf("diskimage: a medium of %d sectors is smaller than the image (%d)", sectors, ImageSectors)
	}
	return &Table{DiskID: disk, Partitions: []Partition{
		{Number: BootNumber, Type: TypeBasicData, ID: boot, First: BootStart, Last: BootStart + BootSectors - 1,
			Attributes: AttrLegacyBIOSBootable, Name: BootLabel},
		{Number: StateNumber, Type: TypeLinuxFS, ID: state, First: BootStart + BootSectors, Last: end, Name: StateLabel},
	}}, nil
}

// Manifest describes an image; it is ManifestFile on its boot partition.
type Manifest struct {
	// Format is the layout's version, 1.
	Format int `json:"format"`
	// Board is the profile name, e.g. "qnap-ts433".
	Board string `json:"board"`
	Model string `json:"model"`
	SoC   string `json:"soc,omitempty"`
	// Version is the firmware version.
	Version string `json:"version"`
	// Kernel is the kernel release, e.g. "6.12.117+deb13-arm64".
	Kernel string `json:"kernel"`
	// DTB is the device tree on the boot partition, empty when the boot
	// firmware provides one (QEMU).
	DTB string `json:"dtb,omitempty"`
	// Bootloader says what the image carries in the boot chain area.
	Bootloader BootloaderInfo `json:"bootloader"`
	// Built is when the image was built (RFC 3339, UTC).
	Built string `json:"built"`
}

// BootloaderInfo says what is in an image's boot chain area.
type BootloaderInfo struct {
	// Included is true when the image carries a bootloader at
	// BootChainSector. When false the flasher leaves the target's first
	// 16 MiB (after the GPT) as they are: the board boots from SPI flash, or
	// from a bootloader already on the medium.
	Included bool `json:"included"`
	// Source says where it came from: "debian u-boot-rockchip 2025.01-3
	// rockpro64-rk3399", "file u-boot-rockchip.bin", or where the board's
	// own bootloader lives when none is included.
	Source string `json:"source"`
	// SHA256 is the included bootloader's hash.
	SHA256 string `json:"sha256,omitempty"`
	// Size is its length in bytes.
	Size int64 `json:"size,omitempty"`
}

// ParseManifest decodes and checks a manifest.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("diskimage: manifest: %w", err)
	}
	switch {
	case m.Format != 1:
		return nil, fmt.Errorf("diskimage: manifest: format %d is not supported (1)", m.Format)
	case m.Board == "":
		return nil, fmt.Errorf("diskimage: manifest: board is missing")
	case m.Bootloader.Included && m.Bootloader.Size <= 0:
		return nil, fmt.Errorf("diskimage: manifest: bootloader.size is missing")
	case m.Bootloader.Size > (BootChainEnd-BootChainSector)*SectorSize:
		return nil, fmt.Errorf("diskimage: manifest: bootloader.size %d does not fit before sector %d", m.Bootloader.Size, BootChainEnd)
	}
	return &m, nil
}

// ExtlinuxConfig is the boot menu U-Boot's standard boot reads from
// /extlinux/extlinux.conf. disk is the medium's GPT disk GUID: the flasher
// rewrites it in place (same length) for each medium it writes.
func ExtlinuxConfig(m *Manifest, console string, disk GUID) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# rknas firmware %s for %s (%s), kernel %s.\n", m.Version, m.Model, m.Board, m.Kernel)
	fmt.Fprintf(&b, "# %s names this medium's GPT disk GUID; the flasher sets it.\n", DiskArg)
	b.WriteString("timeout 10\ndefault rknas\n\nlabel rknas\n")
	fmt.Fprintf(&b, "\tkernel /%s\n", KernelFile)
	if m.DTB != "" {
		fmt.Fprintf(&b, "\tfdt /%s/%s\n", DTBDir, m.DTB)
	}
	fmt.Fprintf(&b, "\tinitrd /%s\n", InitramfsFile)
	fmt.Fprintf(&b, "\tappend console=%s %s=%s panic=10 loglevel=4\n", console, DiskArg, disk)
	return b.String()
}
