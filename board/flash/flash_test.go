package flash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rknas/firmware/board"
	"github.com/rknas/firmware/board/diskimage"
	"github.com/rknas/firmware/board/imagebuild"
	"github.com/rknas/firmware/board/provision"
)

// testImage builds a real image with the real builder (mkfs.vfat, mtools,
// mkfs.ext4), with stand-ins for the kernel and initramfs, and a
// bootloader when withLoader. Images are built once per kind per test run.
func testImage(t testing.TB, withLoader bool) string {
	t.Helper()
	if !withLoader {
		return testImageOf(t, "plain", nil)
	}
	return testImageOf(t, "loader", func(s *imagebuild.BuildSpec) {
		s.Bootloader = bytes.Repeat([]byte("U-Boot!\x00"), 90000)
		s.BootloaderSource = "file test-u-boot.bin"
		// Any board; the manifest says what it carries.
		s.Profile.Name, s.Profile.Model, s.Profile.SoC = "pine64-rockpro64", "Pine64 RockPro64", "rk3399"
	})
}

// testImageOf builds the qemu-virt image as edit changes its spec (nil: as
// it is), once per kind per test run.
func testImageOf(t testing.TB, kind string, edit func(*imagebuild.BuildSpec)) string {
	t.Helper()
	imagesMu.Lock()
	defer imagesMu.Unlock()
	if p, ok := images[kind]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "flash-test-")
	if err != nil {
		t.Fatal(err)
	}
	kernel, initrd := filepath.Join(dir, "Image"), filepath.Join(dir, "initramfs")
	os.WriteFile(kernel, bytes.Repeat([]byte("kernel "), 300000), 0o644)
	os.WriteFile(initrd, bytes.Repeat([]byte("initramfs "), 100000), 0o644)
	p, _ := board.ByName("qemu-virt")
	spec := imagebuild.BuildSpec{Profile: p, Kernel: kernel, KernelRelease: "6.12.0-test", Initramfs: initrd,
		Version: "test", Out: filepath.Join(dir, "rknas-test.img")}
	if edit != nil {
		edit(&spec)
	}
	if _, err := imagebuild.Build(context.Background(), spec); err != nil {
		t.Fatalf("build a test image (dosfstools, mtools, e2fsprogs: scripts/deps.sh): %v", err)
	}
	images[kind] = spec.Out
	return spec.Out
}

// boardImage is a test image whose manifest names board, model and soc.
func boardImage(t testing.TB, name, model, soc string) string {
	t.Helper()
	return testImageOf(t, "board "+name, func(s *imagebuild.BuildSpec) {
		s.Profile.Name, s.Profile.Model, s.Profile.SoC = name, model, soc
	})
}

var (
	imagesMu sync.Mutex
	images   = map[string]string{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, p := range images {
		os.RemoveAll(filepath.Dir(p))
	}
	os.Exit(code)
}

func personal(t *testing.T) Personal {
	t.Helper()
	p, err := NewPersonal("test password 1", "rknas-test01")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func flashFile(t *testing.T, img *Image, target string, size int64, p Personal) *Result {
	t.Helper()
	res, err := Flash(context.Background(), Job{Image: img, Target: target, Personal: p, FileSize: size})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func readMedium(t *testing.T, path string) *Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, _ := f.Stat()
	m, err := ReadImage(f, fi.Size())
	if err != nil {
		t.Fatalf("the written medium: %v", err)
	}
	return m
}

// TestFlashToFile writes an image to a larger image file and checks the
// result with the readers and with the real tools.
func TestFlashToFile(t *testing.T) {
	img, err := OpenImage(testImage(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	target := filepath.Join(t.TempDir(), "card.img")
	p := personal(t)
	res := flashFile(t, img, target, 1<<30, p)
	if res.Written == 0 || res.Verify == 0 {
		t.Errorf("result: %+v", res)
	}
	m := readMedium(t, target)
	if m.Table.DiskID != p.Disk || m.Table.DiskID == img.Table.DiskID {
		t.Errorf("disk GUID %s, want the job's %s (the image's is %s)", m.Table.DiskID, p.Disk, img.Table.DiskID)
	}
	st, _ := m.Table.Find(diskimage.StateLabel)
	if st.Last != (1<<30/512-34+1)/2048*2048-1 {
		t.Errorf("state partition ends at %d: not grown to the medium", st.Last)
	}
	for name, want := range map[string]string{provision.PasswordFile: p.Password, provision.HostnameFile: p.Hostname} {
		b, err := m.ReadBootFile(name)
		if v, verr := provision.Value(b); err != nil || verr != nil || v != want {
			t.Errorf("%s: %q %v %v, want %q", name, v, err, verr, want)
		}
	}
	conf, _ := m.ReadBootFile(diskimage.ExtlinuxFile)
	if !strings.Contains(string(conf), diskimage.DiskArg+"="+p.Disk.String()+" ") {
		t.Errorf("extlinux.conf does not name the new disk GUID:\n%s", conf)
	}
	// The real tools agree: the GPT is sound and the boot FAT is clean.
	if out, err := exec.Command("sgdisk", "-v", target).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	boot := filepath.Join(t.TempDir(), "boot.fat")
	copyRange(t, target, boot, diskimage.BootStart*512, diskimage.BootSectors*512)
	if out, err := exec.Command("fsck.fat", "-n", boot).CombinedOutput(); err != nil {
		t.Errorf("fsck.fat after provisioning: %v\n%s", err, out)
	}
	// The state file system is the image's, byte for byte.
	if !bytes.Equal(readRangeOf(t, target, (diskimage.BootStart+diskimage.BootSectors)*512, diskimage.StateSectors*512),
		readRangeOf(t, img.Path, (diskimage.BootStart+diskimage.BootSectors)*512, diskimage.StateSectors*512)) {
		t.Error("the state partition differs from the image's")
	}
	// A file target is written sparse: the holes of the image stay holes.
	if out, _ := exec.Command("du", "-k", target).Output(); len(out) > 0 {
		var kib int
		fmt.Sscan(string(out), &kib)
		if kib > 200<<10 {
			t.Errorf("the 1 GiB file target uses %d KiB: not sparse", kib)
		}
	}
}

// TestTwoCardsDiffer flashes one image twice, as two cards, without giving
// a password or hostname: they must differ.
func TestTwoCardsDiffer(t *testing.T) {
	img, err := OpenImage(testImage(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	var got []Personal
	for i := 0; i < 2; i++ {
		p, err := NewPersonal("", "")
		if err != nil {
			t.Fatal(err)
		}
		flashFile(t, img, filepath.Join(t.TempDir(), "card.img"), 0, p)
		got = append(got, p)
	}
	if got[0].Password == got[1].Password || got[0].Hostname == got[1].Hostname || got[0].Disk == got[1].Disk {
		t.Errorf("two cards got the same values: %+v %+v", got[0], got[1])
	}
}

func TestFlashRefusesFiles(t *testing.T) {
	path := testImage(t, false)
	img, err := OpenImage(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	dir := t.TempDir()
	precious := filepath.Join(dir, "thesis.odt")
	os.WriteFile(precious, []byte("years of work"), 0o644)
	for _, tt := range []struct {
		name, target, want string
	}{
		{"the image itself", path, "is the image itself"},
		{"a file that is not an image", precious, "not an rknas disk image"},
		{"a directory", dir, "neither a block device nor an image file"},
		{"a character device", "/dev/null", "neither a block device nor an image file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Flash(context.Background(), Job{Image: img, Target: tt.target, Personal: personal(t)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Flash(%s) = %v, want %q", tt.target, err, tt.want)
			}
		})
	}
	if b, _ := os.ReadFile(precious); string(b) != "years of work" {
		t.Fatal("the refused file changed")
	}
	// A symbolic link is not followed, even with Overwrite: one planted
	// in a shared directory would send the write (as root) elsewhere.
	link := filepath.Join(dir, "vm.img")
	if err := os.Symlink(precious, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Flash(context.Background(), Job{Image: img, Target: link, Personal: personal(t), Overwrite: true}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Flash to a symbolic link: %v", err)
	}
	if b, _ := os.ReadFile(precious); string(b) != "years of work" {
		t.Fatal("the file behind a symbolic link changed")
	}
	if _, err := Flash(context.Background(), Job{Image: img, Target: precious, Personal: personal(t), Overwrite: true}); err != nil {
		t.Fatalf("with Overwrite: %v", err)
	}
	// It holds the device's default password now: the owner's alone.
	if fi, err := os.Stat(precious); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the written image file: %v (%v), want mode 0600", fi.Mode(), err)
	}
}

func TestOpenImageChecks(t *testing.T) {
	src := testImage(t, false)
	dir := t.TempDir()
	img := filepath.Join(dir, "x.img")
	copyRange(t, src, img, 0, fileSize(t, src))
	sum, _ := os.ReadFile(src + ".sha256")
	os.WriteFile(img+".sha256", bytes.Replace(sum, []byte(filepath.Base(src)), []byte("x.img"), 1), 0o644)
	if i, err := OpenImage(img); err != nil {
		t.Fatalf("a good image with its .sha256: %v", err)
	} else {
		i.Close()
	}
	// One flipped byte in the state partition: the hash catches it.
	f, _ := os.OpenFile(img, os.O_RDWR, 0)
	f.WriteAt([]byte{0xff}, (diskimage.BootStart+diskimage.BootSectors)*512+5000)
	f.Close()
	if _, err := OpenImage(img); !errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), "damaged download") {
		t.Errorf("a damaged image: %v", err)
	}
	os.Remove(img + ".sha256")
	if i, err := OpenImage(img); err != nil {
		t.Errorf("no .sha256 beside it: %v", err)
	} else {
		i.Close()
	}
	for name, data := range map[string][]byte{
		"zeros":     make([]byte, diskimage.ImageSectors*512),
		"too short": []byte("hello"),
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		if _, err := OpenImage(p); !errors.Is(err, ErrBadImage) {
			t.Errorf("%s: %v, want ErrBadImage", name, err)
		}
	}
}

// cutMedium is a medium that loses power after budget bytes: the write
// that crosses it lands only partly and every later one fails.
type cutMedium struct {
	f      *os.File
	budget int64
}

var errPowerCut = errors.New("power cut")

func (c *cutMedium) WriteAt(p []byte, off int64) (int, error) {
	if c.budget <= 0 {
		return 0, errPowerCut
	}
	n := min(int64(len(p)), c.budget)
	c.budget -= n
	if _, err := c.f.WriteAt(p[:n], off); err != nil {
		return 0, err
	}
	if n < int64(len(p)) {
		return int(n), errPowerCut
	}
	return len(p), nil
}
func (c *cutMedium) ReadAt(p []byte, off int64) (int, error) { return c.f.ReadAt(p, off) }
func (c *cutMedium) Sync() error                             { return c.f.Sync() }
func (c *cutMedium) Close() error                            { return c.f.Close() }

// TestCutWriteNeverBoots cuts the write of a new image over a medium that
// holds a valid one at many points. Whatever valid partition table is left
// must describe a whole system: the old one (only while the old tables are
// being wiped, before any partition byte is written) or the new one (only
// once every partition byte is written, since the new tables come last).
// Anywhere between, neither copy may be valid, so no boot loader starts a
// half-written system.
func TestCutWriteNeverBoots(t *testing.T) {
	img, err := OpenImage(testImage(t, true))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	const size = 512 << 20
	pl, err := img.Plan(personal(t), size)
	if err != nil {
		t.Fatal(err)
	}
	var total, wiped, whole int64
	for _, pc := range pl.Pieces {
		total += pc.Len
		if pc.Wipe {
			wiped = total // bytes up to the end of the wipes
		}
		if pc.What == "boot and state partitions" || strings.HasPrefix(pc.What, "boot chain") {
			whole = total // bytes up to the last partition byte
		}
	}
	last := pl.Pieces[len(pl.Pieces)-1]
	points := []int64{0, 1, 512, 34*512 - 1, 34 * 512, 35 * 512, total - last.Len - 1, total - last.Len, total - 1}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 12; i++ {
		points = append(points, rng.Int64N(total))
	}
	bufs, err := NewBuffers()
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range points {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "card.img")
			old := personal(t)
			flashFile(t, img, target, size, old) // a valid medium first
			f, err := os.OpenFile(target, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			m := &cutMedium{f: f, budget: cut}
			werr := pl.Write(context.Background(), img, m, false, bufs, nil)
			f.Close()
			if werr == nil {
				t.Fatal("the write did not notice the cut")
			}
			r, _ := os.Open(target)
			defer r.Close()
			tab, src, err := diskimage.ReadGPT(r, size/512)
			switch {
			case err != nil:
				// No table: nothing boots from it.
			case tab.DiskID == old.Disk && cut <= wiped:
				// The old system, untouched but for its tables' wipe.
			case tab.DiskID == pl.Table.DiskID && cut >= whole:
				// The new system, every partition byte written.
			default:
				t.Errorf("cut at byte %d of %d (wipes end at %d, partitions at %d): a valid %s GPT of disk %s remains (old %s, new %s)",
					cut, total, wiped, whole, src, tab.DiskID, old.Disk, pl.Table.DiskID)
			}
		})
	}
}

// flipMedium returns one flipped bit, at byte at, when read back: a card
// that lies.
type flipMedium struct {
	*os.File
	at int64
}

func (f flipMedium) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	if f.at >= off && f.at < off+int64(n) {
		p[f.at-off] ^= 1
	}
	return n, err
}

// TestVerifyCatchesALyingMedium flips one bit on the way back, in a piece
// taken from the image and in one the plan makes (the partition table), and
// wants the verification to fail naming that byte.
func TestVerifyCatchesALyingMedium(t *testing.T) {
	img, err := OpenImage(testImage(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	pl, err := img.Plan(personal(t), img.Size)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "liar.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(img.Size)
	bufs, _ := NewBuffers()
	if err := pl.Write(context.Background(), img, f, false, bufs, nil); err != nil {
		t.Fatal(err)
	}
	if err := pl.Verify(context.Background(), img, f, bufs, nil); err != nil {
		t.Fatalf("an honest medium fails verification: %v", err)
	}
	var fromImage, made *Piece
	for i := range pl.Pieces {
		pc := &pl.Pieces[i]
		switch {
		case pc.Wipe:
		case pc.Data == nil && pc.Len > 2*chunk && fromImage == nil:
			fromImage = pc
		case pc.Data != nil && made == nil:
			made = pc
		}
	}
	if fromImage == nil || made == nil {
		t.Fatalf("the plan has no piece of %d bytes from the image or none it makes: %+v", 2*chunk, pl.Pieces)
	}
	for _, at := range []int64{fromImage.Off + chunk + 4097, made.Off + made.Len - 1} {
		err := pl.Verify(context.Background(), img, flipMedium{f, at}, bufs, nil)
		if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), fmt.Sprintf("differs at byte %d", at)) {
			t.Errorf("a medium that flips a bit at byte %d: %v, want ErrVerify naming that byte", at, err)
		}
	}
}

// TestPlanOrder checks the order that makes a cut harmless, and that the
// boot chain area is written only when the image carries a bootloader.
func TestPlanOrder(t *testing.T) {
	for _, withLoader := range []bool{false, true} {
		img, err := OpenImage(testImage(t, withLoader))
		if err != nil {
			t.Fatal(err)
		}
		pl, err := img.Plan(personal(t), 1<<30)
		img.Close()
		if err != nil {
			t.Fatal(err)
		}
		var whats []string
		chain := false
		for _, pc := range pl.Pieces {
			whats = append(whats, pc.What)
			if pc.Off < diskimage.BootChainEnd*512 && pc.Off+pc.Len > diskimage.BootChainSector*512 {
				chain = true
			}
		}
		if !strings.HasPrefix(whats[0], "wipe") || !strings.HasPrefix(whats[1], "wipe") || whats[len(whats)-1] != "partition table" {
			t.Errorf("pieces in the order %q", whats)
		}
		if chain != withLoader {
			t.Errorf("bootloader included %v, but the boot chain area is written: %v (%q)", withLoader, chain, whats)
		}
	}
}

// TestUpdateKeepsTheDevice replaces the firmware on a flashed medium with
// a newer image for the same board: the boot partition is the new image's,
// the password, hostname, partition table and state stay.
func TestUpdateKeepsTheDevice(t *testing.T) {
	old, err := OpenImage(testImage(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	target := filepath.Join(t.TempDir(), "card.img")
	p := personal(t)
	flashFile(t, old, target, 1<<30, p)
	stateOff := int64(diskimage.BootStart+diskimage.BootSectors)*512 + 1<<20
	f, _ := os.OpenFile(target, os.O_RDWR, 0)
	f.WriteAt([]byte("the owner's data"), stateOff)
	f.Close()

	newer, err := OpenImage(testImageOf(t, "newer", func(s *imagebuild.BuildSpec) { s.Version = "test-newer" }))
	if err != nil {
		t.Fatal(err)
	}
	defer newer.Close()
	if newer.Manifest.Board != old.Manifest.Board {
		t.Fatalf("the newer image is for %s, the medium for %s: not an update of the same board", newer.Manifest.Board, old.Manifest.Board)
	}
	if _, err := Flash(context.Background(), Job{Image: newer, Target: target, Update: true}); err != nil {
		t.Fatal(err)
	}
	m := readMedium(t, target)
	if m.Manifest.Version != "test-newer" || m.Manifest.Built != newer.Manifest.Built || m.Manifest.Board != newer.Manifest.Board {
		t.Errorf("the boot partition is not the new image's: %+v", m.Manifest)
	}
	if m.Table.DiskID != p.Disk {
		t.Errorf("the update changed the disk GUID")
	}
	b, _ := m.ReadBootFile(provision.PasswordFile)
	if v, _ := provision.Value(b); v != p.Password {
		t.Errorf("the update lost the password: %q", v)
	}
	conf, _ := m.ReadBootFile(diskimage.ExtlinuxFile)
	if !strings.Contains(string(conf), p.Disk.String()) {
		t.Errorf("extlinux.conf no longer names the medium")
	}
	if got := readRangeOf(t, target, stateOff, 16); string(got) != "the owner's data" {
		t.Errorf("the update touched the state: %q", got)
	}
	if _, err := Flash(context.Background(), Job{Image: newer, Target: filepath.Join(t.TempDir(), "none.img"), Update: true}); err == nil {
		t.Error("an update of a missing medium succeeded")
	}
}

// TestUpdateRefusesAnotherBoard updates media made for one board with
// images for others through the whole update path: refused, with both
// boards named and nothing written, unless the owner allows another board
// of the same SoC. (TestCheckBoard has the rule's every case; each image
// built here costs seconds, under the race detector tens of them.)
func TestUpdateRefusesAnotherBoard(t *testing.T) {
	r4s := func(t testing.TB) string { return boardImage(t, "nanopi-r4s", "FriendlyElec NanoPi R4S", "rk3399") }
	rockpro := func(t testing.TB) string { return testImage(t, true) } // pine64-rockpro64, rk3399
	plain := func(t testing.TB) string { return testImage(t, false) }  // qemu-virt, no SoC
	type medium struct {
		path string
		p    Personal
	}
	media := map[string]medium{}
	dir := t.TempDir()
	stateOff := int64(diskimage.BootStart+diskimage.BootSectors)*512 + 1<<20
	for _, tc := range []struct {
		name           string
		medium, image  func(testing.TB) string
		allow, written bool
		// want are parts of the error: the boards and what to do.
		want []string
	}{
		{name: "another board", medium: plain, image: rockpro,
			want: []string{"(qemu-virt)", "Pine64 RockPro64 (pine64-rockpro64, rk3399)", "not known to be the same SoC",
				"nothing was written", "image for qemu-virt", "without --update"}},
		{name: "another board, allowed, not the same SoC", medium: plain, image: rockpro, allow: true,
			want: []string{"(qemu-virt)", "(pine64-rockpro64, rk3399)", "--allow-other-board does not allow"}},
		{name: "another board of the same SoC, allowed", medium: r4s, image: rockpro, allow: true, written: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mimg, err := OpenImage(tc.medium(t))
			if err != nil {
				t.Fatal(err)
			}
			defer mimg.Close()
			img, err := OpenImage(tc.image(t))
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			// A refused update writes nothing (checked below), so the
			// refused cases share a medium per board.
			key := mimg.Manifest.Board
			if tc.written {
				key = tc.name
			}
			md, ok := media[key]
			if !ok {
				md.path, md.p = filepath.Join(dir, strings.ReplaceAll(key, " ", "-")+".img"), personal(t)
				flashFile(t, mimg, md.path, 0, md.p)
				f, _ := os.OpenFile(md.path, os.O_RDWR, 0)
				f.WriteAt([]byte("the owner's data"), stateOff)
				f.Close()
				media[key] = md
			}
			target, p := md.path, md.p
			before := fileHash(t, target)

			_, err = Flash(context.Background(), Job{Image: img, Target: target, Update: true, AllowOtherBoard: tc.allow})
			after := fileHash(t, target)
			if tc.written {
				if err != nil {
					t.Fatal(err)
				}
				m := readMedium(t, target)
				if m.Manifest.Board != img.Manifest.Board || m.Table.DiskID != p.Disk {
					t.Errorf("allowed update: the medium holds %s (disk %s), want %s (disk %s)", m.Manifest.Board, m.Table.DiskID,
						img.Manifest.Board, p.Disk)
				}
				if got := readRangeOf(t, target, stateOff, 16); string(got) != "the owner's data" {
					t.Errorf("the update touched the state: %q", got)
				}
				return
			}
			if !errors.Is(err, ErrOtherBoard) {
				t.Fatalf("updating a %s medium with a %s image: %v, want ErrOtherBoard", mimg.Manifest.Board, img.Manifest.Board, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the refusal does not say %q: %v", w, err)
				}
			}
			if before != after {
				t.Errorf("the refused update changed the medium")
			}
		})
	}
}

// TestCheckBoard is the update's board rule on manifests alone.
func TestCheckBoard(t *testing.T) {
	m := func(board, soc string) *diskimage.Manifest {
		return &diskimage.Manifest{Format: 1, Board: board, Model: "Model " + board, SoC: soc}
	}
	for _, tc := range []struct {
		name      string
		cur, img  *diskimage.Manifest
		allow, ok bool
	}{
		{"same board", m("qnap-ts433", "rk3568"), m("qnap-ts433", "rk3568"), false, true},
		{"same board, no SoC named", m("qemu-virt", ""), m("qemu-virt", ""), false, true},
		{"same board, allowed", m("qnap-ts433", "rk3568"), m("qnap-ts433", "rk3568"), true, true},
		{"another board", m("qnap-ts433", "rk3568"), m("pine64-rockpro64", "rk3399"), false, false},
		{"another board, allowed, another SoC", m("qnap-ts433", "rk3568"), m("pine64-rockpro64", "rk3399"), true, false},
		{"same SoC", m("qnap-ts433", "rk3568"), m("nanopi-r5s", "rk3568"), false, false},
		{"same SoC, allowed", m("qnap-ts433", "rk3568"), m("nanopi-r5s", "rk3568"), true, true},
		{"neither names a SoC, allowed", m("qemu-virt", ""), m("pine64-rockpro64", ""), true, false},
		{"the medium names none, allowed", m("qnap-ts433", ""), m("nanopi-r5s", "rk3568"), true, false},
		{"the image names none, allowed", m("qnap-ts433", "rk3568"), m("nanopi-r5s", ""), true, false},
	} {
		err := checkBoard(tc.cur, tc.img, tc.allow)
		if tc.ok != (err == nil) {
			t.Errorf("%s: %v, want ok %v", tc.name, err, tc.ok)
			continue
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrOtherBoard) {
			t.Errorf("%s: %v is not ErrOtherBoard", tc.name, err)
		}
		for _, want := range []string{boardName(tc.cur), boardName(tc.img), "nothing was written", "image for " + tc.cur.Board} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %q does not say %q", tc.name, err, want)
			}
		}
	}
}

func copyRange(t *testing.T, src, dst string, off, n int64) {
	t.Helper()
	if err := os.WriteFile(dst, readRangeOf(t, src, off, n), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readRangeOf(t *testing.T, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return b
}

// fileHash is the SHA-256 of the file at p, in hex.
func fileHash(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileSize(t *testing.T, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func FuzzReadImage(f *testing.F) {
	f.Add(int64(0), []byte{})
	f.Fuzz(func(t *testing.T, at int64, patch []byte) {
		// A real image with a patch of random bytes somewhere in its
		// first 20 MiB (tables, manifest, provisioning files).
		src := testImage(t, false)
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if at < 0 {
			at = -at
		}
		at %= 20 << 20
		copy(b[at:], patch)
		if img, err := ReadImage(bytes.NewReader(b), int64(len(b))); err == nil {
			if img.password.Length != provision.PasswordFileSize || img.diskArg.Length != 36 {
				t.Fatalf("accepted an image with bad extents: %+v %+v", img.password, img.diskArg)
			}
		}
	})
}
