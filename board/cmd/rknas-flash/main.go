// Command rknas-flash writes a firmware image to a TF card or USB disk (on
// the owner's Linux PC), to a board's eMMC over USB with rkdeveloptool, or
// to an image file for a VM. It refuses every unsafe target before a byte is
// written, gives the medium its own default admin password and hostname
// (printed once and saved to a label file), verifies what it wrote, and
// leaves a medium whose writing was cut short unbootable rather than half
// written.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rknas/firmware/authd/atomicfile"
	"github.com/rknas/firmware/board/diskimage"
	"github.com/rknas/firmware/board/flash"
	"golang.org/x/sys/unix"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

// Exit codes; scripts may rely on them.
const (
	exitOK      = 0
	exitFailed  = 1 // writing or verifying failed, or another error
	exitUsage   = 2 // bad command line
	exitRefused = 3 // the target is unsafe, or the image is unusable: nothing was written
	exitNotSure = 4 // the operator did not confirm: nothing was written
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "rknas-flash:", err)
	var ee *exitError
	var ref *flash.Refusal
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ref), errors.Is(err, flash.ErrBadImage), errors.Is(err, flash.ErrPartition),
		errors.Is(err, flash.ErrOtherBoard):
		return exitRefused
	case errors.Is(err, flash.ErrNotConfirmed):
		return exitNotSure
	}
	return exitFailed
}

const usage = `usage:
  rknas-flash [flags] IMAGE TARGET      write IMAGE to TARGET: a whole disk (/dev/sdb, /dev/mmcblk1)
                                         or an image file for a VM
  rknas-flash --update [--allow-other-board] [flags] IMAGE TARGET
                                         replace only the firmware on TARGET, which holds it already:
                                         its state, password and hostname stay. IMAGE must be for the
                                         board TARGET was made for; --allow-other-board allows another
                                         board of the same SoC (the medium was moved to it), never
                                         another SoC
  rknas-flash emmc-usb --loader LOADER.bin [flags] IMAGE
                                         write IMAGE to the eMMC of a board in Maskrom mode
                                         over USB, with rkdeveloptool
  rknas-flash info IMAGE|DEVICE         what an image or a flashed medium holds

flags:`

func usageErr(format string, a ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, a...)}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "emmc-usb":
			return runEMMC(ctx, args[1:], stdin, stdout, stderr)
		case "info":
			return runInfo(args[1:], stdout)
		case "version", "--version":
			fmt.Fprintln(stdout, version)
			return nil
		}
	}
	return runFlash(ctx, args, stdin, stdout, stderr)
}

// common are the flags every way of flashing shares.
type common struct {
	yes          bool
	password     string
	passwordFile string
	hostname     string
	label        string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.yes, "yes", false, "do not ask for confirmation (scripts)")
	fs.StringVar(&c.password, "password", "", "the device's default admin password (default: a new random one; prefer --password-file)")
	fs.StringVar(&c.passwordFile, "password-file", "", "read the default admin password from this file's first line")
	fs.StringVar(&c.hostname, "hostname", "", "the device's hostname (default: rknas- and six random characters)")
	fs.StringVar(&c.label, "label", "", "where to save the device label with the password (default: beside the image)")
}

func (c *common) personal() (flash.Personal, error) {
	pw := c.password
	if c.passwordFile != "" {
		if pw != "" {
			return flash.Personal{}, usageErr("give --password or --password-file, not both")
		}
		b, err := os.ReadFile(c.passwordFile)
		if err != nil {
			return flash.Personal{}, usageErr("--password-file: %v", err)
		}
		pw, _, _ = strings.Cut(strings.TrimRight(string(b), "\r\n"), "\n")
	}
	p, err := flash.NewPersonal(pw, c.hostname)
	if err != nil {
		return p, usageErr("%v", err)
	}
	return p, nil
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

func runFlash(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("rknas-flash", stderr)
	var c common
	c.register(fs)
	allowFixed := fs.Bool("allow-fixed", false, "allow a disk that is not removable (an internal eMMC, a USB SSD)")
	allowLarge := fs.Bool("allow-large", false, "allow a disk larger than 512 GiB")
	size := fs.String("size", "", "size of a new image-file target, e.g. 1G (default: the image's)")
	overwrite := fs.Bool("overwrite", false, "replace an existing file that is not an rknas image")
	update := fs.Bool("update", false, "replace only the firmware on a medium that holds one: its state, password and hostname stay")
	otherBoard := fs.Bool("allow-other-board", false, "with --update: allow an image for another board with the same SoC as the board the medium was made for")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{exitUsage, err}
	}
	if fs.NArg() != 2 {
		return usageErr("want IMAGE and TARGET, got %d arguments\n%s", fs.NArg(), usage)
	}
	imgPath, target := fs.Arg(0), fs.Arg(1)
	if *otherBoard && !*update {
		return usageErr("--allow-other-board goes with --update")
	}
	p, err := c.personal()
	if err != nil {
		return err
	}
	var fileSize int64
	if *size != "" {
		if fileSize, err = parseSize(*size); err != nil {
			return usageErr("--size: %v", err)
		}
	}
	img, err := flash.OpenImage(imgPath)
	if err != nil {
		return err
	}
	defer img.Close()
	job := flash.Job{Image: img, Target: target, Personal: p, FileSize: fileSize, Overwrite: *overwrite, Update: *update,
		AllowOtherBoard: *otherBoard,
		Options:         flash.Options{AllowFixed: *allowFixed, AllowLarge: *allowLarge},
		Inspector:       flash.NewInspector(), Log: stderr}
	if isTerminal(stderr) {
		job.Progress = stderr
	}
	if !c.yes {
		job.Confirm = func(t *flash.Target, holds *diskimage.Manifest) error {
			return confirm(t, img, holds, *update, stdin, stderr)
		}
	}
	res, err := flash.Flash(ctx, job)
	if err != nil {
		return err
	}
	if *update {
		fmt.Fprintf(stdout, "updated %s to rknas %s for %s (%s); its state, password and hostname are unchanged\n",
			res.Description, img.Manifest.Version, img.Manifest.Model, img.Manifest.Board)
		return nil
	}
	return report(res, img, p, c.label, stdout)
}

// confirm shows the target, the firmware it holds (holds, nil for none) and
// what is about to be written, and asks for its name to be typed.
func confirm(t *flash.Target, img *flash.Image, holds *diskimage.Manifest, update bool, stdin io.Reader, stderr io.Writer) error {
	if update {
		fmt.Fprintf(stderr, "\nAbout to UPDATE the firmware on %s\n", t.Describe())
		if holds != nil {
			fmt.Fprintf(stderr, "  from rknas %s for %s (%s)\n", holds.Version, holds.Model, holds.Board)
		}
		fmt.Fprintf(stderr, "  to rknas %s for %s (%s).\n  Its state, password and hostname stay.\n", img.Manifest.Version,
			img.Manifest.Model, img.Manifest.Board)
	} else {
		fmt.Fprintf(stderr, "\nAbout to ERASE %s\n  and write rknas %s for %s (%s).\n", t.Describe(), img.Manifest.Version,
			img.Manifest.Model, img.Manifest.Board)
		if holds != nil {
			fmt.Fprintf(stderr, "  It holds rknas %s for %s (%s) now: its state (accounts, settings) will be lost.\n",
				holds.Version, holds.Model, holds.Board)
		}
		if len(t.Partitions) > 0 {
			fmt.Fprintf(stderr, "  Its partitions %s will be lost.\n", strings.Join(t.Partitions, ", "))
		}
	}
	fmt.Fprintf(stderr, "Type %s to go on: ", t.Name)
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("%w (no answer: %v; --yes for scripts)", flash.ErrNotConfirmed, err)
	}
	if strings.TrimSpace(line) != t.Name {
		return fmt.Errorf("%w (typed %q, not %q)", flash.ErrNotConfirmed, strings.TrimSpace(line), t.Name)
	}
	return nil
}

// report prints the result, the password and hostname once, and saves the
// label file (0600: it holds the password).
func report(res *flash.Result, img *flash.Image, p flash.Personal, labelPath string, stdout io.Writer) error {
	if labelPath == "" {
		labelPath = strings.TrimSuffix(img.Path, filepath.Ext(img.Path)) + "-" + p.Hostname + ".label.txt"
	}
	label := fmt.Sprintf(`rknas NAS: keep this label with the device
  model:              %s (%s)
  hostname:           %s
  admin user:         admin
  default password:   %s
  firmware:           %s, kernel %s
  written:            %s to %s
  medium:             disk %s
A RESET held 4 to 15 seconds puts the admin account back to this password.
`, img.Manifest.Model, img.Manifest.Board, p.Hostname, p.Password, img.Manifest.Version, img.Manifest.Kernel,
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), res.Description, res.Table.DiskID)
	if err := atomicfile.Write(labelPath, []byte(label), 0o600); err != nil {
		return fmt.Errorf("the medium is written and verified, but saving the label failed: %w; the password is %s", err, p.Password)
	}
	fmt.Fprintf(stdout, "\n%s\nSaved to %s (readable by you only).\n", label, labelPath)
	return nil
}

// parseSize reads "1G", "512M", "4096" (bytes).
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size like 1G, 512M or a number of bytes", s)
	}
	return n * mult, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
