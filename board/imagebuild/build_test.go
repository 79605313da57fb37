package imagebuild

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rknas/firmware/board"
	"github.com/rknas/firmware/board/diskimage"
)

func spec(t *testing.T, boardName string) BuildSpec {
	t.Helper()
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "Image"), filepath.Join(dir, "initramfs")
	os.WriteFile(kernel, []byte("kernel"), 0o644)
	os.WriteFile(initrd, []byte("initramfs"), 0o644)
	p, err := board.ByName(boardName)
	if err != nil {
		t.Fatal(err)
	}
	return BuildSpec{Profile: p, Kernel: kernel, KernelRelease: "6.12.0-test", Initramfs: initrd, Version: "test",
		Out: filepath.Join(dir, "out.img")}
}

// TestBuildRefuses checks the builder says what is wrong and writes no
// image for a bootloader too large for the boot chain area, a board whose
// device tree the kernel does not have, or a kernel whose trees the profile
// was not checked against.
func TestBuildRefuses(t *testing.T) {
	big := spec(t, "qnap-ts433")
	big.DTB = big.Kernel
	big.Bootloader = make([]byte, (diskimage.BootChainEnd-diskimage.BootChainSector)*diskimage.SectorSize+1)
	ts233 := spec(t, "qnap-ts233")
	r5s := spec(t, "nanopi-r5s")
	r5s.DTB, r5s.KernelRelease = r5s.Kernel, "7.3.4+deb13-arm64"
	for name, tt := range map[string]struct {
		s    BuildSpec
		want string
	}{
		"a bootloader past 16 MiB":      {big, "must fit between sector 64 and 32768"},
		"a board newer than the kernel": {ts233, "came with Linux 6.19"},
		"a kernel outside the profile":  {r5s, "hold for Linux 6.12 and the kernel is 7.3.4+deb13-arm64"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Build(context.Background(), tt.s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Build: %v, want %q", err, tt.want)
			}
			if _, err := os.Stat(tt.s.Out); err == nil {
				t.Error("an image was written anyway")
			}
		})
	}
}

// TestBuildManifest builds an image with a bootloader and checks what the
// manifest records and that the .sha256 names the image.
func TestBuildManifest(t *testing.T) {
	s := spec(t, "pine64-rockpro64")
	s.DTB = s.Kernel
	s.Bootloader = []byte("U-Boot SPL")
	s.BootloaderSource = "file u-boot-rockchip.bin"
	m, err := Build(context.Background(), s)
	if err != nil {
		t.Fatalf("Build (dosfstools, mtools, e2fsprogs: scripts/deps.sh): %v", err)
	}
	if !m.Bootloader.Included || m.Bootloader.Size != 10 || m.DTB != "rockchip/rk3399-rockpro64.dtb" || m.SoC != "rk3399" {
		t.Errorf("manifest %+v", m)
	}
	sum, err := os.ReadFile(s.Out + ".sha256")
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(sum)), "  out.img") {
		t.Errorf(".sha256 = %q, %v", sum, err)
	}
	b, _ := os.ReadFile(s.Out)
	if int64(len(b)) != diskimage.ImageSectors*diskimage.SectorSize || string(b[diskimage.BootChainSector*512:][:10]) != "U-Boot SPL" {
		t.Errorf("image of %d bytes; bootloader at sector 64: %q", len(b), b[diskimage.BootChainSector*512:][:10])
	}
}
