package attach

import "golang.org/x/sys/unix"

// The ioctls that read and write a terminal's settings.
const (
	ioctlGetTermios = unix.TCGETS
	ioctlSetTermios = unix.TCSETS
)
