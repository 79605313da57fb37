package diskimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The tests make real file systems with mkfs.vfat (dosfstools) and fill
// them with mtools, an independent FAT implementation, then read them back.

// fatTool returns the path of a dosfstools or mtools program; the tests need
// the real ones and never skip.
func fatTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found: install dosfstools and mtools: scripts/deps.sh", name)
	return ""
}

func fatRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(fatTool(t, name), args...)
	// MTOOLS_SKIP_CHECK: images have no disk geometry to check; MTOOLSRC:
	// no user configuration; a UTF-8 locale so mtools writes non-ASCII
	// long names.
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "MTOOLSRC=/dev/null", "LC_ALL=C.UTF-8")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// fatImage is a file system made by mkfs.vfat in an image file.
type fatImage struct {
	path string
	off  int64 // byte offset of the file system in the image
	size int64 // bytes from off to the end of the image
}

// target is the image as mtools' -i wants it.
func (im fatImage) target() string { return fmt.Sprintf("%s@@%d", im.path, im.off) }

// makeFATImage makes an image of sizeMiB and runs mkfs.vfat with args on it
// at logical sector offSectors. mkfs.vfat counts --offset in its logical
// sectors (-S), not in 512-byte ones, so sectorSize must be the -S given.
func makeFATImage(t testing.TB, sizeMiB, offSectors, sectorSize int64, args ...string) fatImage {
	t.Helper()
	im := fatImage{path: filepath.Join(t.TempDir(), "fat.img"), off: offSectors * sectorSize}
	im.size = sizeMiB<<20 - im.off
	if err := os.WriteFile(im.path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(im.path, sizeMiB<<20); err != nil {
		t.Fatal(err)
	}
	if offSectors != 0 {
		args = append(args, fmt.Sprintf("--offset=%d", offSectors))
	}
	fatRun(t, "mkfs.vfat", append(args, im.path)...)
	return im
}

type fatTestFile struct {
	path string
	data []byte
}

// fatPut makes dirs (parents first) with mmd and copies files in with
// mcopy, in their order, one mcopy per run of files in the same directory.
func fatPut(t testing.TB, im fatImage, dirs []string, files []fatTestFile) {
	t.Helper()
	if len(dirs) > 0 {
		args := []string{"-i", im.target()}
		for _, d := range dirs {
			args = append(args, "::"+d)
		}
		fatRun(t, "mmd", args...)
	}
	for i := 0; i < len(files); {
		dir := path.Dir(files[i].path)
		src := t.TempDir()
		args := []string{"-i", im.target()}
		for ; i < len(files) && path.Dir(files[i].path) == dir; i++ {
			local := filepath.Join(src, path.Base(files[i].path))
			if err := os.WriteFile(local, files[i].data, 0o644); err != nil {
				t.Fatal(err)
			}
			args = append(args, local)
		}
		fatRun(t, "mcopy", append(args, "::"+strings.TrimSuffix(dir, "/")+"/")...)
	}
}

func fatRandom(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	return b
}

// fatDeepDir holds a file at the deepest path Stat accepts: 16 components.
const fatDeepDir = "/rknas/a/b/c/d/e/f/g/h/i/j/k/l/m/n"

// fatBootContent is what the tests put in a boot partition: the names and
// shapes the flasher meets, and the awkward ones.
func fatBootContent() (dirs []string, files []fatTestFile) {
	dirs = []string{"/extlinux", "/rknas", "/many"}
	for i := len("/rknas/"); i < len(fatDeepDir); i += 2 {
		dirs = append(dirs, fatDeepDir[:i+1])
	}
	files = []fatTestFile{
		{"/extlinux/extlinux.conf", []byte("default rknas\nlabel rknas\n\tkernel /Image\n\tfdt /dtb/rockchip/rk3568-odroid-m1.dtb\n\tinitrd /initramfs.cpio.gz\n\tappend console=ttyS2,1500000 rknas.disk=0\n")},
		{"/rknas/random.bin", fatRandom(1, 3<<20+123)}, // multi-cluster, not a whole number of clusters
		{"/rknas/empty", nil},
		{"/rknas/password", []byte("0123456789abcdef")}, // a small fixed-size file, as the flasher rewrites
		{"/README.TXT", []byte("a pure 8.3 name\n")},
		{"/MixedCase.Txt", []byte("mixed case, so a long name\n")},
		{"/lower.txt", []byte("lower case: an 8.3 entry with case flags\n")},
		{"/UPPER.txt", []byte("upper-case name, lower-case extension\n")},
		{"/grüße.txt", []byte("fits code page 850: a short name\n")},
		{"/Ωmega-κ.txt", []byte("needs UTF-16: a long name\n")},
		{"/a file name long enough for several long-name entries, which takes 6.conf", fatRandom(2, 5000)},
		{fatDeepDir + "/deep file.bin", fatRandom(3, 70000)}, // 16 path components, the most allowed
	}
	for i := range 40 { // a directory of several clusters
		files = append(files, fatTestFile{fmt.Sprintf("/many/file number %02d.txt", i), []byte(strings.Repeat(strconv.Itoa(i), i))})
	}
	return dirs, files
}

// fatChildren returns the names directly in dir, sorted.
func fatChildren(dir string, dirs []string, files []fatTestFile) []string {
	var out []string
	add := func(p string) {
		if path.Dir(p) == dir {
			out = append(out, path.Base(p))
		}
	}
	for _, d := range dirs {
		add(d)
	}
	for _, f := range files {
		add(f.path)
	}
	slices.Sort(out)
	return out
}

func fatOpenImage(t testing.TB, im fatImage, maxCache int64) (*FAT, *os.File) {
	t.Helper()
	r, err := os.Open(im.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	f, err := openFAT(r, im.off, im.size, maxCache)
	if err != nil {
		t.Fatalf("OpenFAT: %v", err)
	}
	return f, r
}

// fatExtentBytes reads the extents straight from r and checks they lie
// within the file system.
func fatExtentBytes(t testing.TB, r io.ReaderAt, im fatImage, exts []Extent) []byte {
	t.Helper()
	var b []byte
	for _, x := range exts {
		if x.Length <= 0 || x.Offset < im.off || x.Offset+x.Length > im.off+im.size {
			t.Fatalf("extent %+v is outside the file system [%d, %d)", x, im.off, im.off+im.size)
		}
		p := make([]byte, x.Length)
		if _, err := r.ReadAt(p, x.Offset); err != nil {
			t.Fatal(err)
		}
		b = append(b, p...)
	}
	return b
}

func TestFATImages(t *testing.T) {
	tests := []struct {
		name       string
		sizeMiB    int64
		offSectors int64
		sectorSize int64
		mkfs       []string
		fat32      bool
	}{
		{"FAT32 at sector 2048", 64, 2048, 512, []string{"-F", "32"}, true},
		{"FAT32 at sector 0", 64, 0, 512, []string{"-F", "32"}, true},
		{"FAT32 as the image builder makes it", 16 + 128, 32768, 512, []string{"-F", "32", "-s", "2", "-S", "512"}, true},
		{"FAT32 at an odd sector", 40, 63, 512, []string{"-F", "32", "-s", "1"}, true},
		{"FAT16", 32, 0, 512, []string{"-F", "16"}, false},
		{"FAT16 with 4096-byte sectors", 32, 0, 4096, []string{"-F", "16", "-S", "4096", "-s", "1"}, false},
		{"FAT16 with one FAT and big clusters", 64, 34, 512, []string{"-F", "16", "-f", "1", "-s", "16"}, false},
	}
	dirs, files := fatBootContent()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := makeFATImage(t, tt.sizeMiB, tt.offSectors, tt.sectorSize, append(tt.mkfs, "-n", "RKNAS-BOOT")...)
			fatPut(t, im, dirs, files)
			for _, cache := range []int64{fatMaxCache, 0} {
				t.Run(fmt.Sprintf("cache %d", cache), func(t *testing.T) {
					f, r := fatOpenImage(t, im, cache)
					if f.fat32 != tt.fat32 {
						t.Fatalf("fat32 = %v, want %v", f.fat32, tt.fat32)
					}
					if (f.fat != nil) != (cache > 0) {
						t.Errorf("FAT cached = %v with cache limit %d", f.fat != nil, cache)
					}
					checkFATContent(t, f, r, im, dirs, files)
				})
			}
		})
	}
}

func checkFATContent(t *testing.T, f *FAT, r io.ReaderAt, im fatImage, dirs []string, files []fatTestFile) {
	if got := f.Label(); got != "RKNAS-BOOT" {
		t.Errorf("Label = %q, want RKNAS-BOOT", got)
	}
	for _, dir := range append([]string{"/"}, dirs...) {
		ents, err := f.ReadDir(dir)
		if err != nil {
			t.Fatalf("ReadDir(%q): %v", dir, err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name)
			isDir := slices.Contains(dirs, path.Join(dir, e.Name))
			if e.Dir != isDir || e.Extents != nil {
				t.Errorf("ReadDir(%q): %+v: want Dir %v and no extents", dir, e, isDir)
			}
		}
		slices.Sort(names)
		if want := fatChildren(dir, dirs, files); !slices.Equal(names, want) {
			t.Errorf("ReadDir(%q) = %q\nwant %q", dir, names, want)
		}
		fi, err := f.Stat(dir)
		if err != nil || !fi.Dir || len(fi.Extents) == 0 {
			t.Errorf("Stat(%q) = %+v, %v; want a directory with extents", dir, fi, err)
		}
	}
	for _, tf := range files {
		// The path as written, without its leading slash, and in upper case.
		for _, p := range []string{tf.path, tf.path[1:], strings.ToUpper(tf.path)} {
			fi, err := f.Stat(p)
			if err != nil {
				t.Fatalf("Stat(%q): %v", p, err)
			}
			if fi.Name != path.Base(tf.path) || fi.Dir || fi.Size != int64(len(tf.data)) {
				t.Errorf("Stat(%q) = {%q %d %v}, want {%q %d false}", p, fi.Name, fi.Size, fi.Dir, path.Base(tf.path), len(tf.data))
			}
			var total int64
			for _, x := range fi.Extents {
				total += x.Length
			}
			if total != fi.Size {
				t.Errorf("Stat(%q): extents add up to %d bytes, size is %d", p, total, fi.Size)
			}
			if got := fatExtentBytes(t, r, im, fi.Extents); !bytes.Equal(got, tf.data) {
				t.Errorf("Stat(%q): the bytes at the extents are not the file's", p)
			}
		}
		got, err := f.ReadFile(tf.path, int64(len(tf.data)))
		if err != nil {
			t.Fatalf("ReadFile(%q): %v", tf.path, err)
		}
		if !bytes.Equal(got, tf.data) {
			t.Errorf("ReadFile(%q) differs from what mcopy wrote", tf.path)
		}
		if got == nil {
			t.Errorf("ReadFile(%q) = nil, want an empty slice", tf.path)
		}
	}
	// A 3 MiB file is in one piece on a fresh file system.
	if fi, err := f.Stat("/rknas/random.bin"); err != nil || len(fi.Extents) != 1 {
		t.Errorf("Stat(/rknas/random.bin) = %d extents, %v; want 1", len(fi.Extents), err)
	}
	// Short names of long-named files resolve too.
	for p, want := range map[string]string{"/MIXEDC~1.TXT": "MixedCase.Txt", "/extlinux/extlin~1.con": "extlinux.conf", fatDeepDir + "/DEEPFI~1.BIN": "deep file.bin"} {
		if fi, err := f.Stat(p); err != nil || fi.Name != want {
			t.Errorf("Stat(%q) = %q, %v; want %q", p, fi.Name, err, want)
		}
	}
	if fi, err := f.Stat("/"); err != nil || !fi.Dir || fi.Name != "/" {
		t.Errorf(`Stat("/") = %+v, %v`, fi, err)
	}

	errs := []struct {
		name string
		err  error
		want string
	}{
		{"missing in root", fatErr(f.Stat("/nope")), `no "nope" in /: file does not exist`},
		{"missing in a directory", fatErr(f.Stat("/extlinux/extlinux.bak")), `no "extlinux.bak" in /extlinux`},
		{"missing directory", fatErr(f.ReadDir("/boot")), "file does not exist"},
		{"missing file", fatErr(f.ReadFile("/boot/Image", 1<<20)), "file does not exist"},
		{"through a file", fatErr(f.Stat("/README.TXT/x")), "/README.TXT is not a directory"},
		{"too big", fatErr(f.ReadFile("/rknas/random.bin", 3<<20)), "file is 3145851 bytes, more than the 3145728 allowed"},
		{"read a directory", fatErr(f.ReadFile("/extlinux", 1<<20)), "is a directory"},
		{"list a file", fatErr(f.ReadDir("/README.TXT")), "not a directory"},
		{"too deep", fatErr(f.Stat(fatDeepDir + "/deep file.bin/x")), "path has more than 16 components"},
		{"dot dot", fatErr(f.Stat("/extlinux/../README.TXT")), `".." is not allowed`},
	}
	for _, e := range errs {
		if e.err == nil || !strings.Contains(e.err.Error(), e.want) {
			t.Errorf("%s: error %v, want %q", e.name, e.err, e.want)
		}
		if strings.Contains(e.want, "does not exist") && !errors.Is(e.err, fs.ErrNotExist) {
			t.Errorf("%s: error %v is not fs.ErrNotExist", e.name, e.err)
		}
	}
	if _, err := f.Stat(fatDeepDir + "//./deep file.bin/./"); err != nil {
		t.Errorf("Stat with empty and . components: %v", err)
	}
}

// fatErr keeps the error of a call that returns a value and an error.
func fatErr[T any](_ T, err error) error { return err }

// fatFreeBytes asks mtools how many bytes are free.
func fatFreeBytes(t testing.TB, im fatImage) int64 {
	t.Helper()
	out := fatRun(t, "mdir", "-i", im.target(), "::/")
	m := regexp.MustCompile(`([0-9][0-9 ]*) bytes free`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("mdir printed no free space:\n%s", out)
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(m[1], " ", ""), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFATFragmented(t *testing.T) {
	tests := []struct {
		name    string
		sizeMiB int64
		mkfs    []string
	}{
		{"FAT16", 8, []string{"-F", "16", "-s", "1"}},
		{"FAT32", 40, []string{"-F", "32", "-s", "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := makeFATImage(t, tt.sizeMiB, 2048, 512, tt.mkfs...)
			fatPut(t, im, nil, []fatTestFile{{"/A", fatRandom(10, 4096)}, {"/B", fatRandom(11, 8192)}, {"/C", fatRandom(12, 4096)}})
			// Fill the volume but for 16 KiB, so that after B goes the
			// free space is B's 8 KiB hole and 16 KiB elsewhere, and D
			// (20 KiB) fits only in both, whichever mtools tries first.
			// (Without the filler mtools puts D after C on FAT32, following
			// the FSInfo hint, and in the hole on FAT16.)
			free := fatFreeBytes(t, im)
			fatPut(t, im, nil, []fatTestFile{{"/FILLER", make([]byte, free-16384)}})
			fatRun(t, "mdel", "-i", im.target(), "::/B")
			d := fatRandom(13, 20480)
			fatPut(t, im, nil, []fatTestFile{{"/D", d}})

			for _, cache := range []int64{fatMaxCache, 0} {
				f, r := fatOpenImage(t, im, cache)
				fi, err := f.Stat("/D")
				if err != nil {
					t.Fatal(err)
				}
				if len(fi.Extents) < 2 {
					t.Fatalf("D has extents %+v, want it in pieces", fi.Extents)
				}
				if got := fatExtentBytes(t, r, im, fi.Extents); !bytes.Equal(got, d) {
					t.Errorf("the bytes at D's %d extents are not D", len(fi.Extents))
				}
				if got, err := f.ReadFile("/d", 20480); err != nil || !bytes.Equal(got, d) {
					t.Errorf("ReadFile(/d) = %d bytes, %v; want D", len(got), err)
				}
				if _, err := f.Stat("/B"); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Stat(/B) after mdel: %v, want fs.ErrNotExist", err)
				}
				t.Logf("cache %d: D is in %d extents: %+v", cache, len(fi.Extents), fi.Extents)
			}
		})
	}
}

// fatPatched is a reader with some bytes replaced.
type fatPatched struct {
	r       io.ReaderAt
	patches []fatPatch
}

type fatPatch struct {
	off int64
	b   []byte
}

func (p fatPatched) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.r.ReadAt(b, off)
	for _, q := range p.patches {
		lo, hi := max(off, q.off), min(off+int64(n), q.off+int64(len(q.b)))
		if lo < hi {
			copy(b[lo-off:hi-off], q.b[lo-q.off:hi-q.off])
		}
	}
	return n, err
}

func le16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// fatRawEntry returns the absolute offset of the directory entry with the
// 11-byte short name short in directory dir.
func fatRawEntry(t testing.TB, f *FAT, dir, short string) int64 {
	t.Helper()
	fi, err := f.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range fi.Extents {
		b := make([]byte, x.Length)
		if err := fatReadFull(f.r, b, x.Offset); err != nil {
			t.Fatal(err)
		}
		for i := 0; i+32 <= len(b); i += 32 {
			if string(b[i:i+11]) == short {
				return x.Offset + int64(i)
			}
		}
	}
	t.Fatalf("no entry %q in %s", short, dir)
	return 0
}

// fatClusters returns the clusters that hold exts, in order.
func fatClusters(f *FAT, exts []Extent) []uint32 {
	var cs []uint32
	for _, x := range exts {
		first := uint32((x.Offset-f.dataOff)/f.clusterSize) + 2
		for i := range uint32((x.Length + f.clusterSize - 1) / f.clusterSize) {
			cs = append(cs, first+i)
		}
	}
	return cs
}

func TestFATCorrupt(t *testing.T) {
	dirs, files := fatBootContent()
	im := makeFATImage(t, 64, 2048, 512, "-F", "32", "-s", "1", "-n", "RKNAS-BOOT")
	fatPut(t, im, dirs, files)
	clean, _ := fatOpenImage(t, im, fatMaxCache)
	boot := func(at int, b ...byte) fatPatch { return fatPatch{im.off + int64(at), b} }
	entry := func(c, v uint32) fatPatch { return fatPatch{clean.fatOff + int64(c)*4, le32(v)} }

	random, err := clean.Stat("/rknas/random.bin")
	if err != nil {
		t.Fatal(err)
	}
	rc := fatClusters(clean, random.Extents)
	if len(random.Extents) != 1 {
		t.Fatalf("random.bin is in %d pieces, want 1", len(random.Extents))
	}
	c0, cN := rc[0], rc[len(rc)-1]
	many, err := clean.Stat("/many")
	if err != nil {
		t.Fatal(err)
	}
	mc := fatClusters(clean, many.Extents)
	if len(mc) < 3 {
		t.Fatalf("/many has clusters %v, want at least 3", mc)
	}
	randomEntry := fatRawEntry(t, clean, "/rknas", "RANDOM  BIN")
	statRandom := func(f *FAT) error { _, err := f.Stat("/rknas/random.bin"); return err }
	readRandom := func(f *FAT) error { _, err := f.ReadFile("/rknas/random.bin", 4<<20); return err }
	listMany := func(f *FAT) error { _, err := f.ReadDir("/many"); return err }

	tests := []struct {
		name    string
		patches []fatPatch
		size    int64            // 0: the whole file system
		op      func(*FAT) error // nil: OpenFAT must fail
		want    string
	}{
		{"bad signature", []fatPatch{boot(510, 0x55, 0xAB)}, 0, nil, "boot sector signature is 0x55AB, want 0x55AA"},
		{"bytes per sector 0", []fatPatch{boot(11, le16(0)...)}, 0, nil, "bytes per sector is 0"},
		{"bytes per sector 513", []fatPatch{boot(11, le16(513)...)}, 0, nil, "bytes per sector is 513"},
		{"bytes per sector 8192", []fatPatch{boot(11, le16(8192)...)}, 0, nil, "bytes per sector is 8192"},
		{"sectors per cluster 0", []fatPatch{boot(13, 0)}, 0, nil, "sectors per cluster is 0"},
		{"sectors per cluster 3", []fatPatch{boot(13, 3)}, 0, nil, "sectors per cluster is 3"},
		{"reserved sectors 0", []fatPatch{boot(14, 0, 0)}, 0, nil, "reserved sectors is 0"},
		{"no FATs", []fatPatch{boot(16, 0)}, 0, nil, "number of FATs is 0"},
		{"total sectors 0", []fatPatch{boot(32, le32(0)...)}, 0, nil, "total sectors is 0"},
		{"FAT size 0", []fatPatch{boot(36, le32(0)...)}, 0, nil, "FAT size is 0 sectors"},
		{"FAT too small", []fatPatch{boot(36, le32(16)...)}, 0, nil, "FAT size is 16 sectors (8192 bytes), too small"},
		{"FATs fill the volume", []fatPatch{boot(36, le32(1<<20)...)}, 0, nil, "data region starts at sector 2097184"},
		{"truncated image", nil, 32 << 20, nil, "total sectors is 129024 (66060288 bytes), more than the 33554432 bytes given"},
		{"smaller than a boot sector", nil, 511, nil, "size 511 is smaller than a boot sector"},
		{"FAT16 cluster count on a FAT32 layout", []fatPatch{boot(13, 4)}, 0, nil, "make this FAT16"},
		{"root entries on FAT32", []fatPatch{boot(17, le16(512)...)}, 0, nil, "root entries is 512, want 0 on FAT32"},
		{"root cluster out of range", []fatPatch{boot(44, le32(clean.clusters+2)...)}, 0, nil, fmt.Sprintf("root cluster is %d, want 2..%d", clean.clusters+2, clean.clusters+1)},
		{"root cluster 0", []fatPatch{boot(44, le32(0)...)}, 0, nil, "root cluster is 0"},
		{"active FAT out of range", []fatPatch{boot(40, le16(0x83)...)}, 0, nil, "active FAT is 3 (extended flags 0x0083), but number of FATs is 2"},
		{"root directory loops", []fatPatch{entry(2, 2)}, 0, nil, "root directory: cluster chain of / loops at cluster 2"},
		{"file loops back", []fatPatch{entry(c0+5, c0+2)}, 0, statRandom, fmt.Sprintf("cluster chain of /rknas/random.bin loops at cluster %d", c0+2)},
		{"file points to itself", []fatPatch{entry(c0, c0)}, 0, readRandom, fmt.Sprintf("loops at cluster %d", c0)},
		{"file loops after its last cluster", []fatPatch{entry(cN, c0)}, 0, statRandom, fmt.Sprintf("loops at cluster %d", c0)},
		{"directory loops", []fatPatch{entry(mc[len(mc)-1], mc[1])}, 0, listMany, fmt.Sprintf("cluster chain of /many loops at cluster %d", mc[1])},
		{"directory longer than 65536 entries", []fatPatch{entry(mc[len(mc)-1], c0)}, 0, listMany, "directory /many is longer than 2097152 bytes (65536 entries)"},
		{"cluster out of range", []fatPatch{entry(c0+1, clean.clusters+2)}, 0, readRandom, fmt.Sprintf("cluster %d points to cluster %d, out of range 2..%d", c0+1, clean.clusters+2, clean.clusters+1)},
		{"cluster 1 in a chain", []fatPatch{entry(c0+1, 1)}, 0, statRandom, "points to cluster 1, out of range"},
		{"free cluster in a chain", []fatPatch{entry(c0+1, 0)}, 0, statRandom, fmt.Sprintf("cluster %d is marked free", c0+1)},
		{"bad cluster in a chain", []fatPatch{entry(c0+1, 0x0FFFFFF7)}, 0, readRandom, fmt.Sprintf("cluster %d is marked bad", c0+1)},
		{"chain shorter than the size", []fatPatch{entry(c0+1, 0x0FFFFFFF)}, 0, readRandom, "/rknas/random.bin is 3145851 bytes, but its cluster chain has only 2 clusters of 512 bytes"},
		{"size larger than the chain", []fatPatch{{randomEntry + 28, le32(4 << 20)}}, 0, statRandom, "is 4194304 bytes, but its cluster chain has only 6145 clusters"},
		{"first cluster out of range", []fatPatch{{randomEntry + 20, le16(0xFFFF)}}, 0, statRandom, fmt.Sprintf("first cluster %d is out of range", 0xFFFF0000|c0)},
		{"file with bytes but no cluster", []fatPatch{{randomEntry + 20, le16(0)}, {randomEntry + 26, le16(0)}}, 0, readRandom, "first cluster 0 is out of range"},
		{"directory with no cluster", []fatPatch{{fatRawEntry(t, clean, "/", "MANY       ") + 26, le16(0)}, {fatRawEntry(t, clean, "/", "MANY       ") + 20, le16(0)}}, 0, listMany, "cluster chain of /many: first cluster 0 is out of range"},
	}
	r, err := os.Open(im.path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := im.size
			if tt.size != 0 {
				size = tt.size
			}
			for _, cache := range []int64{fatMaxCache, 0} {
				f, err := openFAT(fatPatched{r, tt.patches}, im.off, size, cache)
				if tt.op == nil {
					if err == nil || !strings.Contains(err.Error(), tt.want) {
						t.Fatalf("cache %d: OpenFAT error %v, want %q", cache, err, tt.want)
					}
					continue
				}
				if err != nil {
					t.Fatalf("cache %d: OpenFAT: %v", cache, err)
				}
				if err := tt.op(f); err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("cache %d: error %v, want %q", cache, err, tt.want)
				}
			}
		})
	}
}

func TestFATRefuses(t *testing.T) {
	tests := []struct {
		name    string
		sizeMiB int64
		mkfs    []string
		want    string
	}{
		{"FAT12", 1, []string{"-F", "12"}, "502 clusters make this FAT12, which is not supported"},
		// mkfs.vfat only warns that this is "less then suggested minimum";
		// by the specification's count it is FAT16 (mtools then finds "No
		// directory slots"), though Linux and U-Boot go by the BPB's layout.
		{"FAT32 with too few clusters", 64, []string{"-F", "32", "-s", "2"}, "FAT size (16-bit field) is 0 as on FAT32, but 65012 clusters make this FAT16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := makeFATImage(t, tt.sizeMiB, 0, 512, tt.mkfs...)
			r, err := os.Open(im.path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := OpenFAT(r, 0, im.size); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("OpenFAT: %v, want %q", err, tt.want)
			}
		})
	}
}

// TestFATLongNames damages long-name entries; the file stays reachable by
// its short name.
func TestFATLongNames(t *testing.T) {
	im := makeFATImage(t, 64, 2048, 512, "-F", "32", "-n", "RKNAS-BOOT")
	conf := []byte("label rknas\n")
	long := "a name of more than twenty-six characters.conf" // four long-name entries
	fatPut(t, im, []string{"/extlinux"}, []fatTestFile{{"/extlinux/extlinux.conf", conf}, {"/extlinux/" + long, conf}})
	clean, _ := fatOpenImage(t, im, fatMaxCache)
	short := fatRawEntry(t, clean, "/extlinux", "EXTLIN~1CON") // "extlinux.conf" is 13 characters: one long-name entry, no terminator
	lfn := short - 32
	longShort := fatRawEntry(t, clean, "/extlinux", "ANAMEO~1CON")
	r, err := os.Open(im.path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var b [1]byte
	if _, err := r.ReadAt(b[:], lfn); err != nil || b[0] != 0x41 {
		t.Fatalf("the entry before EXTLIN~1CON starts with %#x, %v; want 0x41", b[0], err)
	}

	tests := []struct {
		name    string
		patches []fatPatch
		want    []string
	}{
		{"intact", nil, []string{long, "extlinux.conf"}},
		{"checksum does not match", []fatPatch{{lfn + 13, []byte{0}}}, []string{long, "EXTLIN~1.CON"}},
		{"orphan: first piece lost its mark", []fatPatch{{lfn, []byte{0x01}}}, []string{long, "EXTLIN~1.CON"}},
		{"deleted piece", []fatPatch{{longShort - 4*32, []byte{0xE5}}}, []string{"ANAMEO~1.CON", "extlinux.conf"}},
		{"pieces out of order", []fatPatch{{longShort - 2*32, []byte{0x03}}}, []string{"ANAMEO~1.CON", "extlinux.conf"}},
		{"sequence number 0", []fatPatch{{longShort - 32, []byte{0x00 | 0x40}}}, []string{"ANAMEO~1.CON", "extlinux.conf"}},
		{"a slash in the long name", []fatPatch{{lfn + 1, le16('/')}}, []string{long, "EXTLIN~1.CON"}},
		{"empty long name", []fatPatch{{lfn + 1, le16(0)}}, []string{long, "EXTLIN~1.CON"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := OpenFAT(fatPatched{r, tt.patches}, im.off, im.size)
			if err != nil {
				t.Fatal(err)
			}
			ents, err := f.ReadDir("/extlinux")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				names = append(names, e.Name)
			}
			slices.Sort(names)
			slices.Sort(tt.want)
			if !slices.Equal(names, tt.want) {
				t.Fatalf("ReadDir = %q, want %q", names, tt.want)
			}
			for _, n := range names {
				if got, err := f.ReadFile("/extlinux/"+n, 100); err != nil || !bytes.Equal(got, conf) {
					t.Errorf("ReadFile(%q) = %q, %v", n, got, err)
				}
			}
			if _, err := f.Stat("/extlinux/extlinux.conf"); (err == nil) != slices.Contains(tt.want, "extlinux.conf") {
				t.Errorf("Stat(extlinux.conf): %v", err)
			}
		})
	}
}

func TestFATChecksum(t *testing.T) {
	// From the FAT specification's algorithm, computed independently.
	for _, tt := range []struct {
		name string
		want byte
	}{
		{"EXTLIN~1CON", fatChecksumRef("EXTLIN~1CON")},
		{"README  TXT", fatChecksumRef("README  TXT")},
		{"           ", fatChecksumRef("           ")},
	} {
		if got := fatChecksum([]byte(tt.name)); got != tt.want {
			t.Errorf("fatChecksum(%q) = %#x, want %#x", tt.name, got, tt.want)
		}
	}
}

// fatChecksumRef is the specification's ChkSum, written as it is there.
func fatChecksumRef(name string) byte {
	var sum byte
	for i := 0; i < 11; i++ {
		var rot byte
		if sum&1 != 0 {
			rot = 0x80
		}
		sum = rot + (sum >> 1) + name[i]
	}
	return sum
}

// The fuzz target reads each input two ways, both over a 64 MiB image of
// zeros: as the image's first bytes (a small FAT16 image with its trailing
// zeros cut), and as a list of runs, each a 4-byte little-endian offset, a
// 2-byte length and that many bytes. The runs let a few KiB describe a
// FAT32 file system, whose FAT alone is at least 256 KiB, mostly zeros; the
// fuzzer slows to a crawl on inputs that large.
const fatFuzzSize = 64 << 20

// fatFuzzImage is zeros up to size with runs laid over them, later runs
// winning. It remembers a read outside [0, size), which OpenFAT's checks
// should make impossible.
type fatFuzzImage struct {
	runs    []fatPatch
	size    int64
	outside string
}

func (z *fatFuzzImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > z.size-int64(len(p)) {
		z.outside = fmt.Sprintf("read of %d bytes at %d, outside [0, %d)", len(p), off, z.size)
		return 0, io.EOF
	}
	clear(p)
	return fatPatched{fatZeros{}, z.runs}.ReadAt(p, off)
}

type fatZeros struct{}

func (fatZeros) ReadAt(p []byte, _ int64) (int, error) { return len(p), nil }

// fatDecodeRuns reads the run-list form of a fuzz input.
func fatDecodeRuns(data []byte) []fatPatch {
	var runs []fatPatch
	for len(data) >= 6 {
		off, n := int64(binary.LittleEndian.Uint32(data)), int(binary.LittleEndian.Uint16(data[4:]))
		data = data[6:]
		n = min(n, len(data))
		runs = append(runs, fatPatch{off, data[:n]})
		data = data[n:]
	}
	return runs
}

// fatEncodeRuns writes the non-zero parts of img in run-list form.
func fatEncodeRuns(img []byte) []byte {
	var out []byte
	for i := 0; i < len(img); {
		if img[i] == 0 {
			i++
			continue
		}
		// A run ends at 16 zeros in a row, or at 65535 bytes.
		j, zeros := i, 0
		for j < len(img) && j-i < 0xFFFF && zeros < 16 {
			if img[j] == 0 {
				zeros++
			} else {
				zeros = 0
			}
			j++
		}
		j -= zeros
		out = binary.LittleEndian.AppendUint32(out, uint32(i))
		out = binary.LittleEndian.AppendUint16(out, uint16(j-i))
		out = append(out, img[i:j]...)
		i = j
	}
	return out
}

// fatFuzzSeeds makes small real file systems with the tools: a FAT16 image
// with its trailing zeros cut, and FAT16 and FAT32 in run-list form.
func fatFuzzSeeds(t testing.TB) [][]byte {
	content := []fatTestFile{
		{"/extlinux/extlinux.conf", []byte("label rknas\n\tkernel /Image\n")},
		{"/README.TXT", []byte("8.3\n")},
		{"/MixedCase.Txt", fatRandom(4, 600)},
		{"/empty", nil},
		{"/sub/dir/deep.bin", fatRandom(5, 1100)},
	}
	var seeds [][]byte
	for _, mkfs := range [][]string{
		{"-F", "16", "-s", "1", "-f", "1", "-r", "64", "-n", "RKNAS-BOOT"}, // 3 MiB: mkfs.vfat refuses a FAT16 of 1 MiB
		{"-F", "32", "-s", "1", "-f", "1", "-n", "RKNAS-BOOT"},
	} {
		sizeMiB := int64(3)
		if mkfs[1] == "32" {
			sizeMiB = 34
		}
		im := makeFATImage(t, sizeMiB, 0, 512, mkfs...)
		fatPut(t, im, []string{"/extlinux", "/sub", "/sub/dir"}, content)
		b, err := os.ReadFile(im.path)
		if err != nil {
			t.Fatal(err)
		}
		if mkfs[1] == "16" {
			seeds = append(seeds, bytes.TrimRight(b, "\x00"))
		}
		seeds = append(seeds, fatEncodeRuns(b))
	}
	return seeds
}

func FuzzOpenFAT(f *testing.F) {
	seeds := fatFuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	// The seeds must be what they claim: file systems that open, in both
	// forms.
	for i, s := range seeds {
		img := &fatFuzzImage{runs: []fatPatch{{0, s}}, size: fatFuzzSize}
		if i > 0 {
			img.runs = fatDecodeRuns(s)
		}
		fsys, err := OpenFAT(img, 0, img.size)
		if err != nil {
			f.Fatalf("seed %d (%d bytes): %v", i, len(s), err)
		}
		if b, err := fsys.ReadFile("/sub/dir/deep.bin", 1<<20); err != nil || !bytes.Equal(b, fatRandom(5, 1100)) {
			f.Fatalf("seed %d (%d bytes): deep.bin: %v", i, len(s), err)
		}
		f.Logf("seed %d: %d bytes, FAT32 %v", i, len(s), fsys.fat32)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, img := range []*fatFuzzImage{
			{runs: []fatPatch{{0, data}}, size: int64(len(data))},
			{runs: []fatPatch{{0, data}}, size: fatFuzzSize},
			{runs: fatDecodeRuns(data), size: fatFuzzSize},
		} {
			fuzzFAT(t, img)
			if img.outside != "" {
				t.Fatal(img.outside)
			}
		}
	})
}

func fuzzFAT(t *testing.T, r *fatFuzzImage) {
	f, err := OpenFAT(r, 0, r.size)
	if err != nil {
		return
	}
	_ = f.Label()
	ents, err := f.ReadDir("/")
	if err != nil {
		return
	}
	for _, e := range ents[:min(len(ents), 64)] {
		p := "/" + e.Name
		if e.Dir {
			_, _ = f.ReadDir(p)
			continue
		}
		fi, err := f.Stat(p)
		if err != nil || fi.Dir {
			continue // another entry of the same name, or a name with a slash in it
		}
		var total int64
		for _, x := range fi.Extents {
			if x.Length <= 0 || x.Offset < 0 || x.Offset+x.Length > r.size {
				t.Fatalf("%s: extent %+v outside [0, %d)", p, x, r.size)
			}
			total += x.Length
		}
		if total != fi.Size {
			t.Fatalf("%s: extents add up to %d, size is %d", p, total, fi.Size)
		}
		b, err := f.ReadFile(p, 1<<20)
		if err != nil {
			continue
		}
		if int64(len(b)) != fi.Size {
			t.Fatalf("%s: ReadFile gave %d bytes, Stat says %d", p, len(b), fi.Size)
		}
	}
}

func TestFATLabel(t *testing.T) {
	named := makeFATImage(t, 64, 2048, 512, "-F", "32", "-n", "RKNAS-BOOT")
	unnamed := makeFATImage(t, 32, 0, 512, "-F", "16")
	f, _ := fatOpenImage(t, named, fatMaxCache)
	label := fatRawEntry(t, f, "/", "RKNAS-BOOT ")
	tests := []struct {
		name    string
		im      fatImage
		patches []fatPatch
		want    string
	}{
		{"root entry and boot sector", named, nil, "RKNAS-BOOT"},
		{"the root entry wins", named, []fatPatch{{label, []byte("OTHER      ")}}, "OTHER"},
		{"deleted root entry: the boot sector's", named, []fatPatch{{label, []byte{0xE5}}}, "RKNAS-BOOT"},
		{"code page 850", named, []fatPatch{{label, []byte("GR\x9a\xe1E      ")}}, "GRÜßE"},
		{"no label", unnamed, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := os.Open(tt.im.path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			f, err := OpenFAT(fatPatched{r, tt.patches}, tt.im.off, tt.im.size)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Label(); got != tt.want {
				t.Errorf("Label = %q, want %q", got, tt.want)
			}
		})
	}
}

// fatFailing fails every read that touches [from, to).
type fatFailing struct {
	r        io.ReaderAt
	from, to int64
}

func (f fatFailing) ReadAt(p []byte, off int64) (int, error) {
	if off < f.to && off+int64(len(p)) > f.from {
		return 0, syscall.EIO
	}
	return f.r.ReadAt(p, off)
}

func TestFATReadErrors(t *testing.T) {
	im := makeFATImage(t, 64, 2048, 512, "-F", "32", "-n", "RKNAS-BOOT")
	data := fatRandom(6, 100000)
	fatPut(t, im, nil, []fatTestFile{{"/data.bin", data}})
	clean, r := fatOpenImage(t, im, fatMaxCache)
	fi, err := clean.Stat("/data.bin")
	if err != nil {
		t.Fatal(err)
	}
	c0 := fatClusters(clean, fi.Extents)[0]
	tests := []struct {
		name     string
		from, to int64
		cache    int64
		op       func(*FAT) error // nil: OpenFAT fails
		want     string
	}{
		{"boot sector", im.off, im.off + 1, fatMaxCache, nil, fmt.Sprintf("open FAT: read boot sector at byte %d", im.off)},
		{"FAT", clean.fatOff + 100, clean.fatOff + 101, fatMaxCache, nil, fmt.Sprintf("read FAT at byte %d", clean.fatOff)},
		{"root directory", clean.dataOff, clean.dataOff + 1, fatMaxCache, nil, "root directory: read directory at byte"},
		{"FAT entry on demand", clean.fatOff + int64(c0)*4, clean.fatOff + int64(c0)*4 + 4, 0,
			func(f *FAT) error { _, err := f.Stat("/data.bin"); return err }, fmt.Sprintf("read FAT entry %d", c0)},
		{"file data", fi.Extents[0].Offset + 5000, fi.Extents[0].Offset + 5001, fatMaxCache,
			func(f *FAT) error { _, err := f.ReadFile("/data.bin", 1<<20); return err }, "diskimage: FAT read /data.bin at byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := openFAT(fatFailing{r, tt.from, tt.to}, im.off, im.size, tt.cache)
			if tt.op != nil {
				if err != nil {
					t.Fatal(err)
				}
				err = tt.op(f)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, syscall.EIO) {
				t.Fatalf("error %v, want %q wrapping EIO", err, tt.want)
			}
		})
	}
	if got, err := clean.ReadFile("/data.bin", 1<<20); err != nil || !bytes.Equal(got, data) {
		t.Errorf("ReadFile without failures: %v", err)
	}
}

// TestFATLoopShapes checks loop detection on synthetic FATs: a tail of mu
// clusters, then a loop of lam, including loops through the whole volume,
// which Brent's algorithm alone would find only after more steps than there
// are clusters.
func TestFATLoopShapes(t *testing.T) {
	for _, mu := range []uint32{0, 1, 5, 100} {
		for _, lam := range []uint32{1, 2, 3, 7, 64, 1000} {
			for _, spare := range []uint32{0, 9} {
				clusters := mu + lam + spare
				f := &FAT{fat32: true, clusters: clusters, clusterSize: 512, fat: make([]byte, (clusters+2)*4)}
				// The chain is 2, 3, ..., 2+mu+lam-1, then back to 2+mu.
				last := 2 + mu + lam - 1
				for c := uint32(2); c < last; c++ {
					binary.LittleEndian.PutUint32(f.fat[c*4:], c+1)
				}
				binary.LittleEndian.PutUint32(f.fat[last*4:], 2+mu)
				visits := uint32(0)
				err := f.walk("x", 2, func(uint32) error { visits++; return nil })
				want := fmt.Sprintf("cluster chain of x loops at cluster %d", 2+mu)
				if err == nil || err.Error() != want {
					t.Errorf("mu %d, lam %d, clusters %d: error %v, want %q", mu, lam, clusters, err, want)
				}
				if visits > clusters {
					t.Errorf("mu %d, lam %d: %d visits, more than the %d clusters", mu, lam, visits, clusters)
				}
			}
		}
	}
}
