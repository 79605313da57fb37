package flash

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// align is the buffer alignment O_DIRECT needs (a page covers every
// logical block size).
const align = 4096

// NewBuffers returns two chunk-sized buffers aligned for O_DIRECT.
func NewBuffers() ([2][]byte, error) {
	var bufs [2][]byte
	for i := range bufs {
		b, err := unix.Mmap(-1, 0, chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return bufs, fmt.Errorf("flash: buffer: %w", err)
		}
		bufs[i] = b
	}
	return bufs, nil
}

func aligned(b []byte) bool {
	return len(b) == 0 || uintptr(unsafe.Pointer(&b[0]))%align == 0 && len(b)%512 == 0
}

// device is a block device opened with O_DIRECT: unaligned buffers are
// copied through an aligned scratch buffer.
type device struct {
	f       *os.File
	scratch []byte
}

// OpenDevice opens a whole block device for writing with O_EXCL (the kernel
// refuses a device that is mounted, has a mounted partition or is held by
// another driver) and O_DIRECT (writes and the read-back go to the medium,
// not the page cache). It returns the device's size in bytes.
func OpenDevice(path string) (Medium, int64, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_EXCL|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, 0, fmt.Errorf("flash: open %s: %w (the kernel says it is in use: mounted, swap, RAID or LVM)", path, err)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("flash: open %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	ss, err := unix.IoctlGetInt(fd, unix.BLKSSZGET)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("flash: %s: logical block size: %w", path, err)
	}
	if ss != 512 {
		f.Close()
		return nil, 0, fmt.Errorf("flash: %s has %d-byte logical blocks; the image is laid out in 512-byte sectors, as TF cards, USB readers and eMMC use", path, ss)
	}
	var size uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); errno != 0 {
		f.Close()
		return nil, 0, fmt.Errorf("flash: %s: size: %w", path, errno)
	}
	scratch, err := unix.Mmap(-1, 0, chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("flash: buffer: %w", err)
	}
	return &device{f: f, scratch: scratch}, int64(size), nil
}

// OpenTarget opens the disk t describes, as OpenDevice does, and makes sure
// it is still that disk: between the checks and the open (the operator's
// confirmation may take minutes) the path may have come to name another
// disk, one the checks would refuse (a card pulled, another disk come up
// under its name).
func OpenTarget(t *Target) (Medium, int64, error) {
	m, size, err := OpenDevice(t.Path)
	if err != nil {
		return nil, 0, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(m.(*device).f.Fd()), &st); err != nil {
		m.Close()
		return nil, 0, fmt.Errorf("flash: %s: %w", t.Path, err)
	}
	rdev := uint64(st.Rdev) // uint32 on some architectures
	if dev := fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev)); dev != t.Dev || size != t.Size {
		m.Close()
		return nil, 0, fmt.Errorf("flash: %s is no longer the disk that was checked (%s, %d bytes; now %s, %d bytes): nothing was written; start again",
			t.Path, t.Dev, t.Size, dev, size)
	}
	return m, size, nil
}

func (d *device) WriteAt(p []byte, off int64) (int, error) {
	if aligned(p) {
		return d.f.WriteAt(p, off)
	}
	n := 0
	for n < len(p) {
		k := copy(d.scratch, p[n:])
		if k%512 != 0 {
			return n, fmt.Errorf("flash: write of %d bytes is not a whole number of sectors", len(p))
		}
		if _, err := d.f.WriteAt(d.scratch[:k], off+int64(n)); err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

func (d *device) ReadAt(p []byte, off int64) (int, error) {
	if aligned(p) {
		return d.f.ReadAt(p, off)
	}
	n := 0
	for n < len(p) {
		k := min(len(d.scratch), len(p)-n)
		if k%512 != 0 {
			return n, fmt.Errorf("flash: read of %d bytes is not a whole number of sectors", len(p))
		}
		if _, err := d.f.ReadAt(d.scratch[:k], off+int64(n)); err != nil {
			return n, err
		}
		copy(p[n:], d.scratch[:k])
		n += k
	}
	return n, nil
}

func (d *device) Sync() error { return d.f.Sync() }

func (d *device) Close() error {
	err := d.f.Close()
	if e := unix.Munmap(d.scratch); err == nil {
		err = e
	}
	return err
}

// RereadPartitions asks the kernel to read the new partition table, so the
// partitions appear (BLKRRPART); it fails harmlessly when something holds
// the disk.
func RereadPartitions(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKRRPART, 0); errno != 0 {
		return fmt.Errorf("flash: re-read the partition table of %s: %w", path, errno)
	}
	return nil
}
