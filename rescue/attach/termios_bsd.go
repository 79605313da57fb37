//go:build darwin || freebsd || netbsd || openbsd

package attach

import "golang.org/x/sys/unix"

// The ioctls that read and write a terminal's settings.
const (
	ioctlGetTermios = unix.TIOCGETA
	ioctlSetTermios = unix.TIOCSETA
)
