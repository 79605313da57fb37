// Command rknas-image builds a board's bootable disk image: the board's
// initramfs (the firmware's base image plus the kernel modules its device
// tree needs) and the disk image around it (GPT, boot chain area, FAT boot
// partition with extlinux.conf, ext4 state partition). It runs on the
// build host; scripts/image.sh and `make image` call it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rknas-image:", err)
		var u usageError
		switch {
		case errors.As(err, &u):
			os.Exit(2)
		case errors.Is(err, errNoDeviceTree):
			os.Exit(exitNoDeviceTree)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

// exitNoDeviceTree is the exit code for a board whose device tree the
// kernel does not have yet: scripts/image.sh --all skips it and says why.
const exitNoDeviceTree = 4

var errNoDeviceTree = errors.New("no device tree for this board in the kernel")

const usage = `usage:
  rknas-image build --board NAME --kernel DIR --base INITRAMFS --out IMAGE [--bootloader FILE | --uboot-deb DEB]
                    [--version V] [--state-dir DIR] [--initramfs-out FILE]
  rknas-image modules --board NAME --kernel DIR      list the modules the board's image carries, and why
  rknas-image boards                                  the profiles an image can be built for, with their bootloader`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("no subcommand\n" + usage)}
	}
	switch args[0] {
	case "build":
		return runBuild(ctx, args[1:], stdout, stderr)
	case "modules":
		return runModules(ctx, args[1:], stdout, stderr)
	case "boards":
		return runBoards(stdout)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return usageError{fmt.Errorf("unknown subcommand %q\n%s", args[0], usage)}
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses flags and names the missing required ones.
func parse(fs *flag.FlagSet, args []string, required ...string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	var missing []string
	for _, r := range required {
		if f := fs.Lookup(r); f != nil && f.Value.String() == "" {
			missing = append(missing, "--"+r)
		}
	}
	if len(missing) > 0 {
		return usageError{fmt.Errorf("%s: missing %s\n%s", fs.Name(), strings.Join(missing, ", "), usage)}
	}
	return nil
}
