//go:build vmtest

package vmtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestVMWatchdog wedges authd on purpose (SIGSTOP through the control
// channel) and checks that uinit stops feeding QEMU's i6300esb watchdog once
// authd has been silent for the grace, that the watchdog resets the VM, and
// that the board comes back by itself and serves, with its accounts.
func TestVMWatchdog(t *testing.T) {
	t.Parallel() // two VMs at a time: one per core, each with one vCPU
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	disk, label := vmDisk(t, "")
	// A short grace keeps the test short; the hardware timeout is the
	// firmware's own (30 s).
	v := newVM(t, "watchdog", disk, "rknas.watchdog-grace=15")
	v.env = append(v.env, "RKNAS_VM_REBOOT=1")
	v.boot(ctx)
	v.waitFrom(ctx, `msg="state boot count" count=1`)
	if line := v.waitFrom(ctx, `msg="watchdog armed"`); !strings.Contains(line, `identity="i6300ESB timer" timeout=30s grace=15s`) {
		t.Fatalf("watchdog line: %q", line)
	}
	admin := newClient(t, v.port, nil)
	admin.must(200, "POST", "/api/v1/login", login("admin", label.password))

	if reply := v.ctl(ctx, "freeze authd"); !strings.HasPrefix(reply, "ok froze authd [") {
		t.Fatalf("freeze authd: %q", reply)
	}
	frozen := time.Now()
	v.wait(ctx, "FAILED: watchdog: authd has not answered")
	starved := time.Since(frozen)
	// A reset, not a clean reboot: the next thing on the console is the
	// new boot, with no power-off in between.
	line := v.wait(ctx, `msg="state boot count"`)
	reset := time.Since(frozen)
	if !strings.Contains(line, "count=2") {
		t.Fatalf("after the watchdog: %q, want the second boot", line)
	}
	if log, err := os.ReadFile(v.console.Path); err != nil || strings.Contains(string(log), "state unmounted cleanly") {
		t.Errorf("the state partition was unmounted cleanly (%v): the board rebooted, the watchdog did not reset it", err)
	}
	// The hardware itself says so (WDIOF_CARDRESET in the boot status).
	v.wait(ctx, `msg="watchdog: the last reset was by the watchdog"`)
	v.wait(ctx, `msg="watchdog armed"`)
	v.wait(ctx, "authd ready")
	fmt.Printf("vmtest: authd frozen; feeding stopped after %.1f s, the watchdog reset the VM after %.1f s, serving again after %.1f s\n",
		starved.Seconds(), reset.Seconds(), time.Since(frozen).Seconds())

	// Serving again, with the accounts it had.
	again := newClient(t, v.port, nil)
	if out := again.must(200, "POST", "/api/v1/login", login("admin", label.password)); out["status"] != "password_change_required" {
		t.Fatalf("login after the reset: %v", out)
	}
	// The count of watchdog boots in a row went back to 0 at authd's first
	// answer (only the second boot has one to clear).
	v.waitFrom(ctx, `msg="watchdog: authd answers; boots ended by the watchdog in a row cleared" was=1`)
}
