package flash

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// BenchmarkFlashVsDD writes the same image to the same block device (a loop
// device on a file on this machine's disk) with the flasher and with
// `dd bs=4M oflag=direct`, alternating, and prints the flasher's write
// throughput as a ratio of dd's: the median of the rounds' ratios, with
// their spread (interquartile range / median). The flasher also reads
// everything back; that time is printed apart. Needs root for the loop
// device.
func BenchmarkFlashVsDD(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("needs root: it makes a loop device (sudo make bench)")
	}
	path := testImage(b, false)
	img, err := OpenImage(path)
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	backing := filepath.Join(b.TempDir(), "disk")
	if err := os.WriteFile(backing, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(backing, 1<<30); err != nil {
		b.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", "--direct-io=on", backing).Output()
	if err != nil {
		b.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", dev).Run()

	ddRound := func() float64 {
		start := time.Now()
		if out, err := exec.Command("dd", "if="+path, "of="+dev, "bs=4M", "oflag=direct", "status=none").CombinedOutput(); err != nil {
			b.Fatalf("dd: %v %s", err, out)
		}
		return float64(img.Size) / time.Since(start).Seconds()
	}
	flashRound := func() *Result {
		p, err := NewPersonal("bench password", "rknas-bench")
		if err != nil {
			b.Fatal(err)
		}
		res, err := Flash(context.Background(), Job{Image: img, Target: dev, Personal: p, Options: Options{AllowFixed: true},
			Inspector: NewInspector()})
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	// One round untimed: the first writes into the sparse backing file
	// allocate its blocks, which would slow whichever side came first.
	ddRound()
	var ddRates, flashRates, verify, ratios []float64
	for i := 0; i < max(b.N, 3); i++ {
		// Which side goes first alternates, so that what one side leaves
		// behind (the host's cache, its write queue) lands on both.
		var dd float64
		var res *Result
		if i%2 == 0 {
			dd, res = ddRound(), flashRound()
		} else {
			res, dd = flashRound(), ddRound()
		}
		ddRates = append(ddRates, dd)
		flashRates = append(flashRates, float64(res.Written)/res.Write.Seconds())
		verify = append(verify, float64(res.Written)/res.Verify.Seconds())
		ratios = append(ratios, flashRates[i]/ddRates[i])
	}
	med := func(v []float64) float64 { sort.Float64s(v); return v[len(v)/2] }
	dd, fl, vr, ratio := med(ddRates), med(flashRates), med(verify), med(ratios)
	// ratios is sorted now. The spread is the interquartile range over the
	// median, as in the other ratios' benchmarks: single rounds of this
	// size (about 0.1 s a side) swing by a third on a virtual disk.
	q := func(p float64) float64 { return ratios[int(p*float64(len(ratios)-1)+0.5)] }
	spread := 100 * (q(0.75) - q(0.25)) / ratio
	fmt.Printf("flash: write %.1f MiB/s, dd bs=4M oflag=direct %.1f MiB/s: ratio %.2f (goal >= 0.9, spread %.1f %%); read-back %.1f MiB/s (%d rounds, %s)\n",
		fl/(1<<20), dd/(1<<20), ratio, spread, vr/(1<<20), len(ratios), dev)
	b.ReportMetric(ratio, "flash/dd")
	b.ReportMetric(float64(len(ratios)), "samples")
	b.ReportMetric(spread, "spread_%")
}
