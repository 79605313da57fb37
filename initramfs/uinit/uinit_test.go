package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rknas/firmware/board"
)

func TestAuthdArgs(t *testing.T) {
	base := []string{"-state", "/state/authd", "-listen", ":443", "-tls", "auto", "-http-redirect", ":80", "-mdns",
		"-board", "qnap-ts433", "-manage-network", "-secret-console", "/dev/console"}
	for _, tt := range []struct {
		prov provisioning
		want []string
	}{
		{provisioning{}, base},
		{provisioning{passwordFile: "/boot/rknas/default-password", hostname: "rknas-abc123"},
			append(append([]string{}, base...), "-default-password-file", "/boot/rknas/default-password", "-default-hostname", "rknas-abc123")},
	} {
		if got := authdArgs("qnap-ts433", tt.prov); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("authdArgs(%+v) = %q, want %q", tt.prov, got, tt.want)
		}
	}
}

func TestRescueArgs(t *testing.T) {
	p, err := board.ByName("qnap-ts433")
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"console", "--port", "/dev/ttyS2", "--baud", "115200", "--state", "/state/authd", "--board", "qnap-ts433"}
	prov := provisioning{passwordFile: "/boot/rknas/default-password", hostname: "rknas-abc123"}
	for _, tt := range []struct {
		prov     provisioning
		failsafe bool
		want     []string
	}{
		{provisioning{}, false, base},
		{prov, false, append(slices.Clone(base), "--default-password-file", "/boot/rknas/default-password", "--default-hostname", "rknas-abc123")},
		{prov, true, append(slices.Clone(base), "--default-password-file", "/boot/rknas/default-password", "--default-hostname", "rknas-abc123", "--failsafe")},
	} {
		if got := rescueArgs(p, tt.prov, tt.failsafe); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("rescueArgs(%+v, failsafe %v) = %q, want %q", tt.prov, tt.failsafe, got, tt.want)
		}
	}
}

// TestBoardParts checks the boot check looks for what each profile says
// must come up: always the network, the eMMC where there is one, and the
// button of the kind the board has, and a kernel the profile holds for.
func TestBoardParts(t *testing.T) {
	for name, want := range map[string]string{
		"qnap-ts433":           "network kernel eMMC button",
		"hardkernel-odroid-m1": "network kernel eMMC",
		"nanopi-r4s":           "network kernel button",
		"qemu-virt":            "network kernel eMMC button",
		"none":                 "network",
	} {
		p, err := board.ByName(name)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, pt := range boardParts(p) {
			got = append(got, pt.name)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s: checks %v, want %s", name, got, want)
		}
	}
}

// TestKernelFits checks the boot names a kernel outside the profile's
// releases and accepts one within them.
func TestKernelFits(t *testing.T) {
	p, err := board.ByName("nanopi-r5s")
	if err != nil {
		t.Fatal(err)
	}
	for release, want := range map[string]string{
		"6.12.117+deb13-arm64": "Linux 6.12.117+deb13-arm64, within the profile's 6.12",
		"7.3.4+deb13-arm64":    "kernel 7.3.4+deb13-arm64 is outside the releases the nanopi-r5s profile was checked against (6.12)",
	} {
		path := filepath.Join(t.TempDir(), "osrelease")
		os.WriteFile(path, []byte(release+"\n"), 0o644)
		got, err := kernelFits(p, path)
		if err != nil {
			got = err.Error()
		}
		if !strings.HasPrefix(got, want) {
			t.Errorf("%s: %q, want %q", release, got, want)
		}
	}
}

// TestModuleOrder: the button's drivers load first (the failsafe window
// waits for them and nothing else), disks and loop last, the rest between,
// each group in the image's order and no module lost or doubled.
func TestModuleOrder(t *testing.T) {
	list := []string{"crc32c_generic", "ext4", "usb_storage", "evdev", "gpio_rockchip", "r8169", "gpio_keys", "loop", "dw_mmc_rockchip"}
	button, now, late := moduleOrder(list)
	for _, tc := range []struct {
		name      string
		got, want []string
	}{
		{"button", button, []string{"evdev", "gpio_rockchip", "gpio_keys"}},
		{"now", now, []string{"crc32c_generic", "ext4", "r8169", "dw_mmc_rockchip"}},
		{"late", late, []string{"usb_storage", "loop"}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}
