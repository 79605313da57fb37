package board

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestDetectRealCompatibles(t *testing.T) {
	tests := []struct {
		dir       string
		want      string
		reason    string
		button    ButtonKind
		keyCode   uint16
		line      string // "" when the profile has no underlying line
		uart      UART
		emmc      int
		statusLED string
	}{
		{"qnap-ts433", "qnap-ts433", `compatible "qnap,ts433"`, ButtonInput, 408, "gpio0/13", UART{"ttyS2", 115200}, 0, "green:disk"},
		{"qnap-ts233", "qnap-ts233", `compatible "qnap,ts233"`, ButtonInput, 408, "gpio0/13", UART{"ttyS2", 115200}, 0, "hdd1:green:disk"},
		{"friendlyelec-cm3588-nas", "friendlyelec-cm3588-nas", `compatible "friendlyarm,cm3588-nas"`, ButtonInput, 0x101, "gpio0/29", UART{"ttyS2", 1500000}, 0, "green:indicator"},
		{"nanopi-r5c", "nanopi-r5c", `compatible "friendlyarm,nanopi-r5c"`, ButtonInput, 408, "gpio0/15", UART{"ttyS2", 1500000}, 1, "red:power"},
		{"nanopi-r5s", "nanopi-r5s", `compatible "friendlyarm,nanopi-r5s"`, ButtonNone, 0, "", UART{"ttyS2", 1500000}, 1, "red:power"},
		{"nanopi-r4s", "nanopi-r4s", `compatible "friendlyarm,nanopi-r4s"`, ButtonInput, 408, "gpio1/22", UART{"ttyS2", 1500000}, -1, "red:power"},
		{"nanopi-r4s-enterprise", "nanopi-r4s-enterprise", `compatible "friendlyarm,nanopi-r4s-enterprise"`, ButtonInput, 408, "gpio1/22", UART{"ttyS2", 1500000}, -1, "red:power"},
		{"nanopi-r3s", "nanopi-r3s", `compatible "friendlyarm,nanopi-r3s"`, ButtonInput, 408, "gpio0/18", UART{"ttyS2", 1500000}, 0, "red:power"},
		{"qnap-ts133", "qnap-ts133", `compatible "qnap,ts133"`, ButtonInput, 408, "gpio0/13", UART{"ttyS2", 115200}, 0, "hdd1:green:disk"},
		{"radxa-e52c", "radxa-e52c", `compatible "radxa,e52c"`, ButtonInput, 0x100, "gpio4/11", UART{"ttyS2", 1500000}, 0, "green:status"},
		{"nanopi-r6s", "nanopi-r6s", `compatible "friendlyarm,nanopi-r6s"`, ButtonInput, 0x101, "gpio1/16", UART{"ttyS2", 1500000}, 1, "sys_led"},
		{"nanopi-r6c", "nanopi-r6c", `compatible "friendlyarm,nanopi-r6c"`, ButtonInput, 0x101, "gpio1/16", UART{"ttyS2", 1500000}, 1, "sys_led"},
		{"rockpro64-v2.1", "pine64-rockpro64", `compatible "pine64,rockpro64-v2.1"`, ButtonInput, 116, "gpio0/5", UART{"ttyS2", 1500000}, 2, "work"},
		{"rockpro64-v2.0", "pine64-rockpro64", `compatible "pine64,rockpro64-v2.0"`, ButtonInput, 116, "gpio0/5", UART{"ttyS2", 1500000}, 2, "work"},
		{"odroid-m1", "hardkernel-odroid-m1", `compatible "hardkernel,odroid-m1"`, ButtonNone, 0, "", UART{"ttyS2", 1500000}, 0, "blue:heartbeat"},
		{"odroid-m1-old", "hardkernel-odroid-m1", `compatible "rockchip,rk3568-odroid-m1"`, ButtonNone, 0, "", UART{"ttyS2", 1500000}, 0, "blue:heartbeat"},
		{"rock-5-itx", "radxa-rock-5-itx", `compatible "radxa,rock-5-itx"`, ButtonInput, 141, "", UART{"ttyS2", 1500000}, 0, "power-led1"},
		{"orangepi-5-plus", "orangepi-5-plus", `compatible "xunlong,orangepi-5-plus"`, ButtonInput, 0x168, "", UART{"ttyS2", 1500000}, 0, "blue:indicator-1"},
		{"radxa-e25", "radxa-e25", `compatible "radxa,e25"`, ButtonNone, 0, "", UART{"ttyS2", 115200}, 0, "green:heartbeat"},
		{"helios64", "kobol-helios64", `compatible "kobol,helios64"`, ButtonNone, 0, "", UART{"ttyS2", 1500000}, 1, "helios64:green:status"},
		{"qemu-virt", "qemu-virt", `compatible "linux,dummy-virt"`, ButtonGPIO, 0, "rknas-sim/0", UART{"ttyAMA0", 115200}, 0, ""},
		{"model-fallback", "qnap-ts433", `model "Qnap TS-433-4G NAS System 4-Bay" (compatible unusable: board: compatible entry 1 is empty)`, ButtonInput, 408, "gpio0/13", UART{"ttyS2", 115200}, 0, "green:disk"},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			p := DetectFS(os.DirFS("testdata/" + tt.dir))
			if p.Name != tt.want {
				t.Fatalf("Detect = %q (%s), want %q", p.Name, p.Reason, tt.want)
			}
			if p.Reason != tt.reason {
				t.Errorf("Reason = %q, want %q", p.Reason, tt.reason)
			}
			if p.Button.Kind != tt.button || p.Button.KeyCode != tt.keyCode {
				t.Errorf("button = %s/%d, want %s/%d", p.Button.Kind, p.Button.KeyCode, tt.button, tt.keyCode)
			}
			l := p.Button.Line
			if p.Button.Kind == ButtonGPIO {
				l = p.Button.GPIO
			}
			got := ""
			if l != nil {
				got = fmt.Sprintf("%s/%d", l.Chip, l.Offset)
				if !l.ActiveLow {
					t.Errorf("button line %s is not active-low; every listed button is", l)
				}
			}
			if got != tt.line {
				t.Errorf("button line = %q, want %q", got, tt.line)
			}
			if p.UART != tt.uart {
				t.Errorf("UART = %+v, want %+v", p.UART, tt.uart)
			}
			if p.EMMC.Alias != tt.emmc {
				t.Errorf("eMMC alias = %d, want %d", p.EMMC.Alias, tt.emmc)
			}
			led, ok := p.LED("status")
			if tt.statusLED != "" && (!ok || led.Class != tt.statusLED) {
				t.Errorf("status LED = %+v, want class %q", led, tt.statusLED)
			}
			if p.ResetHold != 4*time.Second || p.CancelHold != 15*time.Second {
				t.Errorf("holds = %s/%s, want 4s/15s", p.ResetHold, p.CancelHold)
			}
		})
	}
}

func TestDetectUnknown(t *testing.T) {
	tests := []struct {
		name string
		fsys fs.FS
		want string // substring of Reason
	}{
		{"other rk3588 board", os.DirFS("testdata/rock-5b"), `unknown board: compatible ["radxa,rock-5b" "rockchip,rk3588"] and model "Radxa ROCK 5B" match no profile`},
		// The CM3588 SoM on another carrier must not pass for the NAS board.
		{"cm3588 on another carrier", os.DirFS("testdata/cm3588-other-carrier"), `compatible ["friendlyarm,cm3588" "rockchip,rk3588"]`},
		{"no device tree", fstest.MapFS{}, "no device tree at /proc/device-tree"},
		{"garbage compatible", fstest.MapFS{CompatiblePath: {Data: []byte("\x01\x02")}}, "compatible entry 0 has byte 0x01"},
		{"oversized compatible", fstest.MapFS{CompatiblePath: {Data: make([]byte, 5000)}}, "longer than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DetectFS(tt.fsys)
			if p.Name != "none" || p.Button.Kind != ButtonNone {
				t.Fatalf("Detect = %q with button %s, want none", p.Name, p.Button.Kind)
			}
			if !strings.Contains(p.Reason, tt.want) {
				t.Errorf("Reason = %q, want it to contain %q", p.Reason, tt.want)
			}
		})
	}
}

func TestParseCompatible(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"qnap,ts433\x00rockchip,rk3568\x00", []string{"qnap,ts433", "rockchip,rk3568"}, ""},
		{"linux,dummy-virt\x00", []string{"linux,dummy-virt"}, ""},
		{"no-trailing-nul", []string{"no-trailing-nul"}, ""},
		{"", nil, "compatible is empty"},
		{"\x00", nil, "entry 0 is empty"},
		{"a\x00\x00b\x00", nil, "entry 1 is empty"},
		{"a b\x00", nil, "byte 0x20"},
		{"caf\xc3\xa9\x00", nil, "byte 0xc3"},
	}
	for _, tt := range tests {
		got, err := ParseCompatible([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseCompatible(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("ParseCompatible(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseCompatible(f *testing.F) {
	for _, s := range []string{"qnap,ts433\x00rockchip,rk3568\x00", "linux,dummy-virt\x00", "", "\x00\x00", "a\x00b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := ParseCompatible(b)
		if err != nil {
			if list != nil {
				t.Fatalf("error %v with a non-nil list", err)
			}
			return
		}
		if len(list) == 0 {
			t.Fatal("no error and no entries")
		}
		// Re-encoding gives the input back, less an optional final NUL.
		back := strings.Join(list, "\x00")
		if back != strings.TrimSuffix(string(b), "\x00") {
			t.Fatalf("round trip %q -> %q", b, back)
		}
		for _, s := range list {
			if s == "" || strings.ContainsAny(s, "\x00 \n") {
				t.Fatalf("bad entry %q", s)
			}
		}
		// Detection on fuzzed input never panics and always explains itself.
		p := DetectFS(fstest.MapFS{CompatiblePath: {Data: b}})
		if p.Reason == "" {
			t.Fatal("empty Reason")
		}
	})
}

func TestProfilesValid(t *testing.T) {
	seen := map[string]string{}
	all := All()
	for _, p := range all {
		if err := p.Validate(); err != nil {
			t.Error(err)
		}
		if p.Name != "none" && p.Name != "qemu-virt" && p.DTS == "" {
			t.Errorf("%s: no DTS cited", p.Name)
		}
		for _, c := range p.Compatible {
			if other, dup := seen[c]; dup {
				t.Errorf("compatible %q in both %s and %s", c, other, p.Name)
			}
			seen[c] = p.Name
			if strings.HasPrefix(c, "rockchip,rk3") && !strings.Contains(c, "-") {
				t.Errorf("%s: SoC compatible %q would match every board with that SoC", p.Name, c)
			}
		}
	}
	if all[len(all)-1].Name != "none" {
		t.Errorf("last profile is %q, want none", all[len(all)-1].Name)
	}
	for _, name := range []string{"qnap-ts433", "qnap-ts233", "friendlyelec-cm3588-nas", "nanopi-r5c", "nanopi-r6s",
		"nanopi-r6c", "pine64-rockpro64", "hardkernel-odroid-m1", "radxa-rock-5-itx", "orangepi-5-plus",
		"radxa-e25", "kobol-helios64", "nanopi-r5s", "nanopi-r4s", "nanopi-r4s-enterprise", "nanopi-r3s",
		"qnap-ts133", "radxa-e52c", "qemu-virt", "none"} {
		if _, err := ByName(name); err != nil {
			t.Error(err)
		}
	}
	if _, err := ByName("nope"); err == nil || !strings.Contains(err.Error(), `unknown board "nope"`) {
		t.Errorf("ByName(nope) error = %v", err)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	good, _ := ByName("qemu-virt")
	tests := []struct {
		name   string
		mutate func(*Profile)
		want   string
	}{
		{"cancel before reset", func(p *Profile) { p.CancelHold = time.Second }, "cancel_hold 1s must be longer than reset_hold 4s"},
		{"no reset", func(p *Profile) { p.ResetHold = 0 }, "reset_hold 0s must be positive"},
		{"bad kind", func(p *Profile) { p.Button.Kind = "magic" }, `button.kind "magic"`},
		{"bad bias", func(p *Profile) { g := *p.Button.GPIO; g.Bias = "sideways"; p.Button.GPIO = &g }, `button.gpio.bias "sideways"`},
		{"no line", func(p *Profile) { p.Button.GPIO = nil }, "button.gpio needs a chip label"},
		{"input without key", func(p *Profile) { p.Button = Button{Kind: ButtonInput} }, "button.key_code is missing"},
		{"led with both", func(p *Profile) { p.LEDs = []LED{{Role: "x", Class: "a", GPIO: &GPIOLine{Chip: "c"}}} }, "leds[0] needs exactly one"},
	}
	for _, tt := range tests {
		p := good
		tt.mutate(&p)
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestDescribeAndJSON(t *testing.T) {
	p := DetectFS(os.DirFS("testdata/qnap-ts433"))
	text := p.Describe()
	for _, want := range []string{
		"board:       qnap-ts433 (QNAP TS-433)",
		`detected:    compatible "qnap,ts433"`,
		`button:      input KEY_RESTART (408), device "keys", label "reset", owned line gpio0 line 13 (PB5 reset, active-low, pull-up)`,
		"hold times:  reset 4s, cancel 15s",
		"uart:        /dev/ttyS2 at 115200 baud",
		"emmc:        /dev/mmcblk0 (mmc0 alias, sdhci; checked by device/type MMC)",
		"dtb:         rockchip/rk3568-qnap-ts433.dtb",
		"bootloader:  medium, mainline qnap-ts433-rk3568_defconfig (U-Boot v2025.01)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Describe lacks %q:\n%s", want, text)
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["reset_hold"] != "4s" || m["cancel_hold"] != "15s" || m["name"] != "qnap-ts433" {
		t.Errorf("JSON = %s", b)
	}
	btn := m["button"].(map[string]any)
	if btn["kind"] != "input" || btn["key_code"] != float64(408) {
		t.Errorf("JSON button = %v", btn)
	}
	v, _ := ByName("qemu-virt")
	if s := v.Describe(); !strings.Contains(s, "led status:  gpio rknas-sim line 1 (led-status)") || !strings.Contains(s, "emmc:        /dev/mmcblk0 (mmc0 alias, sdhci-pci; checked by device/type SD)") {
		t.Errorf("qemu-virt Describe:\n%s", s)
	}
}

func TestFindChipByLabel(t *testing.T) {
	labels := map[string]string{
		"/dev/gpiochip0":  "gpio0",
		"/dev/gpiochip1":  "gpio1",
		"/dev/gpiochip10": "rknas-sim",
		"/dev/gpiochip2":  "rk806-gpio",
	}
	f := ChipFinder{
		Glob: func(string) ([]string, error) {
			return []string{"/dev/gpiochip10", "/dev/gpiochip2", "/dev/gpiochip0", "/dev/gpiochip1", "/dev/gpiochip3"}, nil
		},
		Label: func(p string) (string, error) {
			if l, ok := labels[p]; ok {
				return l, nil
			}
			return "", errors.New("permission denied")
		},
	}
	if p, err := f.Find("rknas-sim"); err != nil || p != "/dev/gpiochip10" {
		t.Errorf("Find(rknas-sim) = %q, %v", p, err)
	}
	if p, err := f.Find("gpio1"); err != nil || p != "/dev/gpiochip1" {
		t.Errorf("Find(gpio1) = %q, %v", p, err)
	}
	_, err := f.Find("gpio4")
	if !errors.Is(err, ErrChipNotFound) {
		t.Fatalf("Find(gpio4) error = %v, want ErrChipNotFound", err)
	}
	for _, want := range []string{`"gpio4"`, `gpiochip10="rknas-sim"`, "/dev/gpiochip3: permission denied"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	empty := ChipFinder{Glob: func(string) ([]string, error) { return nil, nil }, Label: f.Label}
	if _, err := empty.Find("gpio0"); err == nil || !strings.Contains(err.Error(), "no /dev/gpiochip* devices") {
		t.Errorf("Find on a host without chips: %v", err)
	}
}
