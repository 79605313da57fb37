//go:build linux

package flash

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// NewInspector returns an Inspector of the running system: Root is "/",
// DevNum is stat(2).
func NewInspector() Inspector {
	return Inspector{Root: os.DirFS("/"), DevNum: statDevNum}
}

// statDevNum returns the device number of the block device at p, following
// symbolic links (/dev/disk/by-id/...).
func statDevNum(p string) (major, minor uint32, err error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return 0, 0, fmt.Errorf("stat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, 0, fmt.Errorf("%w (%s)", ErrNotBlockDevice, fileKind(st.Mode))
	}
	rdev := uint64(st.Rdev) // uint32 on some architectures
	return unix.Major(rdev), unix.Minor(rdev), nil
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	}
	return fmt.Sprintf("file type %#o", mode&unix.S_IFMT)
}
