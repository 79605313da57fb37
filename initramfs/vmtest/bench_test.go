//go:build vmtest

package vmtest

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The VM's figures, run by make bench-vm (scripts/vm-measure.sh), which
// prints them as one table with their goals (scripts/benchtable). Each
// measures the firmware against its floor in one run, in alternating
// rounds where there are rounds, and reports the median of the rounds.
// The rounds are RKNAS_BENCH_ROUNDS (default 5), not b.N: a benchmark runs
// once with b.N = 1 before any count given by -benchtime, and every run
// here costs boots; run them with -benchtime 1x.

func rounds(tb testing.TB) int {
	n := 5
	if s := os.Getenv("RKNAS_BENCH_ROUNDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 50 {
			tb.Fatalf("RKNAS_BENCH_ROUNDS=%q: want a count from 1 to 50", s)
		}
		n = v
	}
	return n
}

// buildImage runs scripts/build-image.sh with args and returns the image.
func buildImage(tb testing.TB, args ...string) string {
	tb.Helper()
	cmd := exec.Command(filepath.Join(moduleRoot(tb), "scripts", "build-image.sh"), args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("scripts/build-image.sh %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

func fileSize(tb testing.TB, path string) float64 {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return float64(fi.Size())
}

// spread is (max - min) / median of v, in percent: how far the samples of
// one run are apart.
func spread(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	m := median(v)
	if m == 0 {
		return 0
	}
	return 100 * (slices.Max(v) - slices.Min(v)) / math.Abs(m)
}

// reportFigure reports a figure's samples (one per round, or per press) as
// their median in unit, with how many there were and their spread, which
// make bench-vm's table prints beside the median.
func reportFigure(b *testing.B, samples []float64, unit string) {
	b.ReportMetric(median(samples), unit)
	b.ReportMetric(float64(len(samples)), "samples")
	b.ReportMetric(spread(samples), "spread_%")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkInitramfsSize compares the firmware's initramfs with u-root's
// core commands alone, built by the same u-root, both as they ship (zstd)
// and both compressed with xz -9 (the codec this figure was first measured
// with). Goal: ratio <= 1.4. The qemu-virt image's initramfs with its
// kernel modules is reported too.
func BenchmarkInitramfsSize(b *testing.B) {
	barePath, firmwarePath := buildImage(b, "--bare"), buildImage(b)
	bare, firmware := fileSize(b, barePath), fileSize(b, firmwarePath)
	image(b)
	withModules := fileSize(b, filepath.Join(moduleRoot(b), "out", "images", "rknas-qemu-virt.initramfs.cpio.zst"))
	b.ReportMetric(bare/1e6, "bare_MB")
	b.ReportMetric(firmware/1e6, "firmware_MB")
	b.ReportMetric(firmware/bare, "ratio")
	b.ReportMetric(withModules/bare, "qemu_virt_with_modules_ratio")
	b.ReportMetric(xzSize(b, firmwarePath)/xzSize(b, barePath), "xz_ratio")
}

// xzSize is the size of the uncompressed archive the build left beside the
// image (out/image/<variant>/initramfs.cpio) compressed with xz -9.
func xzSize(b *testing.B, img string) float64 {
	cpio := filepath.Join(strings.TrimSuffix(img, ".cpio.zst"), "initramfs.cpio")
	out, err := exec.Command("sh", "-c", `xz -9 -T2 -c "$1" | wc -c`, "sh", cpio).Output()
	if err != nil {
		b.Fatalf("xz %s: %v", cpio, err)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || n == 0 {
		b.Fatalf("xz %s: size %q", cpio, out)
	}
	return n
}

// bootSpec is one way of booting the VM for a timing.
type bootSpec struct {
	name   string
	kernel bool   // QEMU's -kernel and -initrd instead of U-Boot
	initrd string // another initramfs for -kernel (the bare u-root image)
	marker string // the console line that ends the timing
}

var (
	firmwareKernel = bootSpec{name: "kernel", kernel: true, marker: "authd ready"}
	firmwareUBoot  = bootSpec{name: "uboot", marker: "authd ready"}
)

// U-Boot's console lines around its autoboot countdown: the line before
// it ends as the countdown starts, its own line as it ends.
const (
	ubootBeforeCountdown = "Net: "
	ubootCountdown       = "Hit any key to stop autoboot"
)

// bootTime boots disk as spec says and returns the seconds from QEMU's
// start to spec.marker on the console; then it powers the VM off (cleanly
// when authd runs, so the next boot finds its state partition clean).
func bootTime(b *testing.B, round int, disk string, spec bootSpec) float64 {
	took, _ := bootTimes(b, round, disk, spec)
	return took
}

// bootTimes is bootTime that also returns, for a boot through U-Boot, the
// seconds of U-Boot's autoboot countdown (read to the console's 50 ms).
func bootTimes(b *testing.B, round int, disk string, spec bootSpec) (took, countdown float64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	v := newVM(b, fmt.Sprintf("bench-%s-%d", spec.name, round), disk, "")
	v.env = append(v.env, "RKNAS_VM_EMMC=none")
	if spec.kernel {
		v.env = append(v.env, "RKNAS_VM_KERNEL=1")
	}
	if spec.initrd != "" {
		v.env = append(v.env, "RKNAS_VM_INITRD="+spec.initrd)
	}
	v.script("start")
	// A boot that fails its wait leaves no QEMU behind to slow the rest.
	b.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(v.run, "qemu.pid")); err == nil {
			quitQEMU(b, v)
		}
	})
	if !spec.kernel {
		v.wait(ctx, ubootBeforeCountdown)
		from := time.Now()
		v.wait(ctx, ubootCountdown)
		countdown = time.Since(from).Seconds()
	}
	v.wait(ctx, spec.marker)
	seen := time.Now()
	raw, err := os.ReadFile(filepath.Join(v.run, "started"))
	if err != nil {
		b.Fatal(err)
	}
	started, err := strconv.ParseFloat(strings.TrimSpace(string(raw)), 64)
	if err != nil {
		b.Fatalf("%s/started: %v", v.run, err)
	}
	took = float64(seen.UnixNano())/1e9 - started
	if spec.initrd == "" {
		v.script("stop")
	} else {
		quitQEMU(b, v)
	}
	return took, countdown
}

// quitQEMU ends a VM with no power-off handling of its own (the bare image).
func quitQEMU(b *testing.B, v *vm) {
	b.Helper()
	c, err := net.Dial("unix", filepath.Join(v.run, "monitor.sock"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, "quit")
	raw, _ := os.ReadFile(filepath.Join(v.run, "qemu.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	for i := 0; i < 200 && pid > 0 && exec.Command("kill", "-0", strconv.Itoa(pid)).Run() == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	os.Remove(filepath.Join(v.run, "qemu.pid"))
}

// alternate boots first and second in turn (which goes first alternating)
// for the benchmark's rounds and returns the seconds of each, and the
// seconds of first's U-Boot countdowns (0 for a -kernel boot).
func alternate(b *testing.B, disk string, first, second bootSpec) (ta, tb, countdowns []float64) {
	one := func(n int) {
		t, c := bootTimes(b, n, disk, first)
		ta, countdowns = append(ta, t), append(countdowns, c)
	}
	for n := range rounds(b) {
		if n%2 == 0 {
			one(n)
			tb = append(tb, bootTime(b, n, disk, second))
		} else {
			tb = append(tb, bootTime(b, n, disk, second))
			one(n)
		}
	}
	return ta, tb, countdowns
}

func ratios(num, den []float64) []float64 {
	r := make([]float64, len(num))
	for i := range num {
		r[i] = num[i] / den[i]
	}
	return r
}

// BenchmarkBootRatio compares the firmware's boot to "authd ready" with
// the bare u-root core image's boot to its uinit, both through QEMU's
// -kernel with the same kernel and flags, in alternating rounds. The
// firmware's first boot (which grows the state partition and makes the
// device's certificate and database) is timed apart; the rounds are the
// boots that follow, as every later boot of a NAS is. Goal: ratio <= 1.3.
func BenchmarkBootRatio(b *testing.B) {
	bare := bootSpec{name: "bare", kernel: true, initrd: buildImage(b, "--bare"), marker: "rknas-bare-ready"}
	disk, _ := vmDisk(b, "")
	b.ResetTimer()
	first := bootTime(b, 0, disk, bootSpec{name: "first", kernel: true, marker: "authd ready"})
	fw, br, _ := alternate(b, disk, firmwareKernel, bare)
	fmt.Printf("vmbench: firmware boots (s): %.2f; bare boots (s): %.2f\n", fw, br)
	b.ReportMetric(first, "first_boot_s")
	b.ReportMetric(median(br), "bare_s")
	b.ReportMetric(median(fw), "firmware_s")
	reportFigure(b, ratios(fw, br), "ratio")
}

// BenchmarkUBootRatio compares the qemu-virt disk's boot through U-Boot
// (QEMU's -bios) and extlinux with QEMU's -kernel boot of the same
// initramfs, both to "authd ready" on the same disk, in alternating
// rounds after a first boot. Goal: ratio <= 1.3.
func BenchmarkUBootRatio(b *testing.B) {
	disk, _ := vmDisk(b, "")
	b.ResetTimer()
	bootTime(b, 0, disk, bootSpec{name: "first", kernel: true, marker: "authd ready"})
	ub, k, countdown := alternate(b, disk, firmwareUBoot, firmwareKernel)
	fmt.Printf("vmbench: U-Boot boots (s): %.2f; -kernel boots (s): %.2f\n", ub, k)
	b.ReportMetric(median(ub), "uboot_s")
	b.ReportMetric(median(k), "kernel_s")
	reportFigure(b, ratios(ub, k), "ratio")
	// The countdown is Debian's u-boot-qemu's (bootdelay=2), before it
	// reads anything of the disk: the ratio without it is the image's part.
	without := make([]float64, len(ub))
	for i := range ub {
		without[i] = ub[i] - countdown[i]
	}
	b.ReportMetric(median(countdown), "countdown_s")
	b.ReportMetric(median(ratios(without, k)), "ratio_without_countdown")
}

var fsyncRE = regexp.MustCompile(`^fsync (\d+) µs$`)

// BenchmarkResetDurable holds the simulated RESET button for 5 s, three times per round,
// and reads the time from the release edge's kernel timestamp to the reset
// being on disk ("button: recovery durable"), and, as the floor, the time
// of one fsync of 4 KiB on the same state partition (the control
// channel's fsync probe). Goal: <= 60 ms.
func BenchmarkResetDurable(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	disk, _ := vmDisk(b, "")
	v := newVM(b, "bench-reset", disk, "")
	v.boot(ctx)
	var durable, fsync []float64
	b.ResetTimer()
	// A press costs seconds where a boot costs tens: three per round.
	for range 3 * rounds(b) {
		for range 3 {
			reply := v.ctl(ctx, "fsync")
			m := fsyncRE.FindStringSubmatch(reply)
			if m == nil {
				b.Fatalf("fsync probe: %q", reply)
			}
			us, _ := strconv.ParseFloat(m[1], 64)
			fsync = append(fsync, us/1000)
		}
		v.console.Mark()
		if got := v.ctl(ctx, "hold 5"); got != "ok held 5s" {
			b.Fatalf("hold 5: %q", got)
		}
		line := v.wait(ctx, "button: recovery durable")
		m := latencyRE.FindStringSubmatch(line)
		if m == nil {
			b.Fatalf("no latency in %q", line)
		}
		d, err := time.ParseDuration(m[1])
		if err != nil {
			b.Fatalf("latency %q: %v", m[1], err)
		}
		durable = append(durable, float64(d.Microseconds())/1000)
		v.wait(ctx, "recovery action done")
	}
	b.StopTimer()
	fmt.Printf("vmbench: release to durable (ms): %v; one fsync (ms): %v\n", durable, fsync)
	reportFigure(b, durable, "ms")
	b.ReportMetric(median(fsync), "fsync_ms")
}
