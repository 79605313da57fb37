//go:build vmtest

package vmtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/tlscert"
	"github.com/rknas/firmware/board/diskimage"
	"github.com/rknas/firmware/initramfs/vmrig"
	"github.com/rknas/firmware/internal/porttest"
)

// vm is one VM instance driven through scripts/vm, with its own run
// directory, state disk and API port.
type vm struct {
	t       testing.TB
	root    string // module root
	env     []string
	run     string
	port    int // forwarded to the guest's HTTPS port
	http    int // forwarded to the guest's plain HTTP port
	console *vmrig.Console
}

// newVM prepares a VM on disk (from vmDisk), booted through U-Boot, or
// with QEMU's -kernel and the extra kernel arguments kernelArgs when
// kernelArgs is not empty (U-Boot reads its command line from the disk).
func newVM(t testing.TB, name, disk string, kernelArgs string) *vm {
	root := moduleRoot(t)
	// Kept after the test (out/ is ignored by git) so a failure can be read.
	run := filepath.Join(root, "out", "vm", "vmtest", name)
	if err := os.RemoveAll(run); err != nil {
		t.Fatal(err)
	}
	port, plain := freePort(t), freePort(t)
	v := &vm{t: t, root: root, run: run, port: port, http: plain, console: &vmrig.Console{Path: filepath.Join(run, "console.log")}}
	v.env = append(os.Environ(),
		"RKNAS_VM_DIR="+run, "RKNAS_VM_DISK="+disk, "RKNAS_VM_EMMC="+filepath.Join(filepath.Dir(disk), "emmc.img"),
		fmt.Sprintf("RKNAS_VM_PORT=%d", port), fmt.Sprintf("RKNAS_VM_HTTP_PORT=%d", plain), "RKNAS_VM_NO_WAIT=1")
	if kernelArgs != "" {
		v.env = append(v.env, "RKNAS_VM_KERNEL=1", "RKNAS_VM_APPEND="+kernelArgs)
	}
	return v
}

func (v *vm) script(args ...string) string {
	v.t.Helper()
	cmd := exec.Command(filepath.Join(v.root, "scripts", "vm"), args...)
	cmd.Env = v.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		v.t.Fatalf("scripts/vm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// boot starts the VM and returns when authd is ready, with the time it took.
func (v *vm) boot(ctx context.Context) time.Duration {
	v.t.Helper()
	start := time.Now()
	v.script("start")
	v.t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(v.run, "qemu.pid")); err == nil {
			v.script("stop")
		}
	})
	v.wait(ctx, "authd ready")
	return time.Since(start)
}

func (v *vm) wait(ctx context.Context, marker string) string {
	v.t.Helper()
	line, err := v.console.Wait(ctx, marker)
	if err != nil {
		v.t.Fatal(err)
	}
	return line
}

// waitFrom is wait from the start of the log (the order of lines written by
// concurrent services is not fixed).
func (v *vm) waitFrom(ctx context.Context, marker string) string {
	v.t.Helper()
	c := &vmrig.Console{Path: v.console.Path}
	line, err := c.Wait(ctx, marker)
	if err != nil {
		v.t.Fatal(err)
	}
	return line
}

func (v *vm) ctl(ctx context.Context, line string) string {
	v.t.Helper()
	reply, err := vmrig.Ctl(ctx, filepath.Join(v.run, "ctl.sock"), line)
	if err != nil {
		v.t.Fatal(err)
	}
	return reply
}

var passwordRE = regexp.MustCompile(`default admin password:\s*(\S+)`)

// kernelBoot is the kernel argument that makes newVM boot with -kernel
// without adding anything else to the command line.
const kernelBoot = "rknas.kernelboot"

// TestVM boots the image twice on one state disk: API health, the RESET
// button through the control channel, clean power-off, persistence, and the
// hardware test binaries (go test -c for arm64) run inside the VM.
func TestVM(t *testing.T) {
	t.Parallel() // two VMs at a time: one per core, each with one vCPU
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	disk, label := vmDisk(t, hwTests(t))

	// The first boot runs the hardware tests, which needs rknas.hwtest on
	// the kernel command line: QEMU's -kernel gives it.
	v := newVM(t, "boot1", disk, "rknas.hwtest")
	took := v.boot(ctx)
	fmt.Printf("vmtest: boot 1 (-kernel, hardware tests first) to 'authd ready': %.1f s\n", took.Seconds())
	v.waitFrom(ctx, `msg="state boot count" count=1`)
	v.waitFrom(ctx, "state file system grown")
	if got := v.waitFrom(ctx, `msg=hostname`); !strings.Contains(got, label.hostname) {
		t.Errorf("hostname line %q; the flasher provisioned %s", got, label.hostname)
	}

	t.Run("https", func(t *testing.T) {
		// The fingerprint authd printed on the boot console is the one
		// served; plain HTTP only redirects.
		line := v.waitFrom(ctx, `msg="HTTPS certificate"`)
		m := regexp.MustCompile(`fingerprint_sha256=([0-9A-F:]{95})`).FindStringSubmatch(line)
		if m == nil || !strings.Contains(line, "names="+label.hostname+","+label.hostname+".local") {
			t.Fatalf("certificate line on the console: %q", line)
		}
		var served string
		c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, // compared below
			VerifyConnection: func(cs tls.ConnectionState) error {
				served = tlscert.Fingerprint(cs.PeerCertificates[0].Raw)
				return nil
			}}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", v.port))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if served != m[1] {
			t.Errorf("served certificate %s, the console printed %s", served, m[1])
		}
		resp, err = c.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/me", v.http))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "https://127.0.0.1/api/v1/me" {
			t.Errorf("plain HTTP: %d to %q, want 302 to https://127.0.0.1/api/v1/me", resp.StatusCode, loc)
		}
		fmt.Printf("vmtest: HTTPS on 443 with the device certificate %s...; plain HTTP on 80 redirects\n", served[:23])
		// QEMU's user network carries no multicast to the host: the
		// answers themselves are tested in authd/mdns between namespaces.
		actx, acancel := context.WithTimeout(ctx, 30*time.Second)
		defer acancel()
		if line := v.waitFrom(actx, `msg="announcing on the LAN"`); !strings.Contains(line, "name="+label.hostname+".local") || !strings.Contains(line, "port=443") {
			t.Errorf("mDNS announcement on the console: %q", line)
		}
	})

	t.Run("healthz", func(t *testing.T) {
		begin := time.Now()
		resp, err := newClient(t, v.port, nil).hc.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", v.port))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz: %s %s", resp.Status, body)
		}
		fmt.Printf("vmtest: GET /healthz through the forwarded port: %v\n", time.Since(begin).Round(time.Millisecond))
	})

	t.Run("reset button", func(t *testing.T) {
		for _, step := range []struct{ cmd, want string }{
			{"level?", "level 1 released"},
			{"press", "ok pressed"},
			{"level?", "level 0 pressed"},
			{"release", "ok released"},
			{"level?", "level 1 released"},
			{"hold 0.5", "ok held 500ms"},
			{"level?", "level 1 released"},
		} {
			if got := v.ctl(ctx, step.cmd); got != step.want {
				t.Errorf("%s: got %q, want %q", step.cmd, got, step.want)
			}
		}
		if got := v.ctl(ctx, "led?"); !regexp.MustCompile(`^led-status [01] led-alert [01]$`).MatchString(got) {
			t.Errorf("led?: got %q", got)
		}
	})

	t.Run("hardware tests", func(t *testing.T) {
		done := v.waitFrom(ctx, "RKNAS-TEST DONE")
		b, _ := os.ReadFile(v.console.Path)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "RKNAS-TEST FAIL") {
				t.Error(strings.TrimSpace(l))
			} else if strings.HasPrefix(l, "RKNAS-TEST PASS") {
				t.Log(strings.TrimSpace(l))
			}
		}
		fmt.Printf("vmtest: %s (output in %s)\n", strings.TrimSpace(done), v.console.Path)
	})

	begin := time.Now()
	v.script("stop")
	fmt.Printf("vmtest: clean power-off: %v\n", time.Since(begin).Round(time.Millisecond))
	v.waitFrom(ctx, "state unmounted cleanly")

	// The boards' way: U-Boot reads extlinux.conf from the disk.
	v2 := newVM(t, "boot2", disk, "")
	uboot := v2.boot(ctx)
	fmt.Printf("vmtest: boot 2 (U-Boot, extlinux.conf) to 'authd ready': %.1f s\n", uboot.Seconds())
	v2.waitFrom(ctx, `msg="state boot count" count=2`)
	if b, _ := os.ReadFile(v2.console.Path); passwordRE.Match(b) {
		t.Errorf("authd made up a default password although the flasher provisioned one")
	}
	st, out := tryLogin(t, v2.port, "admin", label.password)
	if st != http.StatusOK || out["status"] != "password_change_required" {
		t.Errorf("login with the label's password: %d %v", st, out)
	}
	v2.script("stop")

	// The same disk with QEMU's -kernel: what U-Boot costs.
	v3 := newVM(t, "boot3", disk, kernelBoot)
	direct := v3.boot(ctx)
	v3.script("stop")
	fmt.Printf("vmtest: boot 3 (-kernel, same initramfs) to 'authd ready': %.1f s; U-Boot / -kernel = %.2f\n",
		direct.Seconds(), uboot.Seconds()/direct.Seconds())
}

// flashed is what the flasher provisioned on a disk, read from its label.
type flashed struct {
	password, hostname string
}

var labelRE = regexp.MustCompile(`(?m)^\s*(hostname|default password):\s*(\S+)`)

// vmDisk writes the qemu-virt image to a new 1 GiB disk file with the
// flasher, as an owner would write a card, and returns it with what the
// flasher provisioned. With stateDir, the state partition gets a 480 MiB
// file system holding those files (hardware test binaries), still smaller
// than the partition, so the first boot grows it as it grows a fresh one.
func vmDisk(t testing.TB, stateDir string) (string, flashed) {
	dir := t.TempDir()
	disk, labelPath := filepath.Join(dir, "disk.img"), filepath.Join(dir, "label.txt")
	cmd := exec.Command("go", "run", "./board/cmd/rknas-flash", "--yes", "--size", "1G", "--label", labelPath, image(t), disk)
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rknas-flash: %v\n%s", err, out)
	}
	b, err := os.ReadFile(labelPath)
	if err != nil {
		t.Fatal(err)
	}
	var f flashed
	for _, m := range labelRE.FindAllStringSubmatch(string(b), -1) {
		if m[1] == "hostname" {
			f.hostname = m[2]
		} else {
			f.password = m[2]
		}
	}
	if f.password == "" || f.hostname == "" {
		t.Fatalf("label without password or hostname:\n%s", b)
	}
	if stateDir != "" {
		off := int64(diskimage.BootStart+diskimage.BootSectors) * diskimage.SectorSize
		args := []string{"-q", "-F", "-L", diskimage.StateLabel, "-b", "4096", "-m", "0", "-T", "default",
			"-E", fmt.Sprintf("offset=%d", off), "-d", stateDir, disk, "480M"}
		if out, err := exec.Command("mkfs.ext4", args...).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4 (install e2fsprogs: scripts/deps.sh): %v\n%s", err, out)
		}
	}
	return disk, f
}

// tryLogin posts a login and returns the status and the answer.
func tryLogin(t *testing.T, port int, user, password string) (int, map[string]any) {
	t.Helper()
	c := newClient(t, port, nil)
	st, out, err := c.call("POST", "/api/v1/login", map[string]string{"username": user, "password": password})
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return st, out
}

// hwTests compiles, for arm64, the test binaries of every package with a test
// file that checks RKNAS_REQUIRE_HW, each into its own directory with its
// testdata and a .run file selecting the tests of those files. RKNAS_VM_HWTEST
// (comma-separated ./dirs) replaces the discovered list; RKNAS_VM_HWTEST_SKIP
// removes packages from it (default ./authd/netconf: its network-namespace
// test needs dnsmasq and iproute2, which the image does not carry).
func hwTests(t *testing.T) string {
	root := moduleRoot(t)
	out, err := exec.Command("grep", "-rl", "--include=*_test.go", "RKNAS_REQUIRE_HW", root).Output()
	if err != nil {
		t.Fatalf("grep for hardware tests: %v", err)
	}
	files := map[string][]string{} // ./dir -> test files
	var pkgs []string
	for _, f := range strings.Fields(string(out)) {
		d, _ := filepath.Rel(root, filepath.Dir(f))
		if strings.HasPrefix(d, "out") || strings.HasPrefix(d, "initramfs") {
			continue
		}
		d = "./" + d
		if files[d] == nil {
			pkgs = append(pkgs, d)
		}
		files[d] = append(files[d], f)
	}
	if env := os.Getenv("RKNAS_VM_HWTEST"); env != "" {
		pkgs = strings.Split(env, ",")
	}
	skip := os.Getenv("RKNAS_VM_HWTEST_SKIP")
	if _, set := os.LookupEnv("RKNAS_VM_HWTEST_SKIP"); !set {
		// netconf's namespace test needs dnsmasq and iproute2; board/flash's
		// needs the disks TestVMFlash attaches, and runs there.
		skip = "./authd/netconf,./board/flash"
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.MkdirAll(filepath.Join(dir, "hwtest"), 0o755); err != nil {
		t.Fatal(err)
	}
	var built []string
	for _, p := range pkgs {
		if slices.Contains(strings.Split(skip, ","), p) {
			continue
		}
		name := strings.ReplaceAll(strings.Trim(strings.TrimPrefix(p, "./"), "/"), "/", "_")
		pd := filepath.Join(dir, "hwtest", name)
		bin := filepath.Join(pd, name+".test")
		cmd := exec.Command("go", "test", "-tags", "hwtest", "-c", "-o", bin, p)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOARCH=arm64", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go test -c %s for arm64: %v\n%s", p, err, out)
		}
		if td := filepath.Join(root, p, "testdata"); isDir(td) {
			if out, err := exec.Command("cp", "-r", td, pd).CombinedOutput(); err != nil {
				t.Fatalf("copy %s: %v\n%s", td, err, out)
			}
		}
		if re := testNames(t, files[p]); re != "" {
			if err := os.WriteFile(bin+".run", []byte(re+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		built = append(built, p)
	}
	t.Logf("hardware test packages: %v", built)
	return dir
}

var testFuncRE = regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`)

// testNames returns a -test.run pattern matching the tests defined in files.
func testNames(t *testing.T, files []string) string {
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range testFuncRE.FindAllStringSubmatch(string(b), -1) {
			names = append(names, m[1])
		}
	}
	if len(names) == 0 {
		return ""
	}
	return "^(" + strings.Join(names, "|") + ")$"
}

// image builds (or reuses) the qemu-virt disk image once per test run.
func image(t testing.TB) string {
	if p := os.Getenv("RKNAS_VM_IMAGE"); p != "" {
		return p
	}
	imageOnce.Do(func() {
		cmd := exec.Command(filepath.Join(moduleRoot(t), "scripts", "image.sh"), "qemu-virt")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		imagePath, imageErr = strings.TrimSpace(string(out)), err
	})
	if imageErr != nil {
		t.Fatalf("scripts/build-image.sh: %v", imageErr)
	}
	return imagePath
}

func moduleRoot(t testing.TB) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func freePort(t testing.TB) int { return porttest.Free(t) }

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// cutPower kills QEMU: the power cut.
func cutPower(t *testing.T, v *vm) {
	t.Helper()
	pid, err := os.ReadFile(filepath.Join(v.run, "qemu.pid"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
	syscall.Kill(p, syscall.SIGKILL)
	for syscall.Kill(p, 0) == nil {
		time.Sleep(50 * time.Millisecond)
	}
	os.Remove(filepath.Join(v.run, "qemu.pid"))
}
