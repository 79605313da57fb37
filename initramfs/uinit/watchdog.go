package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rknas/firmware/authd/atomicfile"
	"github.com/rknas/firmware/authd/control"
	"github.com/rknas/firmware/initramfs/watchdog"
	uwatchdog "github.com/u-root/u-root/pkg/watchdog"
	"golang.org/x/sys/unix"
)

const (
	// authdControlSocket is where authd answers the rescue console and the
	// watchdog's question (authd's -control-socket default).
	authdControlSocket = "/run/authd/control.sock"
	// watchdogResetsFile counts the boots in a row that ended with the
	// watchdog starved because authd did not answer.
	watchdogResetsFile = stateDir + "/rknas/watchdog-resets"
	// maxWatchdogResets is how many such boots in a row the watchdog
	// allows: a login service that does not come up after that many resets
	// will not after more, and the rescue console needs the board up.
	maxWatchdogResets = 3
)

// authdWatch says whether authd is meant to be running, for the watchdog:
// not in failsafe mode, not once it refused its configuration, and not
// after maxWatchdogResets boots in a row that it never answered in.
type authdWatch struct {
	running atomic.Bool // started and not given up on
	gaveUp  atomic.Bool // too many watchdog resets in a row
	resets  int         // the count read at boot
	// answered is set at authd's first answer this boot.
	answered atomic.Bool
}

// enforced reports whether a silent authd should stop the feeding.
func (a *authdWatch) enforced() bool { return a.running.Load() && !a.gaveUp.Load() }

// readWatchdogResets returns the count in path (0 when there is none).
func readWatchdogResets(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func writeWatchdogResets(path string, n int, persistent bool) {
	if !persistent {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		slog.Warn("watchdog: record resets", "err", err)
		return
	}
	if err := atomicfile.Write(path, []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
		slog.Warn("watchdog: record resets", "err", err)
	}
}

// openWatchdog waits up to d for the board's watchdog device (its driver
// may still be probing) and opens it, which arms it.
func openWatchdog(d time.Duration) (*uwatchdog.Watchdog, error) {
	deadline := time.Now().Add(d)
	for {
		w, err := uwatchdog.Open(uwatchdog.Dev)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || time.Now().After(deadline) {
			return w, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runWatchdog arms the hardware watchdog and feeds it while authd answers
// on its control socket (see package watchdog). A board without one is
// logged and left alone. grace is how long authd may stay silent.
func runWatchdog(ctx context.Context, aw *authdWatch, grace time.Duration, persistent bool) {
	w, err := openWatchdog(5 * time.Second)
	if err != nil {
		slog.Warn("no hardware watchdog: a wedged system will not reset itself", "device", uwatchdog.Dev, "err", err)
		return
	}
	defer w.Close()
	identity := "unknown"
	if info, err := w.Support(); err == nil {
		identity = strings.TrimRight(string(info.Identity[:]), "\x00")
	}
	// u-root's SetTimeout hands the kernel a time.Duration where it reads an
	// int of seconds: set it here.
	if err := unix.IoctlSetPointerInt(int(w.Fd()), unix.WDIOC_SETTIMEOUT, int(watchdog.DefaultTimeout/time.Second)); err != nil {
		slog.Warn("watchdog: set timeout; keeping the driver's", "err", err)
	}
	timeout, _ := w.Timeout()
	if st, err := w.BootStatus(); err == nil && st&uwatchdog.StatusCardReset != 0 {
		slog.Warn("watchdog: the last reset was by the watchdog")
	}
	if aw.resets >= maxWatchdogResets {
		aw.gaveUp.Store(true)
		slog.Error("FAILED: watchdog: authd did not answer in the last boots, each ended by the watchdog; it no longer resets the board, so the rescue console stays",
			"boots", aw.resets)
	}
	slog.Info("watchdog armed", "identity", identity, "timeout", timeout.String(), "grace", grace.String())
	client := control.NewClient(authdControlSocket)
	f := &watchdog.Feeder{
		Dev:   w,
		Grace: grace,
		Answers: func(ctx context.Context) error {
			if _, err := client.Status(ctx); err != nil {
				return err
			}
			if !aw.answered.Swap(true) && aw.resets > 0 {
				slog.Info("watchdog: authd answers; boots ended by the watchdog in a row cleared", "was", aw.resets)
				aw.resets = 0
				aw.gaveUp.Store(false)
				writeWatchdogResets(watchdogResetsFile, 0, persistent)
			}
			return nil
		},
		Enforced: aw.enforced,
		Starving: func() {
			writeWatchdogResets(watchdogResetsFile, aw.resets+1, persistent)
			unix.Sync()
		},
		Recovered: func() { writeWatchdogResets(watchdogResetsFile, aw.resets, persistent) },
	}
	if err := f.Run(ctx); err != nil {
		slog.Warn("watchdog", "err", err)
	}
}
