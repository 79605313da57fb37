package rkdev

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rknas/firmware/board"
	"github.com/rknas/firmware/board/diskimage"
	"github.com/rknas/firmware/board/flash"
	"github.com/rknas/firmware/board/imagebuild"
)

func TestParseList(t *testing.T) {
	out := "DevNo=1\tVid=0x2207,Pid=0x350a,LocationID=106\tMaskrom\r\nDevNo=2\tVid=0x2207,Pid=0x350b,LocationID=203\tLoader\r\n"
	got, err := ParseList(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []USBDevice{{1, 0x2207, 0x350a, "106", "Maskrom"}, {2, 0x2207, 0x350b, "203", "Loader"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseList = %+v, want %+v", got, want)
	}
	if got, _ := ParseList("not found any devices!\r\n"); len(got) != 0 {
		t.Errorf("no devices: %+v", got)
	}
}

// loader returns a loader file header for chip (as rkbin's boot_merger
// writes it: "BOOT", then the chip at byte 21, last character first).
func loader(chip string) []byte {
	b := make([]byte, 64)
	copy(b, "BOOT")
	binary.LittleEndian.PutUint32(b[21:], uint32(chip[0])<<24|uint32(chip[1])<<16|uint32(chip[2])<<8|uint32(chip[3]))
	return b
}

func TestLoaderChip(t *testing.T) {
	for _, chip := range []string{"330C", "3568", "3588"} {
		if got, err := LoaderChip(loader(chip)); err != nil || got != chip {
			t.Errorf("LoaderChip(%s) = %q, %v", chip, got, err)
		}
	}
	for _, bad := range [][]byte{nil, []byte("BOOT"), append([]byte("ELF!"), make([]byte, 60)...), append([]byte("BOOT"), make([]byte, 60)...)} {
		if _, err := LoaderChip(bad); err == nil {
			t.Errorf("LoaderChip accepted %q", bad)
		}
	}
}

func FuzzLoaderChip(f *testing.F) {
	f.Add(loader("3568"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if chip, err := LoaderChip(b); err == nil && len(chip) != 4 {
			t.Fatalf("chip %q", chip)
		}
	})
}

// fakeTool is a stand-in for rkdeveloptool: one board on USB whose eMMC is
// a file, in the output formats of rkdeveloptool 1.32 (main.cpp).
const fakeTool = `#!/bin/bash
set -e
echo "$*" >>"$FAKE_LOG"
case $1 in
ld) if [[ -z $FAKE_PID ]]; then echo "not found any devices!"; exit 0; fi
    printf 'DevNo=1\tVid=0x2207,Pid=0x%s,LocationID=106\t%s\r\n' "$FAKE_PID" "$FAKE_MODE" ;;
db) echo "Downloading bootloader succeeded." ;;
rfi) printf 'Flash Info:\n\tManufacturer: SAMSUNG, value=00\n\tFlash Size: %d MB\n\tFlash Size: %d Sectors\n' \
      $(( $(stat -c %s "$FAKE_EMMC") / 1048576 )) $(( $(stat -c %s "$FAKE_EMMC") / 512 )) ;;
wl) dd if="$3" of="$FAKE_EMMC" bs=512 seek="$2" conv=notrunc status=none; echo "Write LBA from file (100%)" ;;
rl) dd if="$FAKE_EMMC" of="$4" bs=512 skip="$2" count="$3" status=none; echo "Read LBA to file (100%)" ;;
rd) echo "Reset Device OK." ;;
*) echo "unknown"; exit 1 ;;
esac
`

type rig struct {
	tool, emmc, log, loader string
}

func newRig(t *testing.T, pid, mode, chip string) *rig {
	dir := t.TempDir()
	r := &rig{tool: filepath.Join(dir, "rkdeveloptool"), emmc: filepath.Join(dir, "emmc"), log: filepath.Join(dir, "log"),
		loader: filepath.Join(dir, "loader.bin")}
	os.WriteFile(r.tool, []byte(fakeTool), 0o755)
	os.WriteFile(r.loader, loader(chip), 0o644)
	f, _ := os.Create(r.emmc)
	f.Truncate(1 << 30)
	f.Close()
	t.Setenv("FAKE_PID", pid)
	t.Setenv("FAKE_MODE", mode)
	t.Setenv("FAKE_EMMC", r.emmc)
	t.Setenv("FAKE_LOG", r.log)
	return r
}

func testImage(t *testing.T, boardName string) *flash.Image {
	t.Helper()
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "Image"), filepath.Join(dir, "initramfs")
	os.WriteFile(kernel, []byte("kernel"), 0o644)
	os.WriteFile(initrd, []byte("initramfs"), 0o644)
	p, err := board.ByName(boardName)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "x.img")
	if _, err := imagebuild.Build(context.Background(), imagebuild.BuildSpec{Profile: p, Kernel: kernel, KernelRelease: "6.12.0-test",
		Initramfs: initrd, DTB: kernel, Version: "test", Out: out}); err != nil {
		t.Fatalf("build (dosfstools, mtools, e2fsprogs: scripts/deps.sh): %v", err)
	}
	img, err := flash.OpenImage(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

func TestWriteEMMC(t *testing.T) {
	img := testImage(t, "qnap-ts433")
	p, err := flash.NewPersonal("emmc password", "rknas-emmc")
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, "350a", "Maskrom", "3568")
	// The vendor's U-Boot on the eMMC, which this image (no bootloader)
	// must leave alone.
	vendor := bytes.Repeat([]byte("vendor u-boot "), 1000)
	f, _ := os.OpenFile(r.emmc, os.O_RDWR, 0)
	f.WriteAt(vendor, diskimage.BootChainSector*diskimage.SectorSize)
	f.Close()

	res, err := RKDev{Path: r.tool}.WriteEMMC(context.Background(), img, p, r.loader)
	if err != nil {
		t.Fatal(err)
	}
	if res.Table.DiskID != p.Disk {
		t.Errorf("table %s, want %s", res.Table.DiskID, p.Disk)
	}
	log, _ := os.ReadFile(r.log)
	cmds := strings.Fields(strings.ReplaceAll(string(log), "\n", " | "))
	got := strings.Join(cmds, " ")
	for _, want := range []string{"ld", "db " + r.loader, "rfi", "wl 0 ", "rl 0 34 ", "rd"} {
		if !strings.Contains(got, want) {
			t.Errorf("rkdeveloptool was not run with %q: %s", want, log)
		}
	}
	if i, j := strings.LastIndex(got, "wl 0 "), strings.Index(got, "wl 32768 "); i < j {
		t.Errorf("the partition table was not written last:\n%s", log)
	}
	if !strings.HasSuffix(strings.TrimSpace(string(log)), "rd") {
		t.Errorf("the board was not reset at the end:\n%s", log)
	}
	e, _ := os.Open(r.emmc)
	defer e.Close()
	m, err := flash.ReadImage(e, 1<<30)
	if err != nil {
		t.Fatalf("the eMMC does not hold the image: %v", err)
	}
	if m.Table.DiskID != p.Disk || m.Manifest.Board != "qnap-ts433" {
		t.Errorf("eMMC holds disk %s of %s", m.Table.DiskID, m.Manifest.Board)
	}
	got2 := make([]byte, len(vendor))
	e.ReadAt(got2, diskimage.BootChainSector*diskimage.SectorSize)
	if !bytes.Equal(got2, vendor) {
		t.Error("the vendor's bootloader on the eMMC was overwritten by an image that carries none")
	}
}

func TestWriteEMMCRefusals(t *testing.T) {
	img := testImage(t, "qnap-ts433")
	p, _ := flash.NewPersonal("emmc password", "rknas-emmc")
	for _, tt := range []struct {
		name, pid, mode, chip string
		want                  error
		text                  string
	}{
		{"no board", "", "", "3568", ErrNoBoard, "Maskrom mode"},
		{"an RK3588 board for an RK3568 image", "350b", "Maskrom", "3568", ErrWrongSoC, "0x350b (rk3588/rk3588s)"},
		{"an RK3399 loader", "350a", "Maskrom", "330C", ErrWrongSoC, "chip 330C"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.pid, tt.mode, tt.chip)
			_, err := RKDev{Path: r.tool}.WriteEMMC(context.Background(), img, p, r.loader)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("err = %v, want %v saying %q", err, tt.want, tt.text)
			}
			if log, _ := os.ReadFile(r.log); strings.Contains(string(log), "wl") || strings.Contains(string(log), "db") {
				t.Errorf("something was written or downloaded:\n%s", log)
			}
		})
	}
	t.Run("rkdeveloptool missing", func(t *testing.T) {
		_, err := RKDev{Path: filepath.Join(t.TempDir(), "no-such-tool")}.WriteEMMC(context.Background(), img, p, "x")
		if err == nil || !strings.Contains(err.Error(), "apt-get install rkdeveloptool") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("an eMMC smaller than the image", func(t *testing.T) {
		r := newRig(t, "350a", "Loader", "3568")
		os.Truncate(r.emmc, 100<<20)
		_, err := RKDev{Path: r.tool}.WriteEMMC(context.Background(), img, p, r.loader)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
	})
}

// TestRealRkdeveloptool runs Debian's rkdeveloptool, which this machine has
// but no board is connected to: the flasher must say so, not fail oddly.
// This is as far as a real rkdeveloptool can be exercised without a board.
func TestRealRkdeveloptool(t *testing.T) {
	if _, err := exec.LookPath("rkdeveloptool"); err != nil {
		t.Fatal("rkdeveloptool not installed: scripts/deps.sh installs it")
	}
	img := testImage(t, "qnap-ts433")
	p, _ := flash.NewPersonal("emmc password", "rknas-emmc")
	_, err := RKDev{}.WriteEMMC(context.Background(), img, p, "unused.bin")
	if !errors.Is(err, ErrNoBoard) {
		t.Fatalf("with no board on USB: %v, want ErrNoBoard", err)
	}
	t.Logf("real rkdeveloptool, no board: %v", err)
}
