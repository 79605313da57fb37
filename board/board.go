// Package board describes the boards the firmware runs on (button, LEDs, debug
// UART, eMMC, hold times) and detects which one it is from the device tree.
package board

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Default hold times of the RESET button. A profile may override them.
const (
	DefaultResetHold  = 4 * time.Second
	DefaultCancelHold = 15 * time.Second
)

// ButtonKind says how the firmware reads the board's button.
type ButtonKind string

// The button kinds.
const (
	// ButtonNone: the board exposes no button to Linux.
	ButtonNone ButtonKind = "none"
	// ButtonGPIO: a free GPIO line, requested through the GPIO character device.
	ButtonGPIO ButtonKind = "gpio"
	// ButtonInput: a key owned by a kernel driver (gpio-keys, adc-keys), read
	// from its evdev device. A GPIO request on such a line fails with EBUSY.
	ButtonInput ButtonKind = "input"
)

// Bias is the internal pull resistor requested for an input line.
type Bias string

// The biases. BiasNone requests no bias and leaves the line as the boot
// firmware or pin controller configured it (gpio-sim keeps its simulated pull).
const (
	BiasPullUp   Bias = "pull-up"
	BiasPullDown Bias = "pull-down"
	BiasNone     Bias = "none"
)

// GPIOLine names one line of a GPIO chip. Chips are found by label, never by
// /dev/gpiochipN index, because the index follows registration order.
type GPIOLine struct {
	// Chip is the chip label, e.g. "gpio0" on Rockchip SoCs.
	Chip string `json:"chip"`
	// Offset is the line within the chip: RK_PA0..RK_PD7 are 0..31.
	Offset int `json:"offset"`
	// ActiveLow says the button is pressed (or the LED lit) when the line is low.
	ActiveLow bool `json:"active_low"`
	// Bias is the pull requested with the line (inputs only).
	Bias Bias `json:"bias,omitempty"`
	// Name is the line name from the schematic or device tree, for messages.
	Name string `json:"name,omitempty"`
}

// String formats the line as "gpio0 line 13 (RK_PB5, active-low)".
func (l GPIOLine) String() string {
	var extra []string
	if l.Name != "" {
		extra = append(extra, l.Name)
	}
	if l.ActiveLow {
		extra = append(extra, "active-low")
	}
	if l.Bias != "" && l.Bias != BiasNone {
		extra = append(extra, l.Bias.String())
	}
	s := fmt.Sprintf("%s line %d", l.Chip, l.Offset)
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	return s
}

// String returns the bias name.
func (b Bias) String() string { return string(b) }

// Button describes the board's RESET (or user) button.
type Button struct {
	Kind ButtonKind `json:"kind"`
	// Label is what the case or the device tree calls the button.
	Label string `json:"label,omitempty"`
	// GPIO is the line to request, for kind gpio.
	GPIO *GPIOLine `json:"gpio,omitempty"`
	// KeyCode is the evdev key code (linux/input-event-codes.h), for kind input.
	KeyCode uint16 `json:"key_code,omitempty"`
	// KeyName is the symbolic name of KeyCode, e.g. "KEY_RESTART".
	KeyName string `json:"key_name,omitempty"`
	// InputName is the expected evdev device name ("gpio-keys", "adc-keys"); a
	// hint only: the input source also matches devices by key capability.
	InputName string `json:"input_name,omitempty"`
	// Line is, for a gpio-keys button, the GPIO line underneath: informative,
	// and what a device-tree overlay would have to free for kind gpio.
	Line *GPIOLine `json:"line,omitempty"`
}

// LED is an LED the firmware uses for feedback (the button watcher blinks it).
type LED struct {
	// Role says what the firmware uses it for: "status" or "alert".
	Role string `json:"role"`
	// Class is the LED class device name under /sys/class/leds, if the kernel
	// drives the LED (gpio-leds, pwm-leds).
	Class string `json:"class,omitempty"`
	// OtherClasses are the names other kernel versions give the same LED
	// (a tree that gained a label, or lost one), tried after Class.
	OtherClasses []string `json:"other_classes,omitempty"`
	// GPIO is the output line, if the LED is a free GPIO line.
	GPIO *GPIOLine `json:"gpio,omitempty"`
}

// Classes returns Class and then OtherClasses, or nothing for an LED on a
// free GPIO line.
func (l LED) Classes() []string {
	if l.Class == "" {
		return nil
	}
	return append([]string{l.Class}, l.OtherClasses...)
}

// UART is the debug console.
type UART struct {
	// Device is the tty name under /dev, e.g. "ttyS2".
	Device string `json:"device,omitempty"`
	Baud   int    `json:"baud,omitempty"`
}

// EMMC says how to find the eMMC. mmcblkN follows the device tree's mmcN
// alias; the firmware still checks /sys/block/mmcblkN/device/type == "MMC"
// before trusting it, since an alias can be missing or an SD card may sit there.
type EMMC struct {
	// Alias is N of the mmcN alias of the eMMC controller, or -1 for none.
	Alias int `json:"alias"`
	// Controller is the device-tree node of the eMMC controller, e.g. "sdhci".
	Controller string `json:"controller,omitempty"`
	// Type is what /sys/block/mmcblkN/device/type says for it: "MMC" (the
	// default when empty). The VM's stand-in is an SD card ("SD").
	Type string `json:"type,omitempty"`
}

// Bootloader says where a board's bootloader lives and where to get one.
type Bootloader struct {
	// Lives is where the mask ROM finds the bootloader: BootSPI (the board's
	// SPI flash, outside the medium), BootMedium (the first 16 MiB of the
	// eMMC or TF card the image goes on) or BootQEMU (QEMU's -bios).
	Lives string `json:"lives"`
	// Debian is the Debian trixie u-boot-rockchip target that builds it,
	// e.g. "rockpro64-rk3399"; the image then carries it.
	Debian string `json:"debian,omitempty"`
	// Mainline is the mainline U-Boot defconfig and the release that added
	// it, for owners who build their own (BOOTLOADER=u-boot-rockchip.bin).
	Mainline string `json:"mainline,omitempty"`
	// Note says what else the owner must know.
	Note string `json:"note,omitempty"`
}

// Where a bootloader lives.
const (
	BootSPI    = "spi"
	BootMedium = "medium"
	BootQEMU   = "qemu"
)

// Maskrom says how to put the board into Rockchip's USB download mode, in
// which rkdeveloptool writes its eMMC.
type Maskrom struct {
	// How is what to press or bridge, and which USB port to connect.
	How string `json:"how,omitempty"`
	// Loader is the rkbin loader file rkdeveloptool downloads first (db).
	Loader string `json:"loader,omitempty"`
	// USBProduct is the product ID the board shows in Maskrom (vendor 0x2207).
	USBProduct uint16 `json:"usb_product,omitempty"`
}

// MMCType returns the device/type the eMMC must show: Type, or "MMC".
func (e EMMC) MMCType() string {
	if e.Type == "" {
		return "MMC"
	}
	return e.Type
}

// Device returns "/dev/mmcblkN" for the alias, or "" when the board has none.
func (e EMMC) Device() string {
	if e.Alias < 0 {
		return ""
	}
	return fmt.Sprintf("/dev/mmcblk%d", e.Alias)
}

// Profile is everything the firmware needs to know about one board.
type Profile struct {
	// Name is the short stable name: "qnap-ts433", "qemu-virt", "none".
	Name string `json:"name"`
	// Model is the human name.
	Model string `json:"model"`
	// SoC is the Rockchip SoC, e.g. "rk3568".
	SoC string `json:"soc,omitempty"`
	// Compatible lists the board's device-tree compatible strings, all known
	// variants (some were renamed in mainline), most specific first.
	Compatible []string `json:"compatible,omitempty"`
	// Models lists /proc/device-tree/model strings, the detection fallback.
	Models []string `json:"models,omitempty"`
	// DTS is the mainline device tree the facts come from.
	DTS string `json:"dts,omitempty"`
	// DTB is the device tree the image gives the kernel, relative to the
	// kernel package's device-tree directory ("rockchip/rk3568-qnap-ts433.dtb");
	// empty when the boot firmware provides one (QEMU).
	DTB string `json:"dtb,omitempty"`
	// DTBSince is the first Linux release with the board's device tree,
	// when the firmware's kernel is older ("6.19"): no image for it yet.
	DTBSince string `json:"dtb_since,omitempty"`
	// Kernels is the range of Linux releases the facts hold for, "6.12" or
	// "6.12-7.3": both ends are kernels whose device trees board/imagetest
	// checks the profile against (the firmware's, and a newer Debian one).
	// Trees outside it may differ (a key added, an LED renamed); the image
	// builder refuses a kernel outside it.
	Kernels string `json:"kernels,omitempty"`
	// Modules are kernel modules the image carries beyond what the device
	// tree names: drivers of PCIe and USB devices and PHYs, which a tree
	// does not describe.
	Modules []string `json:"modules,omitempty"`
	// NoModules are drivers the device tree matches that the image must not
	// load, each with the reason in the profile's comment.
	NoModules []string `json:"no_modules,omitempty"`
	// Bootloader says where the board's bootloader lives.
	Bootloader Bootloader `json:"bootloader"`
	// Maskrom says how to reach the board's USB download mode.
	Maskrom Maskrom `json:"maskrom"`
	Button  Button  `json:"button"`
	LEDs    []LED   `json:"leds,omitempty"`
	UART    UART    `json:"uart"`
	EMMC    EMMC    `json:"emmc"`
	// ResetHold is how long the button must be held before a release resets.
	ResetHold time.Duration `json:"-"`
	// CancelHold is how long a hold takes to cancel the reset instead.
	CancelHold time.Duration `json:"-"`
	// Notes says what is uncertain or special about the board.
	Notes string `json:"notes,omitempty"`
	// Reason says how Detect chose this profile; empty for table entries.
	Reason string `json:"reason,omitempty"`
}

// KernelConsole returns the kernel's console= value for the board's UART:
// "ttyS2,1500000n8", or "" when the board has none.
func (p Profile) KernelConsole() string {
	if p.UART.Device == "" {
		return ""
	}
	if p.UART.Baud == 0 {
		return p.UART.Device
	}
	return fmt.Sprintf("%s,%dn8", p.UART.Device, p.UART.Baud)
}

// LED returns the LED with the given role and true, or false if there is none.
func (p Profile) LED(role string) (LED, bool) {
	for _, l := range p.LEDs {
		if l.Role == role {
			return l, true
		}
	}
	return LED{}, false
}

// MarshalJSON encodes the profile with hold times as "4s" and "15s".
func (p Profile) MarshalJSON() ([]byte, error) {
	type plain Profile // drops the method set, so no recursion
	return json.Marshal(struct {
		plain
		ResetHold  string `json:"reset_hold"`
		CancelHold string `json:"cancel_hold"`
	}{plain(p), p.ResetHold.String(), p.CancelHold.String()})
}

// Describe prints the profile as text for people, e.g. `authd board`.
func (p Profile) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "board:       %s (%s)\n", p.Name, p.Model)
	if p.Reason != "" {
		fmt.Fprintf(&b, "detected:    %s\n", p.Reason)
	}
	if len(p.Compatible) > 0 {
		fmt.Fprintf(&b, "compatible:  %s\n", strings.Join(p.Compatible, ", "))
	}
	if p.DTS != "" {
		fmt.Fprintf(&b, "dts:         %s\n", p.DTS)
	}
	fmt.Fprintf(&b, "button:      %s\n", p.Button.describe())
	fmt.Fprintf(&b, "hold times:  reset %s, cancel %s\n", p.ResetHold, p.CancelHold)
	if len(p.LEDs) == 0 {
		fmt.Fprintf(&b, "leds:        none\n")
	}
	for _, l := range p.LEDs {
		where := "sysfs " + l.Class
		if l.GPIO != nil {
			where = "gpio " + l.GPIO.String()
		}
		fmt.Fprintf(&b, "led %-7s  %s\n", l.Role+":", where)
	}
	if p.UART.Device != "" {
		fmt.Fprintf(&b, "uart:        /dev/%s at %d baud\n", p.UART.Device, p.UART.Baud)
	} else {
		fmt.Fprintf(&b, "uart:        none\n")
	}
	if d := p.EMMC.Device(); d != "" {
		fmt.Fprintf(&b, "emmc:        %s (mmc%d alias, %s; checked by device/type %s)\n", d, p.EMMC.Alias, p.EMMC.Controller, p.EMMC.MMCType())
	} else {
		fmt.Fprintf(&b, "emmc:        none\n")
	}
	if p.Kernels != "" {
		fmt.Fprintf(&b, "kernels:     Linux %s (the device trees the facts were checked against)\n", strings.Replace(p.Kernels, "-", " to ", 1))
	}
	if p.DTB != "" {
		fmt.Fprintf(&b, "dtb:         %s", p.DTB)
		if p.DTBSince != "" {
			fmt.Fprintf(&b, " (in Linux %s and later)", p.DTBSince)
		}
		b.WriteString("\n")
	}
	if p.Bootloader.Lives != "" {
		fmt.Fprintf(&b, "bootloader:  %s", p.Bootloader.Lives)
		if p.Bootloader.Debian != "" {
			fmt.Fprintf(&b, ", Debian u-boot-rockchip %s", p.Bootloader.Debian)
		}
		if p.Bootloader.Mainline != "" {
			fmt.Fprintf(&b, ", mainline %s", p.Bootloader.Mainline)
		}
		b.WriteString("\n")
	}
	if p.Maskrom.How != "" {
		fmt.Fprintf(&b, "maskrom:     %s; loader %s\n", p.Maskrom.How, p.Maskrom.Loader)
	}
	if p.Notes != "" {
		fmt.Fprintf(&b, "notes:       %s\n", p.Notes)
	}
	return b.String()
}

func (bt Button) describe() string {
	switch bt.Kind {
	case ButtonGPIO:
		if bt.GPIO == nil {
			return "gpio (line missing)"
		}
		return fmt.Sprintf("gpio %s, label %q", bt.GPIO, bt.Label)
	case ButtonInput:
		s := fmt.Sprintf("input %s (%d), device %q, label %q", bt.KeyName, bt.KeyCode, bt.InputName, bt.Label)
		if bt.Line != nil {
			s += ", owned line " + bt.Line.String()
		}
		return s
	default:
		return "none"
	}
}

// Validate checks a profile for internal consistency, naming the bad field.
func (p Profile) Validate() error {
	if p.Name == "" {
		return fmt.Errorf("board: profile has no name")
	}
	if p.ResetHold <= 0 {
		return fmt.Errorf("board: %s: reset_hold %s must be positive", p.Name, p.ResetHold)
	}
	if p.CancelHold <= p.ResetHold {
		return fmt.Errorf("board: %s: cancel_hold %s must be longer than reset_hold %s", p.Name, p.CancelHold, p.ResetHold)
	}
	switch p.Button.Kind {
	case ButtonNone:
	case ButtonGPIO:
		if p.Button.GPIO == nil || p.Button.GPIO.Chip == "" || p.Button.GPIO.Offset < 0 {
			return fmt.Errorf("board: %s: button.gpio needs a chip label and an offset", p.Name)
		}
		switch p.Button.GPIO.Bias {
		case BiasPullUp, BiasPullDown, BiasNone, "":
		default:
			return fmt.Errorf("board: %s: button.gpio.bias %q is not pull-up, pull-down or none", p.Name, p.Button.GPIO.Bias)
		}
	case ButtonInput:
		if p.Button.KeyCode == 0 {
			return fmt.Errorf("board: %s: button.key_code is missing for an input button", p.Name)
		}
	default:
		return fmt.Errorf("board: %s: button.kind %q is not gpio, input or none", p.Name, p.Button.Kind)
	}
	if p.Name != "none" {
		switch p.Bootloader.Lives {
		case BootSPI, BootMedium, BootQEMU:
		default:
			return fmt.Errorf("board: %s: bootloader.lives %q is not %s, %s or %s", p.Name, p.Bootloader.Lives, BootSPI, BootMedium, BootQEMU)
		}
	}
	if p.DTB != "" && (!strings.HasSuffix(p.DTB, ".dtb") || strings.HasPrefix(p.DTB, "/") || strings.Contains(p.DTB, "..")) {
		return fmt.Errorf("board: %s: dtb %q is not a relative .dtb path", p.Name, p.DTB)
	}
	if p.DTB != "" && p.Kernels == "" {
		return fmt.Errorf("board: %s: kernels is missing: say which Linux releases the device-tree facts hold for", p.Name)
	}
	if p.Kernels != "" {
		if _, _, err := ParseKernels(p.Kernels); err != nil {
			return fmt.Errorf("board: %s: %w", p.Name, err)
		}
	}
	for i, l := range p.LEDs {
		if (l.Class == "") == (l.GPIO == nil) {
			return fmt.Errorf("board: %s: leds[%d] needs exactly one of class and gpio", p.Name, i)
		}
	}
	return nil
}

// Release is a Linux release's major and minor number: 6.12 is {6, 12}.
type Release [2]int

// String formats the release as "6.12".
func (r Release) String() string { return fmt.Sprintf("%d.%d", r[0], r[1]) }

// Less reports whether r comes before o.
func (r Release) Less(o Release) bool { return r[0] < o[0] || r[0] == o[0] && r[1] < o[1] }

// ParseRelease reads the major and minor number at the start of a kernel
// release or version: "6.12.117+deb13-arm64", "7.3", "6.12.117-1".
func ParseRelease(s string) (Release, error) {
	bad := fmt.Errorf("kernel release %q is not MAJOR.MINOR", s)
	major, rest, ok := strings.Cut(s, ".")
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	if !ok || len(major) > 3 || end == 0 || end > 3 {
		return Release{}, bad
	}
	var r Release
	var err1, err2 error
	r[0], err1 = strconv.Atoi(major)
	r[1], err2 = strconv.Atoi(rest[:end])
	if err1 != nil || err2 != nil || r[0] <= 0 || strconv.Itoa(r[0]) != major {
		return Release{}, bad
	}
	return r, nil
}

// ParseKernels reads a profile's Kernels: "6.12" or "6.12-7.3", first to last.
func ParseKernels(s string) (first, last Release, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if first, err = ParseRelease(a); err == nil && fmt.Sprint(first) != a {
		err = fmt.Errorf("kernel release %q is not MAJOR.MINOR", a)
	}
	if err != nil {
		return first, last, fmt.Errorf("kernels %q: %w", s, err)
	}
	if !isRange {
		return first, first, nil
	}
	if last, err = ParseRelease(b); err == nil && fmt.Sprint(last) != b {
		err = fmt.Errorf("kernel release %q is not MAJOR.MINOR", b)
	}
	if err != nil {
		return first, last, fmt.Errorf("kernels %q: %w", s, err)
	}
	if !first.Less(last) {
		return first, last, fmt.Errorf("kernels %q: the range must go from an older release to a newer one", s)
	}
	return first, last, nil
}

// HoldsFor reports whether the profile's facts hold for the kernel release
// ("6.12.117+deb13-arm64"): true when it is within Kernels.
func (p Profile) HoldsFor(release string) bool {
	r, err := ParseRelease(release)
	if err != nil {
		return false
	}
	first, last, err := ParseKernels(p.Kernels)
	return err == nil && !r.Less(first) && !last.Less(r)
}
