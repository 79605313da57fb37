package flash

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rknas/firmware/board/diskimage"
	"github.com/rknas/firmware/board/provision"
)

// Image is a firmware image opened for writing to a medium: its partition
// table, manifest, and where in it the per-device files live.
type Image struct {
	Path     string
	Size     int64
	Table    *diskimage.Table
	Manifest *diskimage.Manifest
	r        io.ReaderAt
	closer   io.Closer
	boot     *diskimage.FAT
	// Absolute byte ranges of the files rewritten for each device.
	password, hostname diskimage.Extent
	diskArg            diskimage.Extent // the GUID after "rknas.disk=" in extlinux.conf
}

// ErrBadImage says a file is not a firmware image, or a damaged one.
var ErrBadImage = errors.New("not a usable firmware image")

// OpenImage opens and checks an image file: its GPT, its boot partition and
// manifest, the per-device files. When IMAGE.sha256 lies beside it, the
// image's hash must match (a damaged download is refused before a byte is
// written).
func OpenImage(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("flash: open image: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flash: open image: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("flash: %s: %w: not a regular file", path, ErrBadImage)
	}
	img, err := ReadImage(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flash: %s: %w", path, err)
	}
	img.Path, img.closer = path, f
	if err := img.checkSum(); err != nil {
		f.Close()
		return nil, err
	}
	return img, nil
}

// Close closes the image file.
func (img *Image) Close() error {
	if img.closer == nil {
		return nil
	}
	return img.closer.Close()
}

// ReadImage checks an image held by r (size bytes): a medium in the layout of
// package diskimage, whether an image file or a disk the firmware runs from.
func ReadImage(r io.ReaderAt, size int64) (*Image, error) {
	if size%diskimage.SectorSize != 0 || size < diskimage.ImageSectors*diskimage.SectorSize/2 {
		return nil, fmt.Errorf("%w: %d bytes is not a whole number of sectors of a plausible image size", ErrBadImage, size)
	}
	t, _, err := diskimage.ReadGPT(r, uint64(size/diskimage.SectorSize))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	boot, ok := t.Find(diskimage.BootLabel)
	if !ok || boot.Number != diskimage.BootNumber || boot.First != diskimage.BootStart {
		return nil, fmt.Errorf("%w: no %s partition 1 at sector %d", ErrBadImage, diskimage.BootLabel, diskimage.BootStart)
	}
	state, ok := t.Find(diskimage.StateLabel)
	if !ok || state.Number != diskimage.StateNumber || state.First != boot.Last+1 {
		return nil, fmt.Errorf("%w: no %s partition 2 after the boot partition", ErrBadImage, diskimage.StateLabel)
	}
	fat, err := diskimage.OpenFAT(r, int64(boot.First)*diskimage.SectorSize, int64(boot.Sectors())*diskimage.SectorSize)
	if err != nil {
		return nil, fmt.Errorf("%w: boot partition: %v", ErrBadImage, err)
	}
	mb, err := fat.ReadFile(diskimage.ManifestFile, 64<<10)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	m, err := diskimage.ParseManifest(mb)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	img := &Image{Size: size, Table: t, Manifest: m, r: r, boot: fat}
	if img.password, err = fixedFile(fat, provision.PasswordFile, provision.PasswordFileSize); err != nil {
		return nil, err
	}
	if img.hostname, err = fixedFile(fat, provision.HostnameFile, provision.HostnameFileSize); err != nil {
		return nil, err
	}
	if img.diskArg, err = diskArgExtent(fat, t.DiskID); err != nil {
		return nil, err
	}
	return img, nil
}

// fixedFile returns where a fixed-size provisioning file's bytes are; it
// must be in one piece, as a fresh mcopy writes a small file.
func fixedFile(fat *diskimage.FAT, name string, size int64) (diskimage.Extent, error) {
	st, err := fat.Stat(name)
	if err != nil {
		return diskimage.Extent{}, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	if st.Size != size || len(st.Extents) != 1 {
		return diskimage.Extent{}, fmt.Errorf("%w: %s is %d bytes in %d pieces, want %d in one", ErrBadImage, name, st.Size, len(st.Extents), size)
	}
	return st.Extents[0], nil
}

// diskArgExtent finds the GUID after "rknas.disk=" in extlinux.conf; it must
// be the image's own disk GUID.
func diskArgExtent(fat *diskimage.FAT, disk diskimage.GUID) (diskimage.Extent, error) {
	st, err := fat.Stat(diskimage.ExtlinuxFile)
	if err != nil {
		return diskimage.Extent{}, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	b, err := fat.ReadFile(diskimage.ExtlinuxFile, 64<<10)
	if err != nil {
		return diskimage.Extent{}, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	key := []byte(diskimage.DiskArg + "=")
	i := bytes.Index(b, key)
	if i < 0 || bytes.Count(b, key) != 1 {
		return diskimage.Extent{}, fmt.Errorf("%w: %s must name %s exactly once", ErrBadImage, diskimage.ExtlinuxFile, diskimage.DiskArg)
	}
	i += len(key)
	const guidLen = 36
	if i+guidLen > len(b) || !strings.EqualFold(string(b[i:i+guidLen]), disk.String()) {
		return diskimage.Extent{}, fmt.Errorf("%w: %s does not name the image's disk GUID %s", ErrBadImage, diskimage.ExtlinuxFile, disk)
	}
	// Map the file offset to the medium through the file's extents.
	off := int64(i)
	for _, e := range st.Extents {
		if off < e.Length {
			if off+guidLen > e.Length {
				return diskimage.Extent{}, fmt.Errorf("%w: the disk GUID in %s spans two clusters", ErrBadImage, diskimage.ExtlinuxFile)
			}
			return diskimage.Extent{Offset: e.Offset + off, Length: guidLen}, nil
		}
		off -= e.Length
	}
	return diskimage.Extent{}, fmt.Errorf("%w: %s is shorter than its size", ErrBadImage, diskimage.ExtlinuxFile)
}

// ReadBootFile reads a file of the boot partition (at most 1 MiB).
func (img *Image) ReadBootFile(name string) ([]byte, error) {
	return img.boot.ReadFile(name, 1<<20)
}

// checkSum compares the image with IMAGE.sha256 when that file exists.
func (img *Image) checkSum() error {
	b, err := os.ReadFile(img.Path + ".sha256")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("flash: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	want, name, _ := strings.Cut(strings.TrimSpace(line), " ")
	name = strings.TrimPrefix(strings.TrimSpace(name), "*")
	if len(want) != 64 {
		return fmt.Errorf("flash: %s.sha256: want \"HASH  NAME\"", img.Path)
	}
	if n := strings.TrimSpace(name); n != "" && n != filepath.Base(img.Path) {
		return fmt.Errorf("flash: %s.sha256 is for %q, not %q", img.Path, n, filepath.Base(img.Path))
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(img.r, 0, img.Size)); err != nil {
		return fmt.Errorf("flash: hash image: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, want) {
		return fmt.Errorf("flash: %s: %w: its SHA-256 is %s, %s.sha256 says %s (damaged download?)", img.Path, ErrBadImage, got, img.Path, want)
	}
	return nil
}

// Personal is what makes one medium its own: the device's default admin
// password and hostname, and fresh GUIDs for its partition table (two
// cards flashed from one image must not look like the same disk).
type Personal struct {
	Password, Hostname string
	Disk, Boot, State  diskimage.GUID
}

// NewPersonal makes the values for one device: the password and hostname
// given, or new random ones when empty, and new GUIDs.
func NewPersonal(password, hostname string) (Personal, error) {
	var p Personal
	var err error
	if p.Password = password; p.Password == "" {
		if p.Password, err = provision.NewPassword(); err != nil {
			return p, err
		}
	}
	if err := provision.CheckPassword(p.Password); err != nil {
		return p, err
	}
	if p.Hostname = hostname; p.Hostname == "" {
		if p.Hostname, err = provision.NewHostname(); err != nil {
			return p, err
		}
	}
	if err := provision.CheckHostname(p.Hostname); err != nil {
		return p, err
	}
	for _, g := range []*diskimage.GUID{&p.Disk, &p.Boot, &p.State} {
		if *g, err = diskimage.NewGUID(); err != nil {
			return p, err
		}
	}
	return p, nil
}
