package serialport

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Speed reads back the input and output speed the kernel has for the tty at
// path (TCGETS2). A UART driver may accept a speed it cannot produce and keep
// another one (QEMU's PL011 does): compare it with what was asked for.
func Speed(path string) (in, out int, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("serialport: speed of %s: %w", path, err)
	}
	defer f.Close()
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS2)
	if err != nil {
		return 0, 0, fmt.Errorf("serialport: speed of %s: TCGETS2: %w", path, err)
	}
	return int(t.Ispeed), int(t.Ospeed), nil
}
