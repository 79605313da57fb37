package diskimage

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl numbers not in x/sys/unix.
const (
	ext4IOCResizeFS = 0x40086610 // _IOW('f', 16, __u64)
	fiFreeze        = 0xC0045877 // _IOWR('X', 119, int)
	fiThaw          = 0xC0045878 // _IOWR('X', 120, int)
)

// ResizePartition tells the kernel that partition number of the disk open
// as disk now spans [first, last] (BLKPG_RESIZE_PARTITION): the partition
// table on the medium was rewritten, and re-reading it is not possible
// while a partition is in use.
func ResizePartition(disk *os.File, number int, first, last uint64) error {
	p := unix.BlkpgPartition{
		Start:  int64(first) * SectorSize,
		Length: int64(last-first+1) * SectorSize,
		Pno:    int32(number),
	}
	arg := unix.BlkpgIoctlArg{
		Op:      unix.BLKPG_RESIZE_PARTITION,
		Datalen: int32(unsafe.Sizeof(p)),
		Data:    (*byte)(unsafe.Pointer(&p)),
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, disk.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg))); errno != 0 {
		return fmt.Errorf("diskimage: resize partition %d of %s: %w", number, disk.Name(), errno)
	}
	return nil
}

// ResizeFS grows the mounted ext4 file system at mountpoint to blocks
// blocks of its block size (EXT4_IOC_RESIZE_FS: online resize, done by the
// kernel, journaled like any other change).
func ResizeFS(mountpoint string, blocks uint64) error {
	f, err := os.Open(mountpoint)
	if err != nil {
		return fmt.Errorf("diskimage: resize %s: %w", mountpoint, err)
	}
	defer f.Close()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), ext4IOCResizeFS, uintptr(unsafe.Pointer(&blocks))); errno != 0 {
		return fmt.Errorf("diskimage: resize %s to %d blocks: %w", mountpoint, blocks, errno)
	}
	return nil
}

// Freeze stops writes to the file system mounted at mountpoint and flushes
// it, so its files can be copied consistently; Thaw lets writes go on.
// Writers block (they do not fail) while it is frozen.
func Freeze(mountpoint string) error { return fsIoctl(mountpoint, fiFreeze, "freeze") }

// Thaw undoes Freeze.
func Thaw(mountpoint string) error { return fsIoctl(mountpoint, fiThaw, "thaw") }

func fsIoctl(mountpoint string, req uintptr, what string) error {
	f, err := os.Open(mountpoint)
	if err != nil {
		return fmt.Errorf("diskimage: %s %s: %w", what, mountpoint, err)
	}
	defer f.Close()
	var zero int32
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(unsafe.Pointer(&zero))); errno != 0 {
		return fmt.Errorf("diskimage: %s %s: %w", what, mountpoint, errno)
	}
	return nil
}
