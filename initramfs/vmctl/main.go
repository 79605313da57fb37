// Command vmctl sends one command to the VM's control channel and prints the
// reply: `vmctl -sock out/vm/run/ctl.sock hold 10` holds the simulated RESET
// button for ten seconds. Commands: ping, press, release, hold SECONDS,
// level?, led?.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rknas/firmware/initramfs/vmrig"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "vmctl:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("vmctl", flag.ContinueOnError)
	sock := fs.String("sock", "out/vm/run/ctl.sock", "control channel socket")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("usage: vmctl [-sock PATH] ping|press|release|hold SECONDS|level?|led?")
	}
	timeout := 10 * time.Second
	if fs.Arg(0) == "hold" && fs.NArg() == 2 {
		if s, err := strconv.ParseFloat(fs.Arg(1), 64); err == nil && s > 0 {
			timeout += time.Duration(s * float64(time.Second))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reply, err := vmrig.Ctl(ctx, *sock, strings.Join(fs.Args(), " "))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, reply)
	return nil
}
