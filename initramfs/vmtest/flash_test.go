//go:build vmtest

package vmtest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVMFlash runs the flasher inside the VM against real block devices
// (board/flash's hardware tests): the VM's own disk, a mounted disk, a disk
// too small, a fixed disk, all refused and unchanged; a removable USB disk
// written, verified, and cut half way. Then the written USB disk boots as
// the VM's only disk, with the password and hostname it was given.
func TestVMFlash(t *testing.T) {
	t.Parallel() // two VMs at a time: one per core, each with one vCPU
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	root := moduleRoot(t)
	dir := t.TempDir()

	// The test binary, the flasher and the image on the state partition.
	td := filepath.Join(dir, "state", "hwtest", "board_flash")
	if err := os.MkdirAll(td, 0o755); err != nil {
		t.Fatal(err)
	}
	build := func(args ...string) {
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOARCH=arm64", "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
	build("test", "-tags", "hwtest", "-c", "-o", filepath.Join(td, "board_flash.test"), "./board/flash")
	build("build", "-trimpath", "-o", filepath.Join(td, "rknas-flash"), "./board/cmd/rknas-flash")
	if err := os.WriteFile(filepath.Join(td, "board_flash.test.run"), []byte("^TestHW\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := image(t)
	for _, f := range []string{img, img + ".sha256"} {
		if b, err := exec.Command("cp", "--sparse=always", f, td).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v\n%s", f, err, b)
		}
	}
	disk, _ := vmDisk(t, filepath.Join(dir, "state"))

	// The disks: a fixed virtio disk, removable USB disks of 2 GiB (the
	// target), 128 MiB (too small) and 300 MiB holding an ext4 file system
	// (mounted by the test).
	mk := func(name string, size string) string {
		p := filepath.Join(dir, name)
		if b, err := exec.Command("truncate", "-s", size, p).CombinedOutput(); err != nil {
			t.Fatalf("truncate: %v\n%s", err, b)
		}
		return p
	}
	fixed, target, small, mountable := mk("fixed.img", "512M"), mk("usb-target.img", "2G"), mk("usb-small.img", "128M"), mk("usb-ext4.img", "300M")
	if b, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "SOMEDATA", mountable).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, b)
	}

	// The flasher's tests run before authd starts and take over a minute
	// and a half under emulation, longer than the watchdog's default grace
	// for a silent authd: the board would reset under them.
	v := newVM(t, "flash1", disk, "rknas.hwtest rknas.watchdog-grace=600")
	v.env = append(v.env, "RKNAS_VM_VIRTIO="+fixed, "RKNAS_VM_USB="+strings.Join([]string{target, small, mountable}, ","))
	v.script("start")
	v.t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(v.run, "qemu.pid")); err == nil {
			v.script("stop")
		}
	})
	done := v.waitFrom(ctx, "RKNAS-TEST DONE")
	b, _ := os.ReadFile(v.console.Path)
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "RKNAS-TEST FAIL"):
			t.Error(strings.TrimSpace(l))
		case strings.Contains(l, "refused: "), strings.Contains(l, "cut write:"), strings.HasPrefix(strings.TrimSpace(l), "--- "):
			fmt.Printf("vmtest: flash: %s\n", strings.TrimSpace(l))
		}
	}
	fmt.Printf("vmtest: %s (output in %s)\n", strings.TrimSpace(done), v.console.Path)
	v.wait(ctx, "authd ready")
	v.script("stop")
	if t.Failed() {
		return
	}

	// The USB disk the flasher wrote, booted as the only disk, as the card
	// would boot on a board.
	emmc := filepath.Join(dir, "emmc.img")
	w := newVM(t, "flash2", target, "")
	w.env = append(w.env, "RKNAS_VM_EMMC="+emmc)
	took := w.boot(ctx)
	fmt.Printf("vmtest: the flashed USB disk boots to 'authd ready' in %.1f s\n", took.Seconds())
	w.waitFrom(ctx, "msg=hostname name=rknas-flashed")
	w.waitFrom(ctx, "state file system grown")
	st, out := tryLogin(t, w.port, "admin", "vm-flash-test-password")
	if st != http.StatusOK || out["status"] != "password_change_required" {
		t.Errorf("login with the password given to the flasher: %d %v", st, out)
	}
	w.script("stop")
}
