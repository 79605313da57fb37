//go:build hwtest

package flash_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/board/diskimage"
	"github.com/rknas/firmware/board/flash"
	"github.com/rknas/firmware/board/provision"
	"golang.org/x/sys/unix"
)

// These tests run inside the arm64 VM (initramfs/vmtest TestVMFlash), on
// real block devices through the kernel: the VM's own disk (vda, holding
// the mounted state), a fixed virtio disk, and removable USB disks
// (usb-storage,removable=on) of three sizes. Next to the test binary lie
// the qemu-virt image (with its .sha256) and the rknas-flash binary.

// The devices the VM rig gives this test, found by kind and size.
type vmDisks struct {
	system, fixed, target, small, mountable string
}

func findDisks(t *testing.T) vmDisks {
	t.Helper()
	// USB disks come up asynchronously, after their driver loaded (in the
	// background at boot) and the bus was scanned: wait for them.
	deadline := time.Now().Add(60 * time.Second)
	for {
		d, err := scanDisks(t)
		if err != nil {
			t.Fatal(err)
		}
		if d.system != "" && d.fixed != "" && d.target != "" && d.small != "" && d.mountable != "" {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("the VM does not have the disks this test needs after 60 s: %+v (TestVMFlash attaches them)", d)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func scanDisks(t *testing.T) (vmDisks, error) {
	var d vmDisks
	ents, err := os.ReadDir("/sys/block")
	if err != nil {
		return d, err
	}
	for _, e := range ents {
		n := e.Name()
		size := sysInt(t, n, "size") * 512
		removable := sysInt(t, n, "removable") == 1
		switch {
		case n == "vda":
			d.system = "/dev/vda"
		case strings.HasPrefix(n, "vd") && !removable:
			d.fixed = "/dev/" + n
		case strings.HasPrefix(n, "sd") && size == 0:
			// Its capacity is not read yet.
		case strings.HasPrefix(n, "sd") && removable && size >= 1<<30:
			d.target = "/dev/" + n
		case strings.HasPrefix(n, "sd") && removable && size < 200<<20:
			d.small = "/dev/" + n
		case strings.HasPrefix(n, "sd") && removable:
			d.mountable = "/dev/" + n
		}
	}
	return d, nil
}

func sysInt(t *testing.T, dev, attr string) int64 {
	b, err := os.ReadFile(filepath.Join("/sys/block", dev, attr))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

func requireVM(t *testing.T) {
	if os.Getenv("RKNAS_REQUIRE_HW") != "1" {
		t.Fatal("this test runs inside the VM (make test-vm), where RKNAS_REQUIRE_HW=1")
	}
	if _, err := os.Stat("rknas-flash"); err != nil {
		t.Fatalf("no rknas-flash beside the test binary: %v", err)
	}
}

// fingerprint hashes the places a flasher writes first: the first 20 MiB
// (partition table, boot chain area, start of the boot partition) and the
// last MiB (backup partition table).
func fingerprint(t *testing.T, dev string) string {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, r := range [][2]int64{{0, min(20<<20, size)}, {max(size-1<<20, 0), size}} {
		b := make([]byte, r[1]-r[0])
		if _, err := f.ReadAt(b, r[0]); err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// flashCLI runs the rknas-flash binary and returns its exit code and output.
func flashCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("./rknas-flash", args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("rknas-flash: %v", err)
	return -1, ""
}

// TestHWFlashRefusals gives the flasher every unsafe target the VM has and
// checks it refuses each with the reason, and that none changes.
func TestHWFlashRefusals(t *testing.T) {
	requireVM(t)
	d := findDisks(t)
	if err := os.MkdirAll("/mnt/hw", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(d.mountable, "/mnt/hw", "ext4", 0, ""); err != nil {
		t.Fatalf("mount %s (TestVMFlash makes it an ext4 disk): %v", d.mountable, err)
	}
	defer unix.Unmount("/mnt/hw", 0)
	for _, tt := range []struct {
		name, dev string
		args      []string
		want      string
	}{
		{"the VM's own disk", d.system, nil, "/state is on vda2"},
		{"a disk with a mounted file system", d.mountable, nil, "on /mnt/hw"},
		{"a disk smaller than the image", d.small, nil, "smaller than the image"},
		{"a fixed disk", d.fixed, nil, "not removable: add --allow-fixed"},
		{"the VM's own disk with every override", d.system, []string{"--allow-fixed", "--allow-large"}, "holds the running system"},
		{"a partition", d.system + "1", nil, "is a partition of vda"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			whole := strings.TrimSuffix(tt.dev, "1")
			before := fingerprint(t, whole)
			args := append([]string{"--yes"}, tt.args...)
			code, out := flashCLI(t, append(args, "rknas-qemu-virt.img", tt.dev)...)
			if code != 3 || !strings.Contains(out, tt.want) {
				t.Errorf("rknas-flash %s: exit %d, want 3 saying %q:\n%s", tt.dev, code, tt.want, out)
			}
			if after := fingerprint(t, whole); after != before {
				t.Errorf("%s changed although the flasher refused it", whole)
			}
			t.Logf("%s refused: %s", tt.dev, strings.TrimSpace(out))
		})
	}
}

// TestHWFlashChecksTheDiskItOpens: the disk is checked by the path given,
// then the operator confirms; if by then the path names another disk (a
// card pulled and another disk come up under its name), the writer sees it
// on the disk it opened and writes nothing, not even to a disk the checks
// would have let through.
func TestHWFlashChecksTheDiskItOpens(t *testing.T) {
	requireVM(t)
	d := findDisks(t)
	img, err := flash.OpenImage("rknas-qemu-virt.img")
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	p, err := flash.NewPersonal("vm-flash-test-password", "rknas-swapped")
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "card")
	if err := os.Symlink(d.target, link); err != nil {
		t.Fatal(err)
	}
	before := fingerprint(t, d.fixed)
	_, err = flash.Flash(context.Background(), flash.Job{Image: img, Target: link, Personal: p, Inspector: flash.NewInspector(),
		Confirm: func(*flash.Target, *diskimage.Manifest) error {
			// While the operator reads the question, the name moves to
			// the fixed disk.
			if err := os.Remove(link); err != nil {
				return err
			}
			return os.Symlink(d.fixed, link)
		}})
	if err == nil || !strings.Contains(err.Error(), "no longer the disk that was checked") {
		t.Errorf("flashing a name that moved to %s after the checks: %v", d.fixed, err)
	}
	if after := fingerprint(t, d.fixed); after != before {
		t.Errorf("%s changed: the flasher wrote to a disk it never checked", d.fixed)
	}
	t.Logf("refused: %v", err)
}

// TestHWFlashRemovable writes the image to the removable USB disk as an
// owner would (typing the disk's name to confirm) and checks what landed,
// through the kernel; then it cuts a second write while the partitions are
// being written and checks that the disk is left without a partition table,
// not with a half-written system; then writes it again for the host, which
// boots it (TestVMFlash).
func TestHWFlashRemovable(t *testing.T) {
	requireVM(t)
	d := findDisks(t)
	name := filepath.Base(d.target)
	pw := "vm-flash-test-password"
	if err := os.WriteFile("pw.txt", []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(stdin string, extra ...string) string {
		t.Helper()
		args := append([]string{"--password-file", "pw.txt", "--hostname", "rknas-flashed", "--label", "flashed.label"}, extra...)
		cmd := exec.Command("./rknas-flash", append(args, "rknas-qemu-virt.img", d.target)...)
		cmd.Stdin = strings.NewReader(stdin)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rknas-flash %s: %v\n%s", d.target, err, b)
		}
		return string(b)
	}

	out := write(name + "\n")
	for _, want := range []string{"Type " + name + " to go on", "bytes read back and compared", "default password:   " + pw, "hostname:           rknas-flashed"} {
		if !strings.Contains(out, want) {
			t.Errorf("rknas-flash output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("rknas-flash:\n%s", out)
	checkFlashed(t, d.target, pw)

	// A cut: the flasher is killed while it writes the partitions. Both
	// copies of the partition table the disk had are wiped before any
	// partition byte is written, so nothing boots from it.
	cmd := exec.Command("./rknas-flash", "--yes", "rknas-qemu-virt.img", d.target)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var got []byte
	for !bytes.Contains(got, []byte("writing qemu-virt")) {
		n, err := stderr.Read(buf)
		if err != nil {
			t.Fatalf("rknas-flash ended before writing: %v: %s", err, got)
		}
		got = append(got, buf[:n]...)
	}
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	f, err := os.Open(d.target)
	if err != nil {
		t.Fatal(err)
	}
	tab, src, err := diskimage.ReadGPT(f, uint64(sysInt(t, name, "size")))
	f.Close()
	if err == nil {
		t.Errorf("after a cut write the disk has a valid %s GPT (disk %s): it could boot a half-written system", src, tab.DiskID)
	} else {
		t.Logf("cut write: no partition table left: %v", err)
	}

	out = write("", "--yes")
	checkFlashed(t, d.target, pw)
	unix.Sync()
}

// checkFlashed reads the written disk through the kernel and checks it is
// the image with its own GUIDs, password and full-size state partition.
func checkFlashed(t *testing.T, dev, pw string) {
	t.Helper()
	name := filepath.Base(dev)
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := sysInt(t, name, "size") * 512
	img, err := flash.ReadImage(f, size)
	if err != nil {
		t.Fatalf("the written disk is not a firmware medium: %v", err)
	}
	st, _ := img.Table.Find(diskimage.StateLabel)
	if end := (uint64(size)/512 - 34 + 1) / 2048 * 2048; st.Last+1 != end {
		t.Errorf("state partition ends at %d, want the disk's end (%d)", st.Last+1, end)
	}
	src, err := flash.OpenImage("rknas-qemu-virt.img")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if img.Table.DiskID == src.Table.DiskID {
		t.Error("the disk has the image's disk GUID: two cards from one image would look alike")
	}
	pwf, _ := img.ReadBootFile(provision.PasswordFile)
	if v, err := provision.Value(pwf); err != nil || v != pw {
		t.Errorf("provisioned password file says %q (%v), want %q", v, err, pw)
	}
	conf, _ := img.ReadBootFile(diskimage.ExtlinuxFile)
	if !strings.Contains(string(conf), diskimage.DiskArg+"="+img.Table.DiskID.String()) {
		t.Errorf("extlinux.conf does not name the disk's own GUID %s:\n%s", img.Table.DiskID, conf)
	}
	for _, p := range []string{name + "1", name + "2"} {
		if _, err := os.Stat("/sys/block/" + name + "/" + p); err != nil {
			t.Errorf("the kernel does not show %s after the flash: %v", p, err)
		}
	}
}
