package flash

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// attachLoop makes a loop device showing size bytes of the block device dev
// from byte off (LOOP_CONFIGURE). It lets the installer fill the new state
// partition before the partition table that makes it visible is written.
// The loop device goes away by itself once nothing uses it (autoclear):
// the caller mounts it and closes the returned file.
func attachLoop(dev string, off, size int64) (string, *os.File, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", nil, fmt.Errorf("loop: %w (is the loop module loaded?)", err)
	}
	defer ctl.Close()
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		return "", nil, fmt.Errorf("loop: get a free device: %w", err)
	}
	path := fmt.Sprintf("/dev/loop%d", n)
	backing, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return "", nil, fmt.Errorf("loop: %w", err)
	}
	defer backing.Close()
	lf, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", nil, fmt.Errorf("loop: %w", err)
	}
	cfg := unix.LoopConfig{Fd: uint32(backing.Fd()), Info: unix.LoopInfo64{
		Offset: uint64(off), Sizelimit: uint64(size), Flags: unix.LO_FLAGS_AUTOCLEAR}}
	if err := unix.IoctlLoopConfigure(int(lf.Fd()), &cfg); err != nil {
		lf.Close()
		return "", nil, fmt.Errorf("loop: configure %s on %s at %d: %w", path, dev, off, err)
	}
	return path, lf, nil
}
