// Command uinit is the firmware's init, run by u-root's init: it mounts the
// file systems, loads kernel modules, mounts the state partition, prepares the
// board (gpio-sim in the VM), brings up the network, supervises authd (and
// rescue on the debug UART) and powers off or reboots cleanly. It never exits:
// if it did, init would run a shell that can die at once and panic the kernel.
package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout)
	fmt.Fprintf(os.Stderr, "\nuinit: FATAL: %v\nuinit: staying alive so the kernel does not panic; power-cycle the device\n", err)
	for {
		time.Sleep(time.Hour)
	}
}
