package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rknas/firmware/authd/atomicfile"
	"github.com/rknas/firmware/board"
	"github.com/rknas/firmware/initramfs/hwtest"
	"github.com/rknas/firmware/initramfs/simctl"
	"github.com/rknas/firmware/initramfs/supervise"
	"github.com/rknas/firmware/initramfs/watchdog"
	"golang.org/x/sys/unix"
)

// Paths inside the image: authd and rescue are commands of its u-root
// busybox, which tells them apart by the name they are run as.
const (
	authdPath  = "/bbin/authd"
	rescuePath = "/bbin/rescue"
	// factoryPasswordFile is where a factory-built initramfs may carry the
	// per-device default password; the flasher's is on the boot partition.
	// Without either, authd generates one.
	factoryPasswordFile = "/etc/rknas/default-password"
	stateDir            = "/state"
	// authd serves HTTPS on 443 and answers plain HTTP on 80 only with a
	// redirect.
	apiListen      = ":443"
	redirectListen = ":80"
	ctlPortName    = "rknas.ctl"
)

// config is uinit's command line (from /etc/uinit.flags or uroot.uinitargs=).
type config struct {
	stateWait time.Duration
	noNet     bool
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("uinit", flag.ContinueOnError)
	fs.DurationVar(&c.stateWait, "state-wait", 10*time.Second, "how long to wait for the state partition to appear")
	fs.BoolVar(&c.noNet, "no-net", false, "do not run DHCP on eth0")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("uinit: flags: %w", err)
	}
	return c, nil
}

// run boots the system and returns only when powering off failed or an
// essential step failed and nothing else can be done.
func run(ctx context.Context, args []string, console io.Writer) error {
	start := time.Now()
	log := slog.New(slog.NewTextHandler(console, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.String("t", fmt.Sprintf("%.3fs", time.Since(start).Seconds()))
			}
			return a
		},
	}))
	slog.SetDefault(log)
	cfg, err := parseFlags(args)
	if err != nil {
		log.Error("bad uinit flags; using defaults", "err", err)
	}

	// Ask for shutdown signals first, so a power-off during boot is not lost.
	// u-root's poweroff/shutdown conventions: SIGUSR2 powers off, SIGTERM
	// reboots.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGUSR2)
	// A Ctrl-C typed on the console reaches us as SIGINT from the tty; it
	// must not reboot the NAS. (Ctrl-Alt-Del goes to init, PID 1.)
	signal.Ignore(syscall.SIGINT)
	shutdown := make(chan int, 4) // unix.LINUX_REBOOT_CMD_*
	go func() {
		for s := range sigs {
			log.Info("signal", "sig", s.String())
			if s == syscall.SIGUSR2 {
				shutdown <- unix.LINUX_REBOOT_CMD_POWER_OFF
			} else {
				shutdown <- unix.LINUX_REBOOT_CMD_RESTART
			}
		}
	}()

	// Essential: without these nothing else works.
	if err := mountBase(); err != nil {
		return essential("mount file systems", err)
	}
	modulesLoaded, hurryModules := loadModules()
	if err := mountConfigfs(); err != nil {
		log.Warn("configfs", "err", err)
	}

	prof := board.Detect()
	log.Info("board", "name", prof.Name, "reason", prof.Reason)

	svcCtx, stopServices := context.WithCancel(ctx)
	var wg sync.WaitGroup
	goService := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }

	if prof.Name == "qemu-virt" {
		sim, err := simctl.Create("/sys/kernel/config", "/sys")
		if err != nil {
			log.Error("FAILED: gpio-sim (the RESET button and LEDs will be missing)", "err", err)
		} else {
			log.Info("gpio-sim ready", "chip", sim.Chip, "label", simctl.BankLabel)
			goService(func() { serveControl(svcCtx, sim) })
		}
		if err := watchPowerKey(svcCtx, shutdown); err != nil {
			log.Warn("power key watcher", "err", err)
		}
	}

	// Failsafe (OpenWrt's model): RESET held while the board starts. authd
	// is not started, the network comes up with the default configuration
	// and the rescue menu opens on the UART at once. The window runs beside
	// the loading of the other modules, the state partition's mounting and
	// the steps after it, which do not depend on it; nothing that acts on
	// the choice starts before it ends.
	failsafeDone := make(chan bool, 1)
	go func() { failsafeDone <- holdAtBoot(svcCtx, prof) }()

	modulesLoaded()
	med, persistent := mountMedium(cfg.stateWait)
	if persistent {
		countBoot()
	}
	prov := provisioning{passwordFile: factoryPasswordFile}
	if _, err := os.Stat(factoryPasswordFile); err != nil {
		prov.passwordFile = ""
	}
	if med != nil {
		if pw, host := provisioned(); pw != "" || host != "" {
			if pw != "" {
				prov.passwordFile = pw
			}
			prov.hostname = host
		}
	}
	if prov.hostname != "" {
		if err := unix.Sethostname([]byte(prov.hostname)); err != nil {
			log.Warn("set hostname", "err", err)
		} else {
			log.Info("hostname", "name", prov.hostname)
		}
	}
	go checkBoard(svcCtx, prof, 10*time.Second)

	// The hardware watchdog resets a board whose authd has gone silent.
	aw := &authdWatch{resets: readWatchdogResets(watchdogResetsFile)}
	grace := watchdog.DefaultGrace
	if v := kernelValue("rknas.watchdog-grace"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			grace = time.Duration(n) * time.Second
		} else {
			log.Warn("rknas.watchdog-grace is not a number of seconds; using the default", "value", v, "default", grace.String())
		}
	}
	goService(func() { runWatchdog(svcCtx, aw, grace, persistent) })

	// authdReady is closed at authd's first "authd ready" line.
	authdReady := &lineWatch{marker: []byte(`msg="authd ready"`), seen: make(chan struct{})}
	// authd's lines reach the console through a queue: anyone on the LAN
	// can make authd log, and authd must never wait on the console's baud
	// rate. The log file below keeps every line.
	authdConsole := supervise.NewConsoleQueue(console, 256<<10)
	logOut := supervise.Tee{authdConsole, authdReady}
	var logFile *supervise.RotatingFile
	if persistent {
		if err := os.MkdirAll(filepath.Join(stateDir, "log"), 0o750); err == nil {
			logFile = &supervise.RotatingFile{Path: filepath.Join(stateDir, "log", "authd.log"), MaxBytes: 1 << 20}
			logOut = append(logOut, logFile)
		}
	}

	// authd starts now, beside the failsafe window: it opens its database
	// and waits at its start gate (a pipe) until the window has ended and
	// the hardware tests, if any, are done. In failsafe mode it is stopped
	// at the gate, having started nothing.
	_, authdErr := os.Stat(authdPath)
	authdCtx, stopAuthd := context.WithCancel(svcCtx)
	defer stopAuthd()
	authdDone := make(chan struct{})
	var gate *os.File
	startAuthd := func(gateRead *os.File) {
		authd := &supervise.Service{
			Name: "authd", Path: authdPath, Output: logOut, Log: log,
			Args: authdArgs(prof.Name, prov),
		}
		if gateRead != nil {
			authd.Gate, authd.GateArgs = gateRead, []string{"-start-gate-fd", "3"}
		}
		if err := os.MkdirAll(filepath.Join(stateDir, "authd"), 0o700); err != nil {
			log.Error("create authd state dir", "err", err)
		}
		aw.running.Store(true)
		goService(func() {
			defer close(authdDone)
			if err := authd.Run(authdCtx); errors.Is(err, supervise.ErrNoRestart) {
				aw.running.Store(false)
				log.Error("FAILED: authd refused its configuration and will not be restarted; see the lines above")
			}
		})
	}
	if authdErr == nil {
		r, w, err := os.Pipe()
		if err != nil {
			log.Warn("authd's start gate; authd starts after the failsafe window", "err", err)
		} else {
			gate = w
			startAuthd(r)
		}
	}

	failsafe := <-failsafeDone
	if failsafe {
		fmt.Fprintln(console, "uinit: RESET held at power-on: FAILSAFE mode: authd is not started, network on DHCP, rescue menu on the serial console")
		if gate != nil {
			// Stopped before the gate closes, so it ends at the gate, and
			// gone before the console opens the database itself.
			stopAuthd()
			<-authdDone
			aw.running.Store(false)
			gate.Close()
		}
	}
	// What waits for authd's start waits for nothing in failsafe mode or
	// without authd: the late modules' normal priority and the rescue
	// console.
	authdStarted := authdReady.seen
	if failsafe || authdErr != nil {
		authdStarted = closed
	}
	afterStart := make(chan struct{})
	go func() {
		if afterAuthd(svcCtx, authdStarted, authdDone, rescueWait) {
			hurryModules()
			close(afterStart)
		}
	}()

	// authd owns the network (-manage-network); without authd, or in
	// failsafe mode, a one-shot DHCP keeps the board reachable.
	if !cfg.noNet && (authdErr != nil || failsafe) {
		go bringUpNetwork(svcCtx)
	}

	// Hardware tests run before authd starts its services, so that they own
	// the GPIO lines; only in the VM and only when asked for on the kernel
	// command line.
	if prof.Name == "qemu-virt" && kernelArg("rknas.hwtest") {
		dir := filepath.Join(stateDir, "hwtest")
		log.Info("running hardware tests", "dir", dir)
		hurryModules() // the flasher's tests wait for their USB disks
		if _, err := hwtest.RunDir(svcCtx, dir, console); err != nil {
			fmt.Fprintf(console, "%s %s (%v)\n%s pass=0 fail=1\n", hwtest.MarkerFail, dir, err, hwtest.MarkerDone)
		}
	}

	switch {
	case authdErr != nil:
		log.Error("FAILED: authd is missing from the image; the login API will not start", "err", authdErr)
	case failsafe:
	case gate != nil:
		if _, err := gate.WriteString("go\n"); err != nil {
			log.Error("authd's start gate", "err", err)
		}
		gate.Close()
	default:
		startAuthd(nil)
	}
	// The rescue console starts once authd answers (in failsafe mode or
	// without authd, at once): on a one-core board its start would take
	// half the CPU from authd's. It does not wait for an authd that exits
	// or takes longer than rescueWait.
	if _, err := os.Stat(rescuePath); err == nil && prof.UART.Device != "" {
		args := rescueArgs(prof, prov, failsafe)
		// Its log goes to the log file, not the UART it talks on.
		var rescueLog io.Writer = io.Discard
		if logFile != nil {
			rescueLog = logFile
		}
		rescue := &supervise.Service{Name: "rescue", Path: rescuePath, Output: rescueLog, Log: log, Args: args}
		goService(func() {
			select {
			case <-afterStart:
				_ = rescue.Run(svcCtx)
			case <-svcCtx.Done():
			}
		})
	}
	log.Info("uinit ready", "boot_seconds", fmt.Sprintf("%.2f", time.Since(start).Seconds()))

	cmd := <-shutdown
	log.Info("shutting down", "action", map[int]string{unix.LINUX_REBOOT_CMD_POWER_OFF: "power-off"}[cmd])
	stopServices()
	waitTimeout(&wg, 20*time.Second)
	authdConsole.Flush(2 * time.Second) // authd's last lines say how it stopped
	if logFile != nil {
		_ = logFile.Close() // an open file keeps /state busy
	}
	unix.Sync()
	if persistent {
		if err := unix.Unmount(stateDir, 0); err != nil {
			log.Error("unmount state; remounting read-only", "err", err)
			_ = unix.Mount("", stateDir, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
		} else {
			log.Info("state unmounted cleanly")
		}
	}
	if med != nil {
		_ = unix.Unmount(bootDir, 0)
	}
	unix.Sync()
	fmt.Fprintln(console, "uinit: goodbye")
	return fmt.Errorf("uinit: reboot(2): %w", unix.Reboot(cmd))
}

// provisioning is what makes this device its own: where its default admin
// password is and its hostname (empty: authd's defaults).
type provisioning struct {
	passwordFile string
	hostname     string
}

// authdArgs is authd's command line for the board.
func authdArgs(boardName string, prov provisioning) []string {
	// A password authd makes up is shown on the console alone: its
	// standard error also goes to the log file on the state partition.
	args := []string{"-state", filepath.Join(stateDir, "authd"), "-listen", apiListen, "-tls", "auto", "-http-redirect", redirectListen, "-mdns",
		"-board", boardName, "-manage-network", "-secret-console", "/dev/console"}
	if prov.passwordFile != "" {
		args = append(args, "-default-password-file", prov.passwordFile)
	}
	if prov.hostname != "" {
		args = append(args, "-default-hostname", prov.hostname)
	}
	return args
}

// rescueArgs is the rescue console's command line for the board. It resets
// to what the flasher provisioned, as authd does: in failsafe mode no
// authd runs, and the console's reset is the only one.
func rescueArgs(prof board.Profile, prov provisioning, failsafe bool) []string {
	args := []string{"console", "--port", "/dev/" + prof.UART.Device, "--baud", strconv.Itoa(prof.UART.Baud),
		"--state", filepath.Join(stateDir, "authd"), "--board", prof.Name}
	if prov.passwordFile != "" {
		args = append(args, "--default-password-file", prov.passwordFile)
	}
	if prov.hostname != "" {
		args = append(args, "--default-hostname", prov.hostname)
	}
	if failsafe {
		args = append(args, "--failsafe")
	}
	return args
}

func essential(step string, err error) error {
	return fmt.Errorf("essential boot step %q failed: %w", step, err)
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		slog.Warn("services did not stop in time; going on", "after", d)
	}
}

// kernelArg reports whether the kernel command line has the bare word arg.
func kernelArg(arg string) bool {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return false
	}
	for _, f := range strings.Fields(string(b)) {
		if f == arg {
			return true
		}
	}
	return false
}

// kernelValue returns the value of key=value on the kernel command line.
func kernelValue(key string) string {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return ""
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// countBoot increments /state/rknas/boot-count and prints it: the VM test uses
// it to see that the state disk persists across power cycles.
func countBoot() {
	p := filepath.Join(stateDir, "rknas", "boot-count")
	n := 0
	if b, err := os.ReadFile(p); err == nil {
		n, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	n++
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		slog.Warn("boot count", "err", err)
		return
	}
	if err := atomicfile.Write(p, []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
		slog.Warn("boot count", "err", err)
		return
	}
	slog.Info("state boot count", "count", n)
}
