// Command rescue is the firmware's serial rescue console: `rescue console` on
// the board's debug UART, and `rescue attach` on a PC to reach it over a
// USB-serial cable.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rknas/firmware/rescue/attach"
	"github.com/rknas/firmware/rescue/console"
	"github.com/rknas/firmware/rescue/serialport"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

// Exit codes of rescue; scripts may rely on them.
const (
	exitOK           = 0
	exitFailed       = 1 // the action failed on the board, or another error
	exitUsage        = 2 // bad command line
	exitNoConsole    = 3 // the port could not be opened or no console answered
	exitNotConfirmed = 4 // the console asked for a confirmation that was not given
)

const usage = `usage:
  rescue console [--port /dev/ttyS2] [--baud 1500000] [--failsafe] [--idle 5m] [--control SOCKET] [--state DIR] [--state-mount DIR] [--board NAME]
  rescue attach --port /dev/ttyUSB0 [--baud 1500000]                  interactive, Ctrl-] quits
  rescue attach --port /dev/ttyUSB0 [--baud 1500000] --run ACTION [--time T] [--yes] [--timeout 30s] [-v]
ACTION is one of: ` // the list follows

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitError carries the exit code for an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	fmt.Fprintln(stderr, "rescue:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailed
}

// errHelp ends a run that printed its help on request: exit code 0.
var errHelp = errors.New("help requested")

// parseErr is a flag parsing error as an exit: -h is not an error.
func parseErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return errHelp
	}
	return &exitError{exitUsage, err}
}

func usageErr(format string, a ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format+"\n"+usage+strings.Join(console.ActionNames(), ", "), a...)}
}

// run is the whole program; main only sets up signals and exits.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErr("no subcommand")
	}
	switch args[0] {
	case "console":
		return runConsole(ctx, args[1:], stderr)
	case "attach":
		return runAttach(ctx, args[1:], stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage+strings.Join(console.ActionNames(), ", "))
		return nil
	}
	return usageErr("unknown subcommand %q", args[0])
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func runConsole(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("console", stderr)
	port := fs.String("port", "/dev/ttyS2", "serial device of the debug UART")
	baud := fs.Int("baud", 1500000, "line speed")
	failsafe := fs.Bool("failsafe", false, "open the menu at once (RESET held at power-on)")
	idle := fs.Duration("idle", console.DefaultIdleTimeout, "idle time before the menu closes")
	var wo wireOptions
	fs.StringVar(&wo.ControlSocket, "control", "/run/authd/control.sock", "authd's control socket")
	fs.StringVar(&wo.StateDir, "state", "/state/authd", "authd's state directory, used directly in failsafe mode")
	fs.StringVar(&wo.DefaultPasswordFile, "default-password-file", "", "the device's default admin password (default: STATE/default-password)")
	fs.StringVar(&wo.DefaultHostname, "default-hostname", "", "the hostname the flasher provisioned, which a network reset puts back (default: the firmware's)")
	fs.StringVar(&wo.Board, "board", "auto", "board profile: a name or auto")
	fs.StringVar(&wo.StateMount, "state-mount", "/state", "where the state partition is mounted (install-emmc copies it)")
	if err := fs.Parse(args); err != nil {
		return parseErr(err)
	}
	if fs.NArg() > 0 {
		return usageErr("console: unexpected argument %q", fs.Arg(0))
	}
	pcfg := serialport.Config{Path: *port, Baud: *baud}
	if err := pcfg.Validate(); err != nil {
		return &exitError{exitUsage, err}
	}
	if *idle <= 0 {
		return usageErr("console: --idle must be positive, not %v", *idle)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	// Open the port before anything else: go.bug.st/serial uses select(),
	// which fails above descriptor 1023. A port that is missing now is
	// retried by Run.
	first, firstErr := openChecked(pcfg, log)

	// Only in failsafe mode, when authd is not started, may the console
	// write the state partition itself.
	wo.Direct = *failsafe
	actions, button, err := wire(log, wo)
	if err != nil {
		if first != nil {
			_ = first.Close()
		}
		return fmt.Errorf("console: wire actions: %w", err)
	}
	c, err := console.New(console.Config{Actions: actions, Button: button, Failsafe: *failsafe, Log: log,
		IdleTimeout: *idle})
	if err != nil {
		return err
	}
	log.Info("rescue: console starting", "port", pcfg.Path, "baud", pcfg.Baud, "failsafe", *failsafe,
		"button", button != nil)
	return c.Run(ctx, func() (io.ReadWriteCloser, error) {
		if first != nil || firstErr != nil {
			p, err := first, firstErr
			first, firstErr = nil, nil
			if err != nil {
				return nil, err
			}
			return p, nil
		}
		return openChecked(pcfg, log)
	})
}

// openChecked opens the port and warns when the kernel kept another speed.
func openChecked(cfg serialport.Config, log *slog.Logger) (io.ReadWriteCloser, error) {
	p, err := serialport.Open(cfg)
	if err != nil {
		return nil, err
	}
	if in, out, err := serialport.Speed(cfg.Path); err != nil {
		log.Debug("rescue: read back speed", "err", err)
	} else if in != cfg.Baud || out != cfg.Baud {
		log.Warn("rescue: the port runs at another speed than asked", "port", cfg.Path, "asked", cfg.Baud,
			"in", in, "out", out)
	}
	return p, nil
}

func runAttach(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("attach", stderr)
	port := fs.String("port", "", "serial device of the USB-serial adapter, e.g. /dev/ttyUSB0")
	baud := fs.Int("baud", 1500000, "line speed (115200 on Radxa E25, QNAP TS-433 and the QEMU VM)")
	action := fs.String("run", "", "run one menu action and exit: "+strings.Join(console.ActionNames(), ", "))
	at := fs.String("time", "", "the new time for set-clock, RFC 3339 or \"YYYY-MM-DD HH:MM:SS\" in UTC")
	yes := fs.Bool("yes", false, "type the confirmation word when the console asks (a button must still be pressed)")
	timeout := fs.Duration("timeout", attach.DefaultWakeTimeout, "how long to wait for the console to answer")
	verbose := fs.Bool("v", false, "copy everything the console sends to stderr")
	if err := fs.Parse(args); err != nil {
		return parseErr(err)
	}
	if fs.NArg() > 0 {
		return usageErr("attach: unexpected argument %q", fs.Arg(0))
	}
	if *port == "" {
		return usageErr("attach: --port is needed: the USB-serial adapter's device, e.g. /dev/ttyUSB0 (ls /dev/ttyUSB* /dev/ttyACM*)")
	}
	pcfg := serialport.Config{Path: *port, Baud: *baud}
	if err := pcfg.Validate(); err != nil {
		return &exitError{exitUsage, err}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *action == "" {
		return attachTerminal(ctx, pcfg, stdin, stdout, log)
	}

	opt := attach.Options{Action: *action, Yes: *yes, WakeTimeout: *timeout, Progress: stderr}
	if *timeout <= 0 {
		return usageErr("attach: --timeout must be positive, not %v", *timeout)
	}
	if *at != "" {
		t, err := console.ParseTime(*at)
		if err != nil {
			return usageErr("attach: --time: %v", err)
		}
		opt.Time = t
	} else if *action == console.ActionSetClock {
		return usageErr("attach: set-clock needs --time")
	}
	if *verbose {
		opt.Transcript = stderr
	}
	if f, ok := stdin.(*os.File); ok && !*yes && isTerminal(f) {
		in := bufio.NewReader(f)
		opt.Confirm = func(prompt string) (string, error) {
			fmt.Fprint(stderr, prompt)
			return in.ReadString('\n')
		}
	}
	p, err := serialport.Open(pcfg)
	if err != nil {
		return &exitError{exitNoConsole, err}
	}
	defer p.Close()
	// Whatever the adapter received before we opened it is stale.
	if err := p.ResetInputBuffer(); err != nil {
		log.Debug("rescue: flush input", "err", err)
	}
	lines, err := attach.Run(ctx, p, opt)
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	var ae *attach.ActionError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, attach.ErrUnknownAction):
		return usageErr("%v", err)
	case errors.Is(err, attach.ErrNoConsole):
		return &exitError{exitNoConsole, fmt.Errorf("%w on %s at %d baud (check the port, the baud rate and the cable)",
			err, pcfg.Path, pcfg.Baud)}
	case errors.Is(err, attach.ErrNotConfirmed):
		return &exitError{exitNotConfirmed, err}
	case errors.As(err, &ae):
		return &exitError{exitFailed, err}
	}
	return &exitError{exitNoConsole, err}
}

func attachTerminal(ctx context.Context, pcfg serialport.Config, stdin io.Reader, stdout io.Writer, log *slog.Logger) error {
	if f, ok := stdin.(*os.File); ok {
		restore, err := attach.Raw(f)
		if err != nil {
			return err
		}
		defer func() {
			if err := restore(); err != nil {
				log.Error("rescue: restore terminal", "err", err)
			}
		}()
	}
	return attach.Terminal(ctx, stdin, stdout, attach.TerminalConfig{
		Open:       func() (io.ReadWriteCloser, error) { return serialport.Open(pcfg) },
		Name:       pcfg.Path,
		BackoffMin: 250 * time.Millisecond, BackoffMax: 5 * time.Second, Log: log,
	})
}

func isTerminal(f *os.File) bool {
	ok, err := attach.IsTerminal(f)
	return err == nil && ok
}
