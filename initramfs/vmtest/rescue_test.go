//go:build vmtest

package vmtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rknas/firmware/initramfs/vmrig"
)

// serialPTY bridges the VM's console (QEMU's PL011 UART on a unix socket)
// to a pty with socat, so the rescue client opens it as a serial port.
func serialPTY(t *testing.T, v *vm) string {
	link := filepath.Join(t.TempDir(), "ttyVM")
	cmd := exec.Command("socat", "pty,link="+link+",raw,echo=0", "UNIX-CONNECT:"+filepath.Join(v.run, "console.sock"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("socat (scripts/deps.sh installs it): %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(link); err == nil {
			return link
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("socat made no pty")
	return ""
}

// rescueBin builds the rescue client for the host.
func rescueBin(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "rescue")
	cmd := exec.Command("go", "build", "-o", bin, "./rescue")
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build rescue: %v\n%s", err, out)
	}
	return bin
}

// attachConfirmed runs `rescue attach --run action --yes args...` on the VM's UART
// and, when the console asks for the button, presses RESET briefly through
// gpio-sim. It returns the client's output.
func attachConfirmed(ctx context.Context, t *testing.T, v *vm, bin, port, action string, args ...string) string {
	v.console.Mark()
	cmd := exec.CommandContext(ctx, bin, append([]string{"attach", "--port", port, "--baud", "115200", "--run", action, "--yes", "--timeout", "90s"}, args...)...)
	out := make(chan []byte, 1)
	errc := make(chan error, 1)
	go func() {
		b, err := cmd.CombinedOutput()
		out <- b
		errc <- err
	}()
	v.wait(ctx, "confirm: press the button on the board")
	// The prompt is printed just before the console starts watching the
	// line, and only a press that starts while it watches counts; a person
	// is slower than this test, so press again, as a person would, while
	// the console still waits.
	var b []byte
	var err error
	for presses := 0; b == nil; presses++ {
		if presses == 5 {
			t.Fatal("the console did not take any of 5 presses")
		}
		// The control channel has been seen to lose a command when the
		// guest reopens its port just as the host connects: give each
		// press a few seconds and press again rather than wait forever.
		hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
		got, herr := vmrig.Ctl(hctx, filepath.Join(v.run, "ctl.sock"), "hold 0.5")
		hcancel()
		switch {
		case herr != nil && ctx.Err() == nil:
			fmt.Printf("vmtest: press %d: %v; pressing again\n", presses+1, herr)
		case got != "ok held 500ms":
			t.Fatalf("hold 0.5: %q %v", got, herr)
		default:
			// The console says "button pressed" when it took the press;
			// the action may then run for minutes (install-emmc).
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, werr := v.console.Wait(wctx, "button pressed")
			cancel()
			if werr == nil {
				b, err = <-out, <-errc
				continue
			}
		}
		select {
		case b = <-out:
			err = <-errc
		default:
		}
	}
	if err != nil {
		t.Fatalf("rescue attach --run %s: %v\n%s", action, err, b)
	}
	return string(b)
}

// TestVMRescue resets the admin from the serial console, confirmed with the
// (simulated) RESET button: once through authd while it runs, and once in
// failsafe mode, entered by holding RESET at power-on, with authd not
// started.
func TestVMRescue(t *testing.T) {
	t.Parallel() // two VMs at a time: one per core, each with one vCPU
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	bin := rescueBin(t)
	state, label := vmDisk(t, "")

	v := newVM(t, "rescue1", state, "")
	v.boot(ctx)
	def := label.password
	var step int64
	admin := newClient(t, v.port, nil)
	admin.must(200, "POST", "/api/v1/login", login("admin", def))
	admin.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": def, "new_password": "admin passphrase 1"})
	secret := admin.must(200, "POST", "/api/v1/me/2fa/enroll", map[string]string{"password": "admin passphrase 1"})["secret"].(string)
	admin.must(200, "POST", "/api/v1/me/2fa/verify", map[string]string{"code": freshCode(t, secret, &step)})

	port := serialPTY(t, v)
	out := attachConfirmed(ctx, t, v, bin, port, "reset-admin")
	fmt.Printf("vmtest: rescue reset-admin through authd:\n%s", out)
	if got := newClient(t, v.port, nil).must(200, "POST", "/api/v1/login", login("admin", def)); got["status"] != "password_change_required" {
		t.Fatalf("admin after the console reset: %v", got)
	}
	c := newClient(t, v.port, nil)
	c.must(200, "POST", "/api/v1/login", login("admin", def))
	c.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": def, "new_password": "admin passphrase 2"})
	v.script("stop")

	// Failsafe: RESET held while the board starts.
	v2 := newVM(t, "rescue2", state, "")
	v2.script("start")
	v2.t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(v2.run, "qemu.pid")); err == nil {
			v2.script("stop")
		}
	})
	v2.wait(ctx, "failsafe window")
	v2.ctl(ctx, "press")
	v2.wait(ctx, "FAILSAFE mode")
	v2.ctl(ctx, "release")
	port2 := serialPTY(t, v2)
	out = attachConfirmed(ctx, t, v2, bin, port2, "reset-admin")
	fmt.Printf("vmtest: rescue reset-admin in failsafe mode:\n%s", out)
	if newClient(t, v2.port, nil).reachable(2 * time.Second) {
		t.Error("authd answers in failsafe mode")
	}
	v2.script("stop")

	v3 := newVM(t, "rescue3", state, "")
	v3.boot(ctx)
	if got := newClient(t, v3.port, nil).must(200, "POST", "/api/v1/login", login("admin", def)); got["status"] != "password_change_required" {
		t.Fatalf("admin after the failsafe reset: %v", got)
	}
	v3.script("stop")
}
