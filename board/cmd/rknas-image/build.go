package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rknas/firmware/board"
	"github.com/rknas/firmware/board/diskimage"
	"github.com/rknas/firmware/board/imagebuild"
	"github.com/rknas/firmware/board/modules"
)

// kernelDir is scripts/kernel.sh's output.
type kernelDir struct {
	dir, abi string
}

func openKernelDir(dir string) (kernelDir, error) {
	b, err := os.ReadFile(filepath.Join(dir, "abi"))
	if err != nil {
		return kernelDir{}, fmt.Errorf("--kernel %s is not a kernel directory from scripts/kernel.sh: %w", dir, err)
	}
	return kernelDir{dir: dir, abi: strings.TrimSpace(string(b))}, nil
}

func (k kernelDir) image() string   { return filepath.Join(k.dir, "Image") }
func (k kernelDir) modules() string { return filepath.Join(k.dir, "root", "lib", "modules", k.abi) }
func (k kernelDir) dtb(rel string) string {
	return filepath.Join(k.dir, "dtbs", filepath.FromSlash(rel))
}

// deviceTree returns the board's device tree for the image (path, empty for
// QEMU) and the tree the module list is resolved from.
func deviceTree(ctx context.Context, p board.Profile, k kernelDir) (string, []byte, error) {
	if p.Name == "qemu-virt" {
		dtb, err := qemuDeviceTree(ctx)
		return "", dtb, err
	}
	if p.DTB == "" {
		return "", nil, fmt.Errorf("board %s has no device tree: no image can be built for it", p.Name)
	}
	path := k.dtb(p.DTB)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && p.DTBSince != "" {
		return "", nil, fmt.Errorf("board %s: %w: the kernel %s has no %s; its device tree came with Linux %s, "+
			"so no image for it until the firmware's kernel is that new", p.Name, errNoDeviceTree, k.abi, p.DTB, p.DTBSince)
	}
	if err != nil {
		return "", nil, fmt.Errorf("board %s: %w", p.Name, err)
	}
	return path, b, nil
}

// qemuDeviceTree asks QEMU for the device tree it gives the virt machine
// (the same flags as scripts/vm), so the VM's modules come from its tree too.
func qemuDeviceTree(ctx context.Context) ([]byte, error) {
	dir, err := os.MkdirTemp("", "rknas-dtb-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "virt.dtb")
	cmd := exec.CommandContext(ctx, "qemu-system-aarch64", "-M", "virt,dumpdtb="+out, "-cpu", "cortex-a57",
		"-m", "1024", "-display", "none", "-nodefaults")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("qemu-virt: dump QEMU's device tree (install qemu-system-arm: scripts/deps.sh): %w: %s",
			err, bytes.TrimSpace(b))
	}
	return os.ReadFile(out)
}

// planModules resolves the board's modules against the kernel.
func planModules(ctx context.Context, p board.Profile, k kernelDir) (*modules.Kernel, *modules.Plan, string, error) {
	kern, err := modules.OpenKernel(k.modules())
	if err != nil {
		return nil, nil, "", err
	}
	if gs := filepath.Join(k.dir, "gpio-sim.ko"); fileExists(gs) {
		kern.AddModule("extra/gpio-sim.ko", gs, []string{"configfs"})
	}
	dtbPath, dtb, err := deviceTree(ctx, p, k)
	if err != nil {
		return nil, nil, "", err
	}
	plan, err := kern.Resolve(dtb, append(append([]string{}, board.FirmwareModules...), p.Modules...), p.NoModules)
	if err != nil {
		return nil, nil, "", fmt.Errorf("board %s: %w", p.Name, err)
	}
	return kern, plan, dtbPath, nil
}

func runModules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("modules", stderr)
	name := fs.String("board", "", "board profile")
	kdir := fs.String("kernel", "", "kernel directory from scripts/kernel.sh")
	if err := parse(fs, args, "board", "kernel"); err != nil {
		return err
	}
	p, err := board.ByName(*name)
	if err != nil {
		return usageError{err}
	}
	k, err := openKernelDir(*kdir)
	if err != nil {
		return err
	}
	_, plan, _, err := planModules(ctx, p, k)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	for _, m := range plan.Load {
		fmt.Fprintf(w, "%s\t%s\n", m, strings.Join(plan.Why[m], " "))
	}
	w.Flush()
	fmt.Fprintf(stdout, "%d modules to load, %d with dependencies; built in: %s\n", len(plan.Load), len(plan.All),
		strings.Join(plan.Builtin, " "))
	return nil
}

func runBoards(stdout io.Writer) error {
	w := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "BOARD\tSOC\tKERNELS\tDTB\tBOOTLOADER")
	for _, p := range board.All() {
		if p.Name == "none" {
			continue
		}
		dtb := p.DTB
		if p.DTBSince != "" {
			dtb += " (Linux " + p.DTBSince + ")"
		}
		bl := p.Bootloader.Lives
		if p.Bootloader.Debian != "" {
			bl += ", Debian " + p.Bootloader.Debian
		}
		kernels := p.Kernels
		if kernels == "" {
			kernels = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.SoC, kernels, dtb, bl)
	}
	return w.Flush()
}

func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("build", stderr)
	name := fs.String("board", "", "board profile")
	kdir := fs.String("kernel", "", "kernel directory from scripts/kernel.sh")
	base := fs.String("base", "", "the firmware's base initramfs (cpio.zst, from scripts/build-image.sh)")
	out := fs.String("out", "", "the image file to write (IMAGE.sha256 is written beside it)")
	bootloader := fs.String("bootloader", "", "a u-boot-rockchip.bin to put at sector 64 (BOOTLOADER=)")
	ubootDeb := fs.String("uboot-deb", "", "Debian's u-boot-rockchip .deb, used when the board has a Debian target")
	ver := fs.String("version", version, "firmware version")
	stateDir := fs.String("state-dir", "", "files to put on the state partition (tests)")
	initramfsOut := fs.String("initramfs-out", "", "also keep the board's initramfs here")
	if err := parse(fs, args, "board", "kernel", "base", "out"); err != nil {
		return err
	}
	p, err := board.ByName(*name)
	if err != nil {
		return usageError{err}
	}
	if p.Name == "none" {
		return usageError{errors.New("board none has no image: give a board profile (rknas-image boards)")}
	}
	k, err := openKernelDir(*kdir)
	if err != nil {
		return err
	}
	start := time.Now()
	kern, plan, dtbPath, err := planModules(ctx, p, k)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	initramfs := *initramfsOut
	if initramfs == "" {
		tmp, err := os.CreateTemp(filepath.Dir(*out), ".initramfs-")
		if err != nil {
			return err
		}
		tmp.Close()
		initramfs = tmp.Name()
		defer os.Remove(initramfs)
	}
	modBytes, err := boardInitramfs(ctx, kern, plan, *base, initramfs)
	if err != nil {
		return err
	}

	spec := imagebuild.BuildSpec{Profile: p, Kernel: k.image(), KernelRelease: k.abi, DTB: dtbPath,
		Initramfs: initramfs, Version: *ver, StateDir: *stateDir, Out: *out}
	switch {
	case *bootloader != "":
		if spec.Bootloader, err = os.ReadFile(*bootloader); err != nil {
			return fmt.Errorf("--bootloader: %w", err)
		}
		spec.BootloaderSource = "file " + filepath.Base(*bootloader)
	case p.Bootloader.Debian != "":
		if *ubootDeb == "" {
			return usageError{fmt.Errorf("board %s takes Debian's U-Boot (%s): give --uboot-deb", p.Name, p.Bootloader.Debian)}
		}
		if spec.Bootloader, spec.BootloaderSource, err = debianUBoot(ctx, *ubootDeb, p.Bootloader.Debian); err != nil {
			return err
		}
	}
	m, err := imagebuild.Build(ctx, spec)
	if err != nil {
		return err
	}
	sum, _ := os.ReadFile(*out + ".sha256")
	ird, _ := os.Stat(initramfs)
	fmt.Fprintf(stdout, "image:       %s (%d MiB, built in %.1f s)\n", *out, diskimage.ImageSectors*diskimage.SectorSize>>20,
		time.Since(start).Seconds())
	fmt.Fprintf(stdout, "sha256:      %s", sum)
	fmt.Fprintf(stdout, "board:       %s (%s), kernel %s, dtb %s\n", p.Name, p.Model, k.abi, orNone(m.DTB))
	fmt.Fprintf(stdout, "initramfs:   %d bytes zstd, %d kernel modules (%d KiB)\n", ird.Size(), len(plan.All), modBytes/1024)
	fmt.Fprintf(stdout, "bootloader:  %s\n", m.Bootloader.Source)
	if !m.Bootloader.Included && p.Bootloader.Lives == board.BootMedium {
		fmt.Fprintf(stdout, "note:        %s boots from the first 16 MiB of its eMMC or TF card and this image carries no\n"+
			"             bootloader: the flasher keeps the one already on the medium. For a blank medium build with\n"+
			"             BOOTLOADER=u-boot-rockchip.bin (mainline %s).\n", p.Model, orNone(p.Bootloader.Mainline))
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// debianUBoot takes u-boot-rockchip.bin for target out of Debian's package.
func debianUBoot(ctx context.Context, deb, target string) ([]byte, string, error) {
	member := "./usr/lib/u-boot/" + target + "/u-boot-rockchip.bin"
	tar := exec.CommandContext(ctx, "sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -xO "$2"`, "sh", deb, member)
	b, err := tar.Output()
	if err != nil || len(b) == 0 {
		return nil, "", fmt.Errorf("take %s out of %s: %v", member, deb, err)
	}
	ver, _ := exec.CommandContext(ctx, "dpkg-deb", "-f", deb, "Version").Output()
	return b, fmt.Sprintf("debian u-boot-rockchip %s %s", strings.TrimSpace(string(ver)), target), nil
}

// boardInitramfs writes the board's initramfs: the base image, then a second
// zstd-compressed cpio archive with the kernel modules (the kernel unpacks
// both, in order). It returns the modules' uncompressed size.
func boardInitramfs(ctx context.Context, kern *modules.Kernel, plan *modules.Plan, base, out string) (int64, error) {
	stage, err := os.MkdirTemp("", "rknas-modules-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(stage)
	n, err := kern.Stage(plan, stage)
	if err != nil {
		return 0, err
	}
	var list []string
	err = filepath.WalkDir(stage, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == stage {
			return err
		}
		rel, _ := filepath.Rel(stage, p)
		list = append(list, rel)
		return nil
	})
	if err != nil {
		return 0, err
	}
	sort.Strings(list)
	var overlay bytes.Buffer
	cpio := exec.CommandContext(ctx, "sh", "-c", "cpio --quiet -o -H newc -R 0:0 --reproducible | zstd -q -19 -T2")
	cpio.Dir = stage
	cpio.Stdin = strings.NewReader(strings.Join(list, "\n") + "\n")
	cpio.Stdout = &overlay
	var errb bytes.Buffer
	cpio.Stderr = &errb
	if err := cpio.Run(); err != nil {
		return 0, fmt.Errorf("pack the modules (cpio, zstd): %w: %s", err, bytes.TrimSpace(errb.Bytes()))
	}
	b, err := os.ReadFile(base)
	if err != nil {
		return 0, fmt.Errorf("--base: %w", err)
	}
	if err := os.WriteFile(out, append(b, overlay.Bytes()...), 0o644); err != nil {
		return 0, err
	}
	return n, nil
}
