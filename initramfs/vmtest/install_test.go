//go:build vmtest

package vmtest

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var diskRE = regexp.MustCompile(`msg="state partition mounted" dev=\S+ on=/state disk=(\S+)`)

// TestVMInstall is the way Rockchip NAS owners move to the eMMC: boot the
// firmware from a card, install it to the eMMC from the rescue console
// (confirmed with RESET), then start from the eMMC alone. The eMMC is an
// SD card on QEMU's sdhci-pci (QEMU 7.2 has no eMMC device); U-Boot cannot
// boot from that controller, so the installed copy boots as the VM's only
// disk. The accounts and the provisioned password and hostname come along;
// the new medium has its own disk GUID.
func TestVMInstall(t *testing.T) {
	t.Parallel() // two VMs at a time: one per core, each with one vCPU
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	bin := rescueBin(t)
	disk, label := vmDisk(t, "")
	emmc := filepath.Join(t.TempDir(), "emmc.img")
	if b, err := exec.Command("truncate", "-s", "2G", emmc).CombinedOutput(); err != nil {
		t.Fatalf("truncate: %v\n%s", err, b)
	}

	v := newVM(t, "install1", disk, "")
	v.env = append(v.env, "RKNAS_VM_EMMC="+emmc)
	v.boot(ctx)
	v.waitFrom(ctx, `part=eMMC found=/dev/mmcblk0`)
	v.waitFrom(ctx, `part=kernel found="Linux 6.12.`)
	src := diskRE.FindStringSubmatch(v.waitFrom(ctx, "state partition mounted"))
	admin := newClient(t, v.port, nil)
	admin.must(200, "POST", "/api/v1/login", login("admin", label.password))
	admin.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": label.password, "new_password": "admin passphrase 1"})
	admin.must(201, "POST", "/api/v1/users", map[string]any{"name": "carol", "password": "carol passphrase", "must_change_password": false})

	port := serialPTY(t, v)
	start := time.Now()
	out := attachConfirmed(ctx, t, v, bin, port, "install-emmc")
	fmt.Printf("vmtest: rescue install-emmc in %.1f s:\n%s", time.Since(start).Seconds(), out)
	for _, want := range []string{"Installed to /dev/mmcblk0", "state copied", "take out the TF card"} {
		if !strings.Contains(out, want) {
			t.Errorf("install-emmc output lacks %q", want)
		}
	}
	// authd went on serving during the install.
	if st, _ := tryLogin(t, v.port, "carol", "carol passphrase"); st != http.StatusOK {
		t.Errorf("authd does not answer after the install: %d", st)
	}
	v.script("stop")

	// The eMMC alone.
	w := newVM(t, "install2", emmc, "")
	w.env = append(w.env, "RKNAS_VM_EMMC=none")
	took := w.boot(ctx)
	fmt.Printf("vmtest: the installed eMMC boots to 'authd ready' in %.1f s\n", took.Seconds())
	w.waitFrom(ctx, "msg=hostname name="+label.hostname)
	dst := diskRE.FindStringSubmatch(w.waitFrom(ctx, "state partition mounted"))
	if src == nil || dst == nil || src[1] == dst[1] {
		t.Errorf("the eMMC's disk GUID %v is the card's %v: the two media would look alike", dst, src)
	}
	if st, out := tryLogin(t, w.port, "admin", "admin passphrase 1"); st != http.StatusOK || out["status"] != "ok" {
		t.Errorf("admin on the eMMC with the password set on the card: %d %v", st, out)
	}
	if st, out := tryLogin(t, w.port, "carol", "carol passphrase"); st != http.StatusOK {
		t.Errorf("carol, made on the card, on the eMMC: %d %v", st, out)
	}
	w.script("stop")
}
