// Package imagebuild builds a board's disk image on the build host, with
// dosfstools, mtools and e2fsprogs: the layout of package diskimage, the
// board's kernel, device tree, initramfs and bootloader.
package imagebuild

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rknas/firmware/authd/atomicfile"
	"github.com/rknas/firmware/board"
	"github.com/rknas/firmware/board/diskimage"
	"github.com/rknas/firmware/board/provision"
)

// BuildSpec is what one board's image is made of.
type BuildSpec struct {
	Profile board.Profile
	// Kernel is the kernel Image (arm64, uncompressed).
	Kernel string
	// KernelRelease is its release, e.g. "6.12.117+deb13-arm64".
	KernelRelease string
	// DTB is the board's device tree file; empty when the boot firmware
	// provides one (QEMU).
	DTB string
	// Initramfs is the board's initramfs (cpio.zst).
	Initramfs string
	// Bootloader is written at diskimage.BootChainSector when not empty; Source says
	// where it came from (for the manifest).
	Bootloader       []byte
	BootloaderSource string
	// Version is the firmware version.
	Version string
	// StateDir, when set, is copied into the state partition (tests put
	// test binaries there); the template stays empty.
	StateDir string
	// Out is the image file to write. Out.sha256 is written beside it.
	Out string
	// Now is the build time; time.Now when zero.
	Now time.Time
}

// Tools the builder runs (dosfstools, mtools, e2fsprogs); checked up front
// so a missing one is named before anything is written.
var buildTools = []string{"mkfs.vfat", "mmd", "mcopy", "mkfs.ext4"}

// Build writes the image: GPT, the bootloader if any, the FAT boot
// partition with extlinux.conf, kernel, device tree, initramfs, manifest,
// README, unprovisioned password and hostname files and the state template,
// and the ext4 state partition. The image is written next to Out and renamed
// into place, so Out is never half written.
func Build(ctx context.Context, s BuildSpec) (*diskimage.Manifest, error) {
	for _, t := range buildTools {
		if _, err := exec.LookPath(t); err != nil {
			return nil, fmt.Errorf("imagebuild: build needs %s (dosfstools, mtools, e2fsprogs: scripts/deps.sh): %w", t, err)
		}
	}
	if s.Now.IsZero() {
		s.Now = time.Now()
	}
	p := s.Profile
	if p.DTBSince != "" && s.DTB == "" {
		return nil, fmt.Errorf("imagebuild: %s: the kernel %s has no %s: the board's device tree came with Linux %s",
			p.Name, s.KernelRelease, p.DTB, p.DTBSince)
	}
	if p.Kernels != "" && !p.HoldsFor(s.KernelRelease) {
		return nil, fmt.Errorf("imagebuild: %s: the profile's facts hold for Linux %s and the kernel is %s: "+
			"check the profile against this kernel's device tree (board/imagetest) and widen its kernels first",
			p.Name, p.Kernels, s.KernelRelease)
	}
	if len(s.Bootloader) > (diskimage.BootChainEnd-diskimage.BootChainSector)*diskimage.SectorSize {
		return nil, fmt.Errorf("imagebuild: bootloader is %d bytes; it must fit between sector %d and %d (%d bytes)",
			len(s.Bootloader), diskimage.BootChainSector, diskimage.BootChainEnd, (diskimage.BootChainEnd-diskimage.BootChainSector)*diskimage.SectorSize)
	}
	m := &diskimage.Manifest{Format: 1, Board: p.Name, Model: p.Model, SoC: p.SoC, Version: s.Version,
		Kernel: s.KernelRelease, Built: s.Now.UTC().Format(time.RFC3339)}
	if s.DTB != "" {
		m.DTB = p.DTB
	}
	if len(s.Bootloader) > 0 {
		sum := sha256.Sum256(s.Bootloader)
		m.Bootloader = diskimage.BootloaderInfo{Included: true, Source: s.BootloaderSource, SHA256: hex.EncodeToString(sum[:]),
			Size: int64(len(s.Bootloader))}
	} else {
		m.Bootloader = diskimage.BootloaderInfo{Source: bootloaderWhere(p)}
	}

	work, err := os.MkdirTemp(filepath.Dir(s.Out), ".build-")
	if err != nil {
		return nil, fmt.Errorf("imagebuild: %w", err)
	}
	defer os.RemoveAll(work)

	// The state file system first: its empty form is also the template
	// on the boot partition.
	template := filepath.Join(work, "state.ext4")
	if err := mkfsState(ctx, template, ""); err != nil {
		return nil, err
	}
	state := template
	if s.StateDir != "" {
		state = filepath.Join(work, "state-filled.ext4")
		if err := mkfsState(ctx, state, s.StateDir); err != nil {
			return nil, err
		}
	}

	disk, err := diskimage.NewGUID()
	if err != nil {
		return nil, err
	}
	boot := filepath.Join(work, "boot")
	if err := stageBoot(s, m, disk, template, boot); err != nil {
		return nil, err
	}

	img := filepath.Join(work, "image")
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("imagebuild: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(diskimage.ImageSectors * diskimage.SectorSize); err != nil {
		return nil, fmt.Errorf("imagebuild: size image: %w", err)
	}
	bootID, err := diskimage.NewGUID()
	if err != nil {
		return nil, err
	}
	stateID, err := diskimage.NewGUID()
	if err != nil {
		return nil, err
	}
	tab, err := diskimage.MediumTable(disk, bootID, stateID, diskimage.ImageSectors)
	if err != nil {
		return nil, err
	}
	primary, backup, err := tab.Encode(diskimage.ImageSectors)
	if err != nil {
		return nil, err
	}
	writes := []struct {
		what string
		off  int64
		data []byte
	}{
		{"GPT", 0, primary},
		{"backup GPT", (diskimage.ImageSectors - 33) * diskimage.SectorSize, backup},
		{"bootloader", diskimage.BootChainSector * diskimage.SectorSize, s.Bootloader},
	}
	for _, w := range writes {
		if _, err := f.WriteAt(w.data, w.off); err != nil {
			return nil, fmt.Errorf("imagebuild: write %s: %w", w.what, err)
		}
	}
	if err := copyInto(f, state, int64(tab.Partitions[1].First)*diskimage.SectorSize); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("imagebuild: %w", err)
	}
	if err := makeBootFS(ctx, img, boot); err != nil {
		return nil, err
	}

	sum, err := fileSHA256(img)
	if err != nil {
		return nil, err
	}
	if err := os.Rename(img, s.Out); err != nil {
		return nil, fmt.Errorf("imagebuild: %w", err)
	}
	line := fmt.Sprintf("%s  %s\n", sum, filepath.Base(s.Out))
	if err := atomicfile.Write(s.Out+".sha256", []byte(line), 0o644); err != nil {
		return nil, fmt.Errorf("imagebuild: %w", err)
	}
	return m, nil
}

func bootloaderWhere(p board.Profile) string {
	switch p.Bootloader.Lives {
	case board.BootSPI:
		return "none: the board boots from its SPI flash"
	case board.BootQEMU:
		return "none: QEMU's -bios"
	default:
		return "none: the bootloader already on the medium is kept"
	}
}

// mkfsState makes the ext4 state file system in file: 4 KiB blocks (small
// file systems would get 1 KiB blocks, which cannot grow as far), room
// reserved to grow online to MaxGrow, no blocks reserved for root.
func mkfsState(ctx context.Context, file, content string) error {
	args := []string{"-q", "-F", "-L", diskimage.StateLabel, "-b", "4096", "-m", "0", "-T", "default",
		"-E", fmt.Sprintf("resize=%d", MaxGrow/4096)}
	if content != "" {
		args = append(args, "-d", content)
	}
	args = append(args, file, fmt.Sprintf("%dk", diskimage.StateSectors*diskimage.SectorSize/1024))
	if out, err := exec.CommandContext(ctx, "mkfs.ext4", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("imagebuild: mkfs.ext4: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// MaxGrow is the largest size the state file system is prepared to grow to
// online: the flasher's largest target.
const MaxGrow = 512 << 30

// stageBoot lays out the boot partition's files in dir.
func stageBoot(s BuildSpec, m *diskimage.Manifest, disk diskimage.GUID, template, dir string) error {
	put := func(rel string, data []byte) error {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("imagebuild: %w", err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return fmt.Errorf("imagebuild: %w", err)
		}
		return nil
	}
	copyFile := func(rel, src string) error {
		b, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("imagebuild: %w", err)
		}
		return put(rel, b)
	}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("imagebuild: %w", err)
	}
	tmpl, err := gzipFile(template)
	if err != nil {
		return err
	}
	console := s.Profile.KernelConsole()
	files := []struct {
		rel  string
		data []byte
	}{
		{diskimage.ExtlinuxFile, []byte(diskimage.ExtlinuxConfig(m, console, disk))},
		{diskimage.ManifestFile, append(manifest, '\n')},
		{diskimage.ReadmeFile, []byte(readme(m))},
		{provision.PasswordFile, provision.Placeholder(provision.PasswordFileSize)},
		{provision.HostnameFile, provision.Placeholder(provision.HostnameFileSize)},
		{diskimage.StateTemplateFile, tmpl},
	}
	for _, f := range files {
		if err := put(f.rel, f.data); err != nil {
			return err
		}
	}
	if err := copyFile(diskimage.KernelFile, s.Kernel); err != nil {
		return err
	}
	if err := copyFile(diskimage.InitramfsFile, s.Initramfs); err != nil {
		return err
	}
	if s.DTB != "" {
		if err := copyFile(diskimage.DTBDir+"/"+s.Profile.DTB, s.DTB); err != nil {
			return err
		}
	}
	return nil
}

// makeBootFS makes the FAT32 boot partition inside img with mkfs.vfat and
// fills it with mtools, without mounting anything.
func makeBootFS(ctx context.Context, img, dir string) error {
	off := int64(diskimage.BootStart) * diskimage.SectorSize
	target := fmt.Sprintf("%s@@%d", img, off)
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "MTOOLS_NO_VFAT=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("imagebuild: %s: %w: %s", name, err, bytes.TrimSpace(out))
		}
		return nil
	}
	// -F 32 -s 2: FAT32 with 1 KiB clusters (FAT32 needs 65525 of them; U-Boot and every PC read it);
	// the volume ID is random, the label names the partition.
	if err := run("mkfs.vfat", "-F", "32", "-s", "2", "-S", "512", "-n", diskimage.BootLabel,
		fmt.Sprintf("--offset=%d", diskimage.BootStart), img, fmt.Sprint(diskimage.BootSectors*diskimage.SectorSize/1024)); err != nil {
		return err
	}
	var dirs, files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			dirs = append(dirs, "::/"+filepath.ToSlash(rel))
		} else {
			files = append(files, p, "::/"+filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("imagebuild: %w", err)
	}
	if err := run("mmd", append([]string{"-i", target}, dirs...)...); err != nil {
		return err
	}
	for i := 0; i < len(files); i += 2 {
		if err := run("mcopy", "-i", target, "-o", files[i], files[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func copyInto(dst *os.File, src string, off int64) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("imagebuild: %w", err)
	}
	defer in.Close()
	if _, err := io.Copy(io.NewOffsetWriter(dst, off), in); err != nil {
		return fmt.Errorf("imagebuild: copy %s into the image: %w", src, err)
	}
	return nil
}

func gzipFile(p string) ([]byte, error) {
	in, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("imagebuild: %w", err)
	}
	defer in.Close()
	var b bytes.Buffer
	z, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if _, err := io.Copy(z, in); err != nil {
		return nil, fmt.Errorf("imagebuild: gzip %s: %w", p, err)
	}
	if err := z.Close(); err != nil {
		return nil, fmt.Errorf("imagebuild: gzip %s: %w", p, err)
	}
	return b.Bytes(), nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("imagebuild: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("imagebuild: hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func readme(m *diskimage.Manifest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rknas firmware %s for %s (%s)\n\n", m.Version, m.Model, m.Board)
	b.WriteString(`This partition (RKNAS-BOOT) is what the board's U-Boot starts the firmware
from: extlinux/extlinux.conf, the kernel, the device tree and the initramfs.
The next partition (RKNAS-STATE) holds the accounts and settings.

rknas/default-password  this device's own default admin password, written
                        when the card was flashed ("#unprovisioned" if the
                        image was copied without the flasher: the firmware
                        then makes one up at first start and shows it on the
                        serial console). A RESET puts the admin back to it.
rknas/hostname          the device's name on the network.
rknas/image.json        what this image is: board, version, kernel, bootloader.

Keep the label the flasher printed: it has the same password.
`)
	return b.String()
}
