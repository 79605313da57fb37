//go:build hwtest

package button_test

// Tests against real kernel components: gpio-sim through go-gpiocdev, and a
// uinput device through evdev. Debian's kernel has no gpio-sim, so they are
// built only with -tags hwtest, for the arm64 VM (make test-vm), which sets
// RKNAS_REQUIRE_HW=1: there a missing feature is a failure. Elsewhere they
// skip a missing feature only when RKNAS_REQUIRE_HW is not set.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/rknas/firmware/authd/button"
	"github.com/rknas/firmware/authd/button/buttontest"
	"github.com/rknas/firmware/board"
	"github.com/warthog618/go-gpiocdev"
	"github.com/warthog618/go-gpiosim"
	"golang.org/x/sys/unix"

	"github.com/rknas/firmware/internal/waittest"
)

const keyRestart = 0x198

// needHW skips, or fails under RKNAS_REQUIRE_HW=1, when err says a kernel
// feature is missing.
func needHW(tb testing.TB, feature string, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if os.Getenv("RKNAS_REQUIRE_HW") == "1" {
		tb.Fatalf("%s is required (RKNAS_REQUIRE_HW=1): %v", feature, err)
	}
	tb.Skipf("%s not available here: %v (RKNAS_REQUIRE_HW=1 makes this a failure)", feature, err)
}

// newSim creates a gpio-sim chip labelled label with 4 lines, line 0 "reset"
// pulled up (button released).
func newSim(tb testing.TB, label string) *gpiosim.Sim {
	tb.Helper()
	var err error
	if os.Geteuid() != 0 {
		err = errors.New("not root")
	} else if _, serr := os.Stat("/sys/kernel/config/gpio-sim"); serr != nil {
		// Checked here so that go-gpiosim's fallbacks (modprobe, mounting
		// configfs) never touch a host without the module.
		err = fmt.Errorf("gpio-sim module not loaded or configfs not mounted: %w", serr)
	}
	var sim *gpiosim.Sim
	if err == nil {
		sim, err = gpiosim.NewSim(gpiosim.WithBank(gpiosim.NewBank(label, 4,
			gpiosim.WithNamedLine(0, "reset"), gpiosim.WithNamedLine(1, "led"))))
	}
	needHW(tb, "gpio-sim (root, gpio-sim module, configfs)", err)
	tb.Cleanup(sim.Close)
	if err := sim.Chips[0].Pullup(0); err != nil {
		tb.Fatal(err)
	}
	return sim
}

// hwRig runs a real watcher (real monotonic clock) on src with short holds.
type hwRig struct {
	w         *button.Watcher
	led       *buttontest.LED
	effects   chan button.Effect
	recovered chan button.Press
	done      chan error
}

func startHW(tb testing.TB, src button.Source, th button.Thresholds, recover func(context.Context) error) *hwRig {
	tb.Helper()
	r := &hwRig{led: &buttontest.LED{}, effects: make(chan button.Effect, 1000),
		recovered: make(chan button.Press, 100), done: make(chan error, 1)}
	if recover == nil {
		recover = func(context.Context) error { return nil }
	}
	w, err := button.NewWatcher(button.Config{
		Source: src,
		Recover: func(ctx context.Context) error {
			err := recover(ctx)
			p, _ := button.PressFrom(ctx)
			r.recovered <- p
			return err
		},
		LED:        r.led,
		Thresholds: th,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Notify:     func(e button.Effect) { r.effects <- e },
	})
	if err != nil {
		tb.Fatal(err)
	}
	r.w = w
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.done <- w.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := waittest.Recv(tb, r.done, "Run to return after cancel"); err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	// Edges made before the source has started would be a button held at
	// start: wait until the watcher sees the line.
	waittest.Recv(tb, w.Ready(), "the watcher to see the line")
	if s := w.Status(); !s.Available {
		tb.Fatalf("watcher not watching: %s", s.Error)
	}
	return r
}

func (r *hwRig) waitFor(tb testing.TB, kind button.EffectKind) button.Effect {
	tb.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-r.effects:
			if e.Kind == kind {
				return e
			}
		case err := <-r.done:
			r.done <- err
			tb.Fatalf("watcher stopped waiting for %s: %v; status %+v", kind, err, r.w.Status())
		case <-timeout:
			tb.Fatalf("no %s effect; status %+v", kind, r.w.Status())
		}
	}
}

var shortHolds = button.Thresholds{Reset: 300 * time.Millisecond, Cancel: 3 * time.Second, Debounce: 30 * time.Millisecond}

func TestGPIOSimButton(t *testing.T) {
	sim := newSim(t, "rknas-test-btn")
	chip := &sim.Chips[0]

	// Chips are found by label, whatever their index.
	path, err := board.FindChipByLabel("rknas-test-btn")
	if err != nil || path != chip.DevPath() {
		t.Fatalf("FindChipByLabel = %q, %v; want %q", path, err, chip.DevPath())
	}

	src := button.NewGPIOSource(board.GPIOLine{Chip: "rknas-test-btn", Offset: 0, ActiveLow: true, Bias: board.BiasNone}, 30*time.Millisecond, nil)
	r := startHW(t, src, shortHolds, nil)
	start := button.MonotonicNow()

	// Press (pull the line down), wait for the watcher to say "release now".
	if err := chip.Pulldown(0); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, button.EffectArmed)
	if s := r.w.Status(); !s.Available || s.Source != "gpio" || !strings.Contains(s.Device, "rknas-test-btn") {
		t.Errorf("status = %+v", s)
	}
	if got := r.led.Calls(); len(got) == 0 || got[0] != "blink 100ms/100ms" {
		t.Errorf("LED calls = %q", got)
	}
	if err := chip.Pullup(0); err != nil {
		t.Fatal(err)
	}
	e := r.waitFor(t, button.EffectRecover)
	p := waittest.Recv(t, r.recovered, "the recovery")
	if e.Held < shortHolds.Reset || p.Held() != e.Held {
		t.Errorf("held = %s (press %+v)", e.Held, p)
	}
	// Kernel timestamps are on CLOCK_MONOTONIC.
	if p.Start < start || p.End > button.MonotonicNow() {
		t.Errorf("press %+v outside [%s, now]", p, start)
	}

	// A short press does nothing.
	if err := chip.Pulldown(0); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, button.EffectPressed)
	if err := chip.Pullup(0); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, button.EffectShortPress)
	if n := r.w.Status().Actions; n != 1 {
		t.Errorf("actions = %d, want 1", n)
	}
}

func TestGPIOSimHeldAtStart(t *testing.T) {
	sim := newSim(t, "rknas-test-held")
	if err := sim.Chips[0].Pulldown(0); err != nil {
		t.Fatal(err)
	}
	src := button.NewGPIOSource(board.GPIOLine{Chip: "rknas-test-held", Offset: 0, ActiveLow: true}, 30*time.Millisecond, nil)
	r := startHW(t, src, shortHolds, nil)
	r.waitFor(t, button.EffectHeldAtStart)
	if err := sim.Chips[0].Pullup(0); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, button.EffectIgnoredRelease)
	if n := r.w.Status().Actions; n != 0 {
		t.Errorf("actions = %d", n)
	}
}

func TestGPIOSimBusyLine(t *testing.T) {
	sim := newSim(t, "rknas-test-busy")
	// Another consumer (standing in for gpio-keys) holds line 0.
	other, err := gpiocdev.RequestLine(sim.Chips[0].DevPath(), 0, gpiocdev.AsInput, gpiocdev.WithConsumer("gpio-keys"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	src := button.NewGPIOSource(board.GPIOLine{Chip: "rknas-test-busy", Offset: 0, ActiveLow: true}, 30*time.Millisecond, nil)
	w, err := button.NewWatcher(button.Config{Source: src, Recover: func(context.Context) error { return nil },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Run(context.Background())
	if !errors.Is(err, unix.EBUSY) {
		t.Fatalf("Run = %v, want EBUSY", err)
	}
	for _, want := range []string{"rknas-test-busy line 0", sim.Chips[0].DevPath(), "gpio-keys"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if s := w.Status(); s.Available || !strings.Contains(s.Error, "busy") {
		t.Errorf("status = %+v", s)
	}
}

func TestGPIOSimLED(t *testing.T) {
	sim := newSim(t, "rknas-test-led")
	led, err := button.OpenGPIOLED(board.GPIOLine{Chip: "rknas-test-led", Offset: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := led.Blink(time.Hour, time.Hour); err != nil { // lit for the test's duration
		t.Fatal(err)
	}
	// The blinker sets the line from its goroutine; Normal waits for it.
	if err := led.Normal(); err != nil {
		t.Fatal(err)
	}
	if v, err := sim.Chips[0].Level(1); err != nil || v != 0 {
		t.Errorf("LED level after Normal = %d, %v; want 0", v, err)
	}
	if err := led.Close(); err != nil {
		t.Fatal(err)
	}
}

// uinput: a real input device, driven from the test through ioctls.

func ior(typ, nr, size uintptr) uintptr { return 2<<30 | size<<16 | typ<<8 | nr }
func iow(typ, nr, size uintptr) uintptr { return 1<<30 | size<<16 | typ<<8 | nr }

type uinputDev struct {
	fd   int
	path string
}

func newUinput(tb testing.TB, name string, code uint16) *uinputDev {
	tb.Helper()
	fd, err := unix.Open("/dev/uinput", unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	needHW(tb, "uinput (/dev/uinput)", err)
	d := &uinputDev{fd: fd}
	ctl := func(req, arg uintptr) {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg); e != 0 {
			tb.Fatalf("uinput ioctl %#x: %v", req, e)
		}
	}
	ctl(iow('U', 100, 4), 1)             // UI_SET_EVBIT EV_KEY
	ctl(iow('U', 101, 4), uintptr(code)) // UI_SET_KEYBIT
	var setup [92]byte                   // struct uinput_setup: input_id, name[80], ff_effects_max
	setup[0] = 0x06                      // BUS_VIRTUAL
	copy(setup[8:8+79], name)
	ctl(iow('U', 3, 92), uintptr(unsafe.Pointer(&setup[0]))) // UI_DEV_SETUP
	ctl(0x5501, 0)                                           // UI_DEV_CREATE
	tb.Cleanup(func() {
		unix.Syscall(unix.SYS_IOCTL, uintptr(fd), 0x5502, 0) // UI_DEV_DESTROY
		unix.Close(fd)
	})
	var sys [64]byte
	ctl(ior('U', 44, 64), uintptr(unsafe.Pointer(&sys[0]))) // UI_GET_SYSNAME
	sysname := strings.TrimRight(string(sys[:]), "\x00")
	// devtmpfs creates the node before UI_DEV_CREATE returns.
	m, _ := filepath.Glob(filepath.Join("/sys/class/input", sysname, "event*"))
	if len(m) != 1 {
		tb.Fatalf("no event node for %s: %v", sysname, m)
	}
	d.path = "/dev/input/" + filepath.Base(m[0])
	return d
}

func (d *uinputDev) emit(tb testing.TB, typ, code uint16, value int32) {
	tb.Helper()
	b := make([]byte, button.InputEventSize)
	tv := button.InputEventSize - 8
	*(*uint16)(unsafe.Pointer(&b[tv])) = typ
	*(*uint16)(unsafe.Pointer(&b[tv+2])) = code
	*(*int32)(unsafe.Pointer(&b[tv+4])) = value
	if _, err := unix.Write(d.fd, b); err != nil {
		tb.Fatalf("uinput write: %v", err)
	}
}

func (d *uinputDev) key(tb testing.TB, code uint16, down bool) {
	v := int32(0)
	if down {
		v = 1
	}
	d.emit(tb, 1, code, v) // EV_KEY
	d.emit(tb, 0, 0, 0)    // EV_SYN SYN_REPORT
}

func TestUinputButton(t *testing.T) {
	dev := newUinput(t, "rknas-test-keys", keyRestart)
	// Found by capability and name, as on a board with gpio-keys.
	found, err := button.FindInputDevice(keyRestart, "rknas-test-keys", nil)
	if err != nil || found.Path != dev.path {
		t.Fatalf("FindInputDevice = %+v, %v; want %s", found, err, dev.path)
	}
	src := button.NewInputSource(keyRestart, "rknas-test-keys")
	r := startHW(t, src, shortHolds, nil)
	start := button.MonotonicNow()
	dev.key(t, keyRestart, true)
	r.waitFor(t, button.EffectArmed)
	dev.key(t, keyRestart, false)
	e := r.waitFor(t, button.EffectRecover)
	p := waittest.Recv(t, r.recovered, "the recovery")
	if e.Held < shortHolds.Reset || p.Start < start || p.End > button.MonotonicNow() {
		t.Errorf("held %s, press %+v, start %s: timestamps not on CLOCK_MONOTONIC?", e.Held, p, start)
	}
	if s := r.w.Status(); s.Source != "input" || !strings.Contains(s.Device, dev.path) {
		t.Errorf("status = %+v", s)
	}
}

func TestUinputHeldAtStart(t *testing.T) {
	dev := newUinput(t, "rknas-test-held", keyRestart)
	dev.key(t, keyRestart, true)
	src := button.NewInputSource(keyRestart, "rknas-test-held")
	src.Path = dev.path
	r := startHW(t, src, shortHolds, nil)
	r.waitFor(t, button.EffectHeldAtStart)
	dev.key(t, keyRestart, false)
	r.waitFor(t, button.EffectIgnoredRelease)
}

// BenchmarkReleaseToRecovery reports the time from the release edge's
// timestamp to the recovery callback returning, the callback writing and
// fsyncing a file. "fake" stamps the release with CLOCK_MONOTONIC as it is
// sent (no kernel in the path); "gpio-sim" and "uinput" use kernel stamps.
func BenchmarkReleaseToRecovery(b *testing.B) {
	fsyncer := func(tb testing.TB) func(context.Context) error {
		f, err := os.Create(filepath.Join(tb.TempDir(), "journal"))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { f.Close() })
		return func(context.Context) error {
			if _, err := f.Write([]byte("reset\n")); err != nil {
				return err
			}
			return f.Sync()
		}
	}
	holds := button.Thresholds{Reset: 20 * time.Millisecond, Cancel: 10 * time.Second, Debounce: 5 * time.Millisecond}
	report := func(b *testing.B, lat []time.Duration) {
		if len(lat) == 0 {
			return
		}
		var sum time.Duration
		max := lat[0]
		for _, l := range lat {
			sum += l
			if l > max {
				max = l
			}
		}
		mean := sum / time.Duration(len(lat))
		b.ReportMetric(float64(mean.Microseconds()), "µs/release-to-recovery")
		b.Logf("release-to-recovery over %d presses: mean %s, max %s", len(lat), mean, max)
	}

	b.Run("fake", func(b *testing.B) {
		src := buttontest.NewSource()
		src.Debounced = true
		r := startHW(b, src, holds, fsyncer(b))
		var lat []time.Duration
		for i := 0; i < b.N; i++ {
			now := button.MonotonicNow()
			src.Press(now - 50*time.Millisecond)
			src.Release(now)
			r.waitFor(b, button.EffectRecover)
			waittest.Recv(b, r.recovered, "the recovery")
			lat = append(lat, r.w.Status().LastActionLatency)
		}
		report(b, lat)
	})
	b.Run("gpio-sim", func(b *testing.B) {
		sim := newSim(b, "rknas-bench-btn")
		src := button.NewGPIOSource(board.GPIOLine{Chip: "rknas-bench-btn", Offset: 0, ActiveLow: true}, 5*time.Millisecond, nil)
		r := startHW(b, src, holds, fsyncer(b))
		var lat []time.Duration
		for i := 0; i < b.N; i++ {
			if err := sim.Chips[0].Pulldown(0); err != nil {
				b.Fatal(err)
			}
			r.waitFor(b, button.EffectArmed)
			if err := sim.Chips[0].Pullup(0); err != nil {
				b.Fatal(err)
			}
			r.waitFor(b, button.EffectRecover)
			waittest.Recv(b, r.recovered, "the recovery")
			lat = append(lat, r.w.Status().LastActionLatency)
		}
		report(b, lat)
	})
	b.Run("uinput", func(b *testing.B) {
		dev := newUinput(b, fmt.Sprintf("rknas-bench-%d", os.Getpid()), keyRestart)
		src := button.NewInputSource(keyRestart, "")
		src.Path = dev.path
		r := startHW(b, src, holds, fsyncer(b))
		var lat []time.Duration
		for i := 0; i < b.N; i++ {
			dev.key(b, keyRestart, true)
			r.waitFor(b, button.EffectArmed)
			dev.key(b, keyRestart, false)
			r.waitFor(b, button.EffectRecover)
			waittest.Recv(b, r.recovered, "the recovery")
			lat = append(lat, r.w.Status().LastActionLatency)
		}
		report(b, lat)
	})
}
