package board

// The profile table. Facts come from the mainline device trees under
// arch/arm64/boot/dts/rockchip/ (torvalds/linux); each profile names its file.
// Pins: <&gpioN RK_Px<d> ...> is chip label "gpioN", offset (x-'A')*8+d.
// LED class names follow the kernel's rules: the "label" property if set,
// else "color:function[-enumerator]", else the node name.

// Key codes from include/uapi/linux/input-event-codes.h.
const (
	keyPower   = 116   // KEY_POWER
	keySetup   = 141   // KEY_SETUP
	keyVendor  = 0x168 // KEY_VENDOR
	keyRestart = 0x198 // KEY_RESTART
	btn0       = 0x100 // BTN_0
	btn1       = 0x101 // BTN_1
)

// FirmwareModules are the kernel modules every image carries whatever the
// board: the state and boot partitions' file systems, USB disks and TF card
// readers (the flasher's targets), input devices for the button, and the
// LED timer trigger the button watcher blinks with. xhci_plat_hcd serves
// the SoCs' DWC3 USB 3 controllers, whose child device no tree names, and
// crc32c_generic the metadata checksums ext4 asks the crypto API for (the
// image has no modprobe for the kernel to ask, which is also why sd_mod,
// the disk driver USB storage devices need, is named); loop lets the
// installer fill a new state partition before its partition table exists.
var FirmwareModules = []string{"crc32c_generic", "ext4", "vfat", "nls_cp437", "nls_utf8", "evdev",
	"sd_mod", "usb_storage", "uas", "xhci_plat_hcd", "ledtrig_timer", "loop"}

// rk returns the line offset of a Rockchip pin name such as "PB5" (13).
func rk(pin string) int {
	return int(pin[1]-'A')*8 + int(pin[2]-'0')
}

func line(chip, pin, name string, activeLow bool, bias Bias) *GPIOLine {
	return &GPIOLine{Chip: chip, Offset: rk(pin), ActiveLow: activeLow, Bias: bias, Name: pin + " " + name}
}

func profiles() []Profile {
	ps := []Profile{
		{
			// rk3568-qnap-ts433.dts (since Linux 6.19 the keys, LEDs, console
			// and mmc alias live in the shared rk3568-qnap-tsx33.dtsi): gpio-keys
			// node "keys" owns "reset" on <&gpio0 RK_PB5 GPIO_ACTIVE_LOW>
			// (KEY_RESTART), pinctrl pull-up; the "copy" key is gpio0 RK_PB6
			// (KEY_COPY). stdout-path serial2:115200n8, mmc0 = &sdhci. The status
			// LEDs hang off the MCU on uart0 (qnap-mcu-leds, class names not
			// checked here), so the first disk LED is the feedback LED. Kernels
			// up to 6.11 have no keys, LEDs, console path or mmc0 alias; 6.12
			// (the firmware's, checked by board/imagetest) and 6.13 name the
			// unlabelled disk LEDs "green:disk", "green:disk_1", ...; later
			// trees label the first "hdd1:green:disk".
			Name:       "qnap-ts433",
			Model:      "QNAP TS-433",
			SoC:        "rk3568",
			Compatible: []string{"qnap,ts433"},
			Models:     []string{"Qnap TS-433-4G NAS System 4-Bay"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3568-qnap-ts433.dts (+ rk3568-qnap-tsx33.dtsi since 6.19)",
			DTB:        "rockchip/rk3568-qnap-ts433.dtb",
			Kernels:    "6.12-7.3",
			Modules:    []string{"r8169", "realtek"},
			Bootloader: Bootloader{Lives: BootMedium, Mainline: "qnap-ts433-rk3568_defconfig (U-Boot v2025.01)",
				Note: "eMMC only (no SPI flash, no TF slot). The stock QNAP U-Boot on the eMMC is not known to read extlinux.conf: build the image with mainline U-Boot (BOOTLOADER=) and write it to the eMMC over USB."},
			Maskrom: Maskrom{How: "remove the drive trays, close the 2-pin jumper below the serial header, power on; front USB-A port to the PC with an A-to-A cable; remove the jumper before writing", Loader: "rk356x_spl_loader_v1.21.113.bin (rkbin; U-Boot doc/board/qnap/ts433.rst)", USBProduct: 0x350a},
			Button: Button{Kind: ButtonInput, Label: "reset", KeyCode: keyRestart, KeyName: "KEY_RESTART",
				InputName: "keys", Line: line("gpio0", "PB5", "reset", true, BiasPullUp)},
			LEDs:  []LED{{Role: "status", Class: "green:disk", OtherClasses: []string{"hdd1:green:disk"}}},
			UART:  UART{Device: "ttyS2", Baud: 115200},
			EMMC:  EMMC{Alias: 0, Controller: "sdhci"},
			Notes: "gpio-keys owns the reset line (a cdev request gets EBUSY): read as an input device. The MCU LEDs are not used. Needs Linux 6.12 or later (earlier trees lack the keys, LEDs and console).",
		},
		{
			// rk3568-qnap-ts233.dts includes rk3568-qnap-tsx33.dtsi: the same keys
			// node (reset gpio0 RK_PB5 active-low, KEY_RESTART), stdout-path
			// serial2:115200n8, mmc0 = &sdhci, gpio-leds "hdd1:green:disk".
			Name:       "qnap-ts233",
			Model:      "QNAP TS-233",
			SoC:        "rk3568",
			Compatible: []string{"qnap,ts233"},
			Models:     []string{"Qnap TS-233-2G NAS System 2-Bay"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3568-qnap-ts233.dts (+ rk3568-qnap-tsx33.dtsi)",
			DTB:        "rockchip/rk3568-qnap-ts233.dtb",
			Kernels:    "7.3",
			DTBSince:   "6.19",
			Modules:    []string{"r8169", "realtek"},
			Bootloader: Bootloader{Lives: BootMedium, Note: "eMMC only, as the TS-433. Mainline U-Boot has no TS-233 configuration yet."},
			Maskrom:    Maskrom{How: "not checked; probably as the TS-433 (jumper below the serial header, front USB-A port)", Loader: "rk356x_spl_loader_v1.23.114.bin (rkbin)", USBProduct: 0x350a},
			Button: Button{Kind: ButtonInput, Label: "reset", KeyCode: keyRestart, KeyName: "KEY_RESTART",
				InputName: "keys", Line: line("gpio0", "PB5", "reset", true, BiasPullUp)},
			LEDs:  []LED{{Role: "status", Class: "hdd1:green:disk"}},
			UART:  UART{Device: "ttyS2", Baud: 115200},
			EMMC:  EMMC{Alias: 0, Controller: "sdhci"},
			Notes: "Device tree added to mainline after 6.12; gpio-keys owns the reset line.",
		},
		{
			// rk3566-qnap-ts133.dts includes rk3568-qnap-tsx33.dtsi: the keys
			// node (reset gpio0 RK_PB5 active-low, KEY_RESTART, pinctrl
			// pull-up; copy gpio0 RK_PB6), gpio-leds "hdd1:green:disk",
			// stdout-path serial2:115200n8, mmc0 = &sdhci. One gigabit port
			// from the SoC's gmac1 with a Motorcomm YT8521 PHY. 7.3 also ships
			// an overlay for PCB revision 13 (drive power), not applied here.
			Name:       "qnap-ts133",
			Model:      "QNAP TS-133",
			SoC:        "rk3566",
			Compatible: []string{"qnap,ts133"},
			Models:     []string{"Qnap TS-133-2G NAS System 1-Bay"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3566-qnap-ts133.dts (+ rk3568-qnap-tsx33.dtsi)",
			DTB:        "rockchip/rk3566-qnap-ts133.dtb",
			DTBSince:   "7.0",
			Kernels:    "7.3",
			Modules:    []string{"motorcomm"},
			Bootloader: Bootloader{Lives: BootMedium, Note: "eMMC only, as the TS-433. Mainline U-Boot has no TS-133 configuration known here."},
			Maskrom:    Maskrom{How: "not checked; probably as the TS-433 (jumper below the serial header, front USB-A port)", Loader: "rk356x_spl_loader_v1.23.114.bin (rkbin)", USBProduct: 0x350a},
			Button: Button{Kind: ButtonInput, Label: "reset", KeyCode: keyRestart, KeyName: "KEY_RESTART",
				InputName: "keys", Line: line("gpio0", "PB5", "reset", true, BiasPullUp)},
			LEDs:  []LED{{Role: "status", Class: "hdd1:green:disk"}},
			UART:  UART{Device: "ttyS2", Baud: 115200},
			EMMC:  EMMC{Alias: 0, Controller: "sdhci"},
			Notes: "Device tree added to mainline in 7.0: no image until the firmware's kernel has it. gpio-keys owns the reset line; the status LEDs sit on the MCU and are not used.",
		},
		{
			// rk3588-friendlyelec-cm3588-nas.dts: gpio-keys "User Button" on
			// <&gpio0 RK_PD5 GPIO_ACTIVE_LOW> (BTN_1, debounce 50 ms, pull-up);
			// adc-keys "Recovery" (KEY_VENDOR) on SARADC channel 1.
			// rk3588-friendlyelec-cm3588.dtsi: stdout-path serial2:1500000n8,
			// mmc0 = &sdhci, gpio-leds green indicator (gpio1 RK_PC6) and amber
			// heartbeat (gpio2 RK_PC5).
			Name:       "friendlyelec-cm3588-nas",
			Model:      "FriendlyElec CM3588 NAS",
			SoC:        "rk3588",
			Compatible: []string{"friendlyarm,cm3588-nas"},
			Models:     []string{"FriendlyElec CM3588 NAS"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3588-friendlyelec-cm3588-nas.dts (+ rk3588-friendlyelec-cm3588.dtsi)",
			DTB:        "rockchip/rk3588-friendlyelec-cm3588-nas.dtb",
			Kernels:    "6.12-7.3",
			Modules:    []string{"r8169", "nvme"},
			Bootloader: Bootloader{Lives: BootMedium, Mainline: "cm3588-nas-rk3588_defconfig (U-Boot v2024.10)",
				Note: "No SPI flash: the bootloader is in the first 16 MiB of the eMMC or TF card (FriendlyElec's own images carry theirs)."},
			Maskrom: Maskrom{How: "MASK key while powering on (not checked); USB-C port (OTG0) to the PC", Loader: "rk3588_spl_loader_v1.18.113.bin (rkbin)", USBProduct: 0x350b},
			Button: Button{Kind: ButtonInput, Label: "User Button", KeyCode: btn1, KeyName: "BTN_1",
				InputName: "gpio-keys", Line: line("gpio0", "PD5", "User Button", true, BiasPullUp)},
			LEDs: []LED{
				{Role: "status", Class: "green:indicator"},
				{Role: "alert", Class: "amber:heartbeat"},
			},
			UART:  UART{Device: "ttyS2", Baud: 1500000},
			EMMC:  EMMC{Alias: 0, Controller: "sdhci"},
			Notes: "The Recovery key (adc-keys, KEY_VENDOR) is not used.",
		},
		{
			// rk3568-nanopi-r5c.dts: gpio-keys "reset" on <&gpio0 RK_PB7
			// GPIO_ACTIVE_LOW> (KEY_RESTART, debounce 50 ms), its pinctrl on the
			// same pin with a pull-up (fixed upstream in 2023, "fix button reset
			// pin for nanopi r5c"; earlier trees named gpio4 RK_PA0).
			// rk3568-nanopi-r5s.dtsi: stdout-path serial2:1500000n8, mmc0 =
			// &sdmmc0, mmc1 = &sdhci. LEDs red:power (heartbeat), green:lan/wan/wlan.
			Name:       "nanopi-r5c",
			Model:      "FriendlyElec NanoPi R5C",
			SoC:        "rk3568",
			Compatible: []string{"friendlyarm,nanopi-r5c"},
			Models:     []string{"FriendlyElec NanoPi R5C"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3568-nanopi-r5c.dts (+ rk3568-nanopi-r5s.dtsi)",
			DTB:        "rockchip/rk3568-nanopi-r5c.dtb",
			Kernels:    "6.12-7.3",
			Modules:    []string{"r8169"},
			Bootloader: Bootloader{Lives: BootMedium, Mainline: "nanopi-r5c-rk3568_defconfig (U-Boot v2023.10)",
				Note: "No SPI flash. Once the eMMC holds a bootloader the board boots it before the TF card; hold MASK at power-on to skip it."},
			Maskrom: Maskrom{How: "hold MASK while powering on; USB-A port (OTG0) to the PC with an A-to-A cable (port not checked)", Loader: "rk356x_spl_loader_v1.23.114.bin (rkbin)", USBProduct: 0x350a},
			Button: Button{Kind: ButtonInput, Label: "reset", KeyCode: keyRestart, KeyName: "KEY_RESTART",
				InputName: "gpio-keys", Line: line("gpio0", "PB7", "reset", true, BiasPullUp)},
			LEDs:  []LED{{Role: "status", Class: "red:power"}},
			UART:  UART{Device: "ttyS2", Baud: 1500000},
			EMMC:  EMMC{Alias: 1, Controller: "sdhci"},
			Notes: "gpio-keys owns the reset line: read as an input device.",
		},
		{
			// rk3568-nanopi-r5s.dts (+ rk3568-nanopi-r5s.dtsi), as in Linux 6.12:
			// no keys node yet (the RESET key, gpio4 RK_PA0, came to the tree
			// later); gpio-leds red:power, green:lan (two) and green:wan, without
			// labels; stdout-path serial2:1500000n8; mmc0 = &sdmmc0, mmc1 =
			// &sdhci. One gigabit port from the SoC, two 2.5G RTL8125 on PCIe.
			Name:       "nanopi-r5s",
			Model:      "FriendlyElec NanoPi R5S",
			SoC:        "rk3568",
			Compatible: []string{"friendlyarm,nanopi-r5s"},
			Models:     []string{"FriendlyElec NanoPi R5S"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3568-nanopi-r5s.dts (+ rk3568-nanopi-r5s.dtsi)",
			DTB:        "rockchip/rk3568-nanopi-r5s.dtb",
			// Later trees (7.3 checked) add the keys and name the LEDs SYS,
			// WAN, LAN-1 and LAN-2: a profile for them is a new range.
			Kernels: "6.12",
			Modules: []string{"r8169", "realtek"},
			Bootloader: Bootloader{Lives: BootMedium, Mainline: "nanopi-r5s-rk3568_defconfig",
				Note: "No SPI flash. Once the eMMC holds a bootloader the board boots it before the TF card; hold MASK at power-on to skip it."},
			Maskrom: Maskrom{How: "hold MASK while powering on; USB-C port to the PC (not checked)", Loader: "rk356x_spl_loader_v1.23.114.bin (rkbin)", USBProduct: 0x350a},
			Button:  Button{Kind: ButtonNone},
			LEDs:    []LED{{Role: "status", Class: "red:power"}},
			UART:    UART{Device: "ttyS2", Baud: 1500000},
			EMMC:    EMMC{Alias: 1, Controller: "sdhci"},
			Notes:   "Linux 6.12's tree has no RESET key (later trees add gpio-keys \"RESET\" on gpio4 RK_PA0 and rename the LEDs SYS, WAN, LAN-1, LAN-2): recovery is by the rescue console until the firmware's kernel has it.",
		},
		{
			// rk3399-nanopi-r4s.dts (+ rk3399-nanopi4.dtsi): gpio-keys "reset" on
			// <&gpio1 RK_PC6 GPIO_ACTIVE_LOW> (KEY_RESTART, pinctrl pull-up); gpio-leds labelled
			// red:power, green:lan, green:wan; stdout-path serial2:1500000n8; no
			// eMMC (the sdhci node is disabled): TF card only. Later trees (7.3
			// checked) drop the labels: the same three LEDs are green:status
			// (the SYS LED, on the same line as red:power), green:lan, green:wan.
			Name:       "nanopi-r4s",
			Model:      "FriendlyElec NanoPi R4S",
			SoC:        "rk3399",
			Compatible: []string{"friendlyarm,nanopi-r4s"},
			Models:     []string{"FriendlyElec NanoPi R4S"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3399-nanopi-r4s.dts (+ rk3399-nanopi4.dtsi)",
			DTB:        "rockchip/rk3399-nanopi-r4s.dtb",
			Kernels:    "6.12-7.3",
			Modules:    []string{"r8169", "realtek"},
			Bootloader: Bootloader{Lives: BootMedium, Mainline: "nanopi-r4s-rk3399_defconfig",
				Note: "TF card only: the bootloader is in its first 16 MiB (FriendlyElec's images carry theirs)."},
			Maskrom: Maskrom{How: "hold MASK while powering on with no bootable TF card; USB-C port to the PC (not checked)", Loader: "rk3399_loader_v1.30.130.bin (rkbin)", USBProduct: 0x330c},
			Button: Button{Kind: ButtonInput, Label: "reset", KeyCode: keyRestart, KeyName: "KEY_RESTART",
				InputName: "gpio-keys", Line: line("gpio1", "PC6", "reset", true, BiasPullUp)},
			LEDs:  []LED{{Role: "status", Class: "red:power", OtherClasses: []string{"green:status"}}},
			UART:  UART{Device: "ttyS2", Baud: 1500000},
			EMMC:  EMMC{Alias: -1},
			Notes: "No eMMC: the firmware runs from the TF card and install-emmc is not offered. gpio-keys owns the reset line.",
		},
		{
			// rk3399-nanopi-r4s-enterprise.dts: the R4S tree (+ rk3399-nanopi4.dtsi)
			// with an EEPROM that holds the MAC addresses; the same key, LEDs,
			// console and no eMMC.
			Name:       "nanopi-r4s-enterprise",
			Model:      "FriendlyElec NanoPi R4S Enterprise Edition",
			SoC:        "rk3399",
			Compatible: []string{"friendlyarm,nanopi-r4s-enterprise"},
			Models:     []string{"FriendlyElec NanoPi R4S Enterprise Edition"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3399-nanopi-r4s-enterprise.dts (+ rk3399-nanopi4.dtsi)",
			DTB:        "rockchip/rk3399-nanopi-r4s-enterprise.dtb",
			Kernels:    "6.12-7.3",
			Modules:    []string{"r8169", "realtek"},
			Bootloader: Bootloader{Lives: BootMedium, Mainline: "nanopi-r4s-rk3399_defconfig",
				Note: "TF card only: the bootloader is in its first 16 MiB, as on the R4S."},
			Maskrom: Maskrom{How: "hold MASK while powering on with no bootable TF card; USB-C port to the PC (not checked)", Loader: "rk3399_loader_v1.30.130.bin (rkbin)", USBProduct: 0x330c},
			Button: Button{Kind: ButtonInput, Label: "reset", KeyCode: keyRestart, KeyName: "KEY_RESTART",
				InputName: "gpio-keys", Line: line("gpio1", "PC6", "reset", true, BiasPullUp)},
			LEDs:  []LED{{Role: "status", Class: "red:power", OtherClasses: []string{"green:status"}}},
			UART:  UART{Device: "ttyS2", Baud: 1500000},
			EMMC:  EMMC{Alias: -1},
			Notes: "The R4S with its MAC addresses in an EEPROM. No eMMC: the firmware runs from the TF card. gpio-keys owns the reset line.",
		},
		{
			// rk3566-nanopi-r3s.dts: gpio-keys "reset" on <&gpio0 RK_PC2
			// GPIO_ACTIVE_LOW> (KEY_RESTART, debounce 50 ms, pinctrl pull-up);
			// gpio-leds without labels: red:power, green:lan, green:wan;
			// stdout-path serial2:1500000n8. The aliases changed upstream: the
			// first tree had mmc0 = &sdmmc0, mmc1 = &sdhci; 7.3's has mmc0 =
			// &sdhci (checked against its .dtb).
			Name:       "nanopi-r3s",
			Model:      "FriendlyElec NanoPi R3S",
			SoC:        "rk3566",
			Compatible: []string{"friendlyarm,nanopi-r3s"},
			Models:     []string{"FriendlyElec NanoPi R3S"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3566-nanopi-r3s.dts",
			DTB:        "rockchip/rk3566-nanopi-r3s.dtb",
			DTBSince:   "6.14",
			Kernels:    "7.3",
			Modules:    []string{"r8169", "realtek"},
			Bootloader: Bootloader{Lives: BootMedium, Note: "No SPI flash: eMMC and a TF slot. Mainline U-Boot support not checked."},
			Maskrom:    Maskrom{How: "hold MASK while powering on; USB-C port to the PC (not checked)", Loader: "rk356x_spl_loader_v1.23.114.bin (rkbin)", USBProduct: 0x350a},
			Button: Button{Kind: ButtonInput, Label: "reset", KeyCode: keyRestart, KeyName: "KEY_RESTART",
				InputName: "gpio-keys", Line: line("gpio0", "PC2", "reset", true, BiasPullUp)},
			LEDs:  []LED{{Role: "status", Class: "red:power"}},
			UART:  UART{Device: "ttyS2", Baud: 1500000},
			EMMC:  EMMC{Alias: 0, Controller: "sdhci"},
			Notes: "Device tree newer than Linux 6.12: no image until the firmware's kernel has it. gpio-keys owns the reset line; early trees called the eMMC mmc1.",
		},
		{
			// rk3588s-nanopi-r6s.dts includes rk3588s-nanopi-r6.dtsi: gpio-keys
			// "User" on <&gpio1 RK_PC0 GPIO_ACTIVE_LOW> (BTN_1, pull-up); adc-keys
			// "Maskrom" (KEY_VENDOR) on SARADC channel 0; stdout-path
			// serial2:1500000n8; mmc0 = &sdmmc, mmc1 = &sdhci; gpio-leds labelled
			// sys_led (heartbeat), wan_led, lan1_led, lan2_led.
			Name:       "nanopi-r6s",
			Model:      "FriendlyElec NanoPi R6S",
			SoC:        "rk3588s",
			Compatible: []string{"friendlyarm,nanopi-r6s"},
			Models:     []string{"FriendlyElec NanoPi R6S"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3588s-nanopi-r6s.dts (+ rk3588s-nanopi-r6.dtsi)",
			DTB:        "rockchip/rk3588s-nanopi-r6s.dtb",
			Kernels:    "6.12-7.3",
			Modules:    []string{"r8169", "realtek"},
			Bootloader: Bootloader{Lives: BootMedium, Mainline: "nanopi-r6s-rk3588s_defconfig (U-Boot v2024.10)", Note: "No SPI flash: 32 GB eMMC and a TF slot."},
			Maskrom:    Maskrom{How: "hold MASK while powering on; USB 3.0 Type-A port to the PC with an A-to-A cable (not the USB 2 port)", Loader: "rk3588_spl_loader_v1.18.113.bin (rkbin)", USBProduct: 0x350b},
			Button: Button{Kind: ButtonInput, Label: "User", KeyCode: btn1, KeyName: "BTN_1",
				InputName: "gpio-keys", Line: line("gpio1", "PC0", "User", true, BiasPullUp)},
			LEDs:  []LED{{Role: "status", Class: "sys_led"}},
			UART:  UART{Device: "ttyS2", Baud: 1500000},
			EMMC:  EMMC{Alias: 1, Controller: "sdhci"},
			Notes: "The Maskrom key (adc-keys, KEY_VENDOR) is not used.",
		},
		{
			// rk3588s-nanopi-r6c.dts: the R6S tree with lan2_led relabelled
			// user_led; same User key (gpio1 RK_PC0, BTN_1), UART and eMMC.
			Name:       "nanopi-r6c",
			Model:      "FriendlyElec NanoPi R6C",
			SoC:        "rk3588s",
			Compatible: []string{"friendlyarm,nanopi-r6c"},
			Models:     []string{"FriendlyElec NanoPi R6C"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3588s-nanopi-r6c.dts (+ rk3588s-nanopi-r6.dtsi)",
			DTB:        "rockchip/rk3588s-nanopi-r6c.dtb",
			Kernels:    "6.12-7.3",
			Modules:    []string{"r8169", "realtek", "nvme"},
			Bootloader: Bootloader{Lives: BootMedium, Mainline: "nanopi-r6c-rk3588s_defconfig (U-Boot v2024.10)", Note: "No SPI flash: optional eMMC and a TF slot."},
			Maskrom:    Maskrom{How: "hold MASK while powering on; USB 3.0 Type-A port to the PC with an A-to-A cable (not the USB 2 port)", Loader: "rk3588_spl_loader_v1.18.113.bin (rkbin)", USBProduct: 0x350b},
			Button: Button{Kind: ButtonInput, Label: "User", KeyCode: btn1, KeyName: "BTN_1",
				InputName: "gpio-keys", Line: line("gpio1", "PC0", "User", true, BiasPullUp)},
			LEDs: []LED{
				{Role: "status", Class: "sys_led"},
				{Role: "alert", Class: "user_led"},
			},
			UART: UART{Device: "ttyS2", Baud: 1500000},
			EMMC: EMMC{Alias: 1, Controller: "sdhci"},
		},
		{
			// rk3399-rockpro64.dtsi: gpio-keys "GPIO Key Power" on <&gpio0 RK_PA5
			// GPIO_ACTIVE_LOW> (KEY_POWER, debounce 100 ms, pull-up); gpio-leds
			// "work" (gpio0 RK_PB3, on) and "diy" (gpio0 RK_PA2); stdout-path
			// serial2:1500000n8; mmc0 = &sdio0, mmc1 = &sdmmc, mmc2 = &sdhci.
			// rk3399-rockpro64.dts (v2.1) and rk3399-rockpro64-v2.dts (v2.0).
			Name:  "pine64-rockpro64",
			Model: "Pine64 RockPro64",
			SoC:   "rk3399",
			Compatible: []string{
				"pine64,rockpro64-v2.1", "pine64,rockpro64-v2.0", "pine64,rockpro64",
			},
			Models:  []string{"Pine64 RockPro64 v2.1", "Pine64 RockPro64 v2.0", "Pine64 RockPro64"},
			DTS:     "arch/arm64/boot/dts/rockchip/rk3399-rockpro64.dts (+ rk3399-rockpro64.dtsi)",
			DTB:     "rockchip/rk3399-rockpro64.dtb",
			Kernels: "6.12-7.3",
			Modules: []string{"realtek", "nvme", "ahci"},
			Bootloader: Bootloader{Lives: BootMedium, Debian: "rockpro64-rk3399", Mainline: "rockpro64-rk3399_defconfig (U-Boot v2019.07)",
				Note: "The image carries Debian's U-Boot. The mask ROM tries the 16 MiB SPI flash first: a U-Boot put there earlier wins over the TF card."},
			Maskrom: Maskrom{How: "power on with no bootable SPI, eMMC or TF card (or SPI CLK bridged to GND); USB-C port to the PC (not checked)", Loader: "rk3399_loader_v1.30.130.bin (rkbin)", USBProduct: 0x330c},
			Button: Button{Kind: ButtonInput, Label: "GPIO Key Power", KeyCode: keyPower, KeyName: "KEY_POWER",
				InputName: "gpio-keys", Line: line("gpio0", "PA5", "power", true, BiasPullUp)},
			LEDs: []LED{
				{Role: "status", Class: "work"},
				{Role: "alert", Class: "diy"},
			},
			UART:  UART{Device: "ttyS2", Baud: 1500000},
			EMMC:  EMMC{Alias: 2, Controller: "sdhci"},
			Notes: "The only key Linux sees is POWER (the RESET key resets the SoC). Whether the PMIC forces a power-off on a long press has not been checked on hardware.",
		},
		{
			// rk3568-odroid-m1.dts: no gpio-keys or adc-keys node; gpio-leds
			// red:power (gpio0 RK_PC6) and blue:heartbeat (gpio0 RK_PB7);
			// stdout-path serial2:1500000n8; mmc0 = &sdhci, mmc1 = &sdmmc0. The
			// compatible was "rockchip,rk3568-odroid-m1" until mainline renamed
			// it "hardkernel,odroid-m1".
			Name:       "hardkernel-odroid-m1",
			Model:      "Hardkernel ODROID-M1",
			SoC:        "rk3568",
			Compatible: []string{"hardkernel,odroid-m1", "rockchip,rk3568-odroid-m1"},
			Models:     []string{"Hardkernel ODROID-M1"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3568-odroid-m1.dts",
			DTB:        "rockchip/rk3568-odroid-m1.dtb",
			Kernels:    "6.12-7.3",
			Modules:    []string{"realtek", "nvme"},
			Bootloader: Bootloader{Lives: BootSPI, Mainline: "odroid-m1-rk3568_defconfig (U-Boot v2023.10, SPI image)",
				Note: "Hardkernel's U-Boot and Petitboot ship in the 16 MiB SPI flash and boot first; whether Petitboot reads extlinux.conf was not checked. Mainline U-Boot in SPI reads it."},
			Maskrom: Maskrom{How: "the boot selector button switches SPI off; with no bootable eMMC or TF card the SoC enters USB download mode (port not checked)", Loader: "rk356x_spl_loader_v1.23.114.bin (rkbin)", USBProduct: 0x350a},
			Button:  Button{Kind: ButtonNone},
			LEDs: []LED{
				{Role: "status", Class: "blue:heartbeat"},
				{Role: "alert", Class: "red:power"},
			},
			UART:  UART{Device: "ttyS2", Baud: 1500000},
			EMMC:  EMMC{Alias: 0, Controller: "sdhci"},
			Notes: "The mainline device tree exposes no button: recovery is by the rescue console only.",
		},
		{
			// rk3588-rock-5-itx.dts: adc-keys "Mask Rom" (KEY_SETUP) on SARADC
			// channel 0; gpio-leds nodes power-led1 (gpio0 RK_PB7, default-on) and
			// hdd-led2 (gpio0 RK_PC0, disk-activity) without label or colour, so
			// the class names are the node names; stdout-path serial2:1500000n8;
			// mmc0 = &sdhci, mmc1 = &sdmmc.
			Name:       "radxa-rock-5-itx",
			Model:      "Radxa ROCK 5 ITX",
			SoC:        "rk3588",
			Compatible: []string{"radxa,rock-5-itx"},
			Models:     []string{"Radxa ROCK 5 ITX"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3588-rock-5-itx.dts",
			DTB:        "rockchip/rk3588-rock-5-itx.dtb",
			Kernels:    "6.12-7.3",
			Modules:    []string{"r8169", "nvme", "ahci"},
			Bootloader: Bootloader{Lives: BootSPI, Mainline: "rock-5-itx-rk3588_defconfig (U-Boot v2024.10, SPI image)",
				Note: "Radxa's boot firmware lives in the SPI flash (whether it is there from the factory was not checked)."},
			Maskrom: Maskrom{How: "unplug the TF card and power, hold the Maskrom button, connect the USB-C OTG port to the PC (A-to-C)", Loader: "rk3588_spl_loader_v1.08.111.bin (Radxa docs)", USBProduct: 0x350b},
			Button: Button{Kind: ButtonInput, Label: "Mask Rom", KeyCode: keySetup, KeyName: "KEY_SETUP",
				InputName: "adc-keys"},
			LEDs:  []LED{{Role: "status", Class: "power-led1"}},
			UART:  UART{Device: "ttyS2", Baud: 1500000},
			EMMC:  EMMC{Alias: 0, Controller: "sdhci"},
			Notes: "The button is the Maskrom key on the SARADC (adc-keys, polled every 100 ms); held at power-on it enters Maskrom mode instead.",
		},
		{
			// rk3588-orangepi-5-plus.dts: adc-keys "Mask Rom" (KEY_SETUP, SARADC
			// channel 0) and "Recovery" (KEY_VENDOR, SARADC channel 1, node
			// adc-keys-1); gpio-leds blue indicator-1 (gpio3 RK_PA6), pwm-leds
			// green indicator-2; stdout-path serial2:1500000n8; mmc0 = &sdhci.
			Name:       "orangepi-5-plus",
			Model:      "Xunlong Orange Pi 5 Plus",
			SoC:        "rk3588",
			Compatible: []string{"xunlong,orangepi-5-plus"},
			Models:     []string{"Xunlong Orange Pi 5 Plus"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3588-orangepi-5-plus.dts (+ rk3588-orangepi-5.dtsi in later trees)",
			DTB:        "rockchip/rk3588-orangepi-5-plus.dtb",
			Kernels:    "6.12-7.3",
			Modules:    []string{"r8169", "nvme"},
			Bootloader: Bootloader{Lives: BootSPI, Mainline: "orangepi-5-plus-rk3588_defconfig (U-Boot v2024.01, SPI image)",
				Note: "SPI flash, eMMC and TF slot; a U-Boot in the SPI flash boots first."},
			Maskrom: Maskrom{How: "hold the MaskROM button while powering on; USB-C port (OTG) to the PC", Loader: "rk3588_spl_loader_v1.18.113.bin (rkbin)", USBProduct: 0x350b},
			Button: Button{Kind: ButtonInput, Label: "Recovery", KeyCode: keyVendor, KeyName: "KEY_VENDOR",
				InputName: "adc-keys-1"},
			LEDs: []LED{
				{Role: "status", Class: "blue:indicator-1"},
				{Role: "alert", Class: "green:indicator-2"},
			},
			UART: UART{Device: "ttyS2", Baud: 1500000},
			EMMC: EMMC{Alias: 0, Controller: "sdhci"},
		},
		{
			// rk3568-radxa-e25.dts includes rk3568-radxa-cm3i.dtsi: no key node;
			// gpio-leds green:heartbeat (gpio0 RK_PA6) on the CM3I, an RGB
			// pwm-leds-multicolor on the carrier; stdout-path serial2:115200n8;
			// mmc0 = &sdhci (CM3I eMMC), mmc1 = &sdmmc0.
			Name:       "radxa-e25",
			Model:      "Radxa E25",
			SoC:        "rk3568",
			Compatible: []string{"radxa,e25"},
			Models:     []string{"Radxa E25 Carrier Board"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3568-radxa-e25.dts (+ rk3568-radxa-cm3i.dtsi)",
			DTB:        "rockchip/rk3568-radxa-e25.dtb",
			// Later trees (7.3 checked) add adc-keys "Recovery" (KEY_VENDOR).
			Kernels:    "6.12",
			Modules:    []string{"r8169"},
			Bootloader: Bootloader{Lives: BootMedium, Mainline: "radxa-e25-rk3568_defconfig (U-Boot v2023.10)", Note: "No SPI flash: eMMC on the CM3I module and a TF slot."},
			Maskrom:    Maskrom{How: "not checked", Loader: "rk356x_spl_loader_v1.23.114.bin (rkbin)", USBProduct: 0x350a},
			Button:     Button{Kind: ButtonNone},
			LEDs:       []LED{{Role: "status", Class: "green:heartbeat"}},
			UART:       UART{Device: "ttyS2", Baud: 115200},
			EMMC:       EMMC{Alias: 0, Controller: "sdhci"},
			Notes:      "Linux 6.12's device tree exposes no button (later trees add the Recovery key on the SARADC).",
		},
		{
			// rk3582-radxa-e52c.dts (on rk3588s.dtsi): gpio-keys node keys-1
			// "User" on <&gpio4 RK_PB3 GPIO_ACTIVE_LOW> (BTN_0, pinctrl no
			// pull); adc-keys "Maskrom" (KEY_VENDOR, SARADC channel 0);
			// gpio-leds green:status (heartbeat), pwm-leds green:lan and
			// green:wan; stdout-path serial2:1500000n8; mmc0 = &sdhci,
			// mmc1 = &sdmmc. Two 2.5G RTL8125 on PCIe.
			Name:       "radxa-e52c",
			Model:      "Radxa E52C",
			SoC:        "rk3582",
			Compatible: []string{"radxa,e52c"},
			Models:     []string{"Radxa E52C"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3582-radxa-e52c.dts",
			DTB:        "rockchip/rk3582-radxa-e52c.dtb",
			DTBSince:   "6.14",
			Kernels:    "7.3",
			Modules:    []string{"r8169", "realtek"},
			Bootloader: Bootloader{Lives: BootMedium, Note: "eMMC and a TF slot (the tree enables both). Mainline U-Boot support not checked."},
			Maskrom:    Maskrom{How: "hold the Maskrom key while powering on; USB-C port to the PC (not checked)", Loader: "rk3588_spl_loader_v1.18.113.bin (rkbin)", USBProduct: 0x350b},
			Button: Button{Kind: ButtonInput, Label: "User", KeyCode: btn0, KeyName: "BTN_0",
				InputName: "keys-1", Line: line("gpio4", "PB3", "User", true, BiasNone)},
			LEDs:  []LED{{Role: "status", Class: "green:status"}},
			UART:  UART{Device: "ttyS2", Baud: 1500000},
			EMMC:  EMMC{Alias: 0, Controller: "sdhci"},
			Notes: "Device tree newer than Linux 6.12: no image until the firmware's kernel has it. The Maskrom key (adc-keys) is not used.",
		},
		{
			// rk3399-kobol-helios64.dts: no key node; gpio-leds
			// "helios64:green:status" (gpio0 RK_PB4) and "helios64:red:fault"
			// (gpio0 RK_PB5); stdout-path serial2:1500000n8; mmc0 = &sdmmc,
			// mmc1 = &sdhci.
			Name:       "kobol-helios64",
			Model:      "Kobol Helios64",
			SoC:        "rk3399",
			Compatible: []string{"kobol,helios64"},
			Models:     []string{"Kobol Helios64"},
			DTS:        "arch/arm64/boot/dts/rockchip/rk3399-kobol-helios64.dts",
			DTB:        "rockchip/rk3399-kobol-helios64.dtb",
			Kernels:    "6.12-7.3",
			Modules:    []string{"realtek", "ahci", "r8152"},
			Bootloader: Bootloader{Lives: BootSPI, Note: "Boot order SPI flash, eMMC, TF card (jumper P11 disables SPI, P10 the eMMC). Mainline U-Boot has no Helios64 configuration; Armbian carries one."},
			Maskrom:    Maskrom{How: "hold the Recovery button at power-on until the LED blinks twice (or close P10 and P11 with no TF card); close P13 so the USB-C port carries USB", Loader: "rk3399_loader_v1.24_RevNocRL.126.bin (Kobol wiki)", USBProduct: 0x330c},
			Button:     Button{Kind: ButtonNone},
			LEDs: []LED{
				{Role: "status", Class: "helios64:green:status"},
				{Role: "alert", Class: "helios64:red:fault"},
			},
			UART:  UART{Device: "ttyS2", Baud: 1500000},
			EMMC:  EMMC{Alias: 1, Controller: "sdhci"},
			Notes: "The mainline device tree describes none of the front-panel buttons; the vendor tree's USER buttons are not known here.",
		},
		{
			// The QEMU arm64 virt machine (see the qemu-virt convention): init
			// creates gpio-sim bank "rknas-sim" with line0 "reset" (active low,
			// pulled up when released), line1 "led-status", line2 "led-alert".
			// The PL011 console is ttyAMA0 at 115200; the state disk is virtio.
			Name:       "qemu-virt",
			Model:      "QEMU arm64 virt machine",
			Compatible: []string{"linux,dummy-virt"},
			Kernels:    "6.12",
			// Devices QEMU adds on PCI (virtio, the USB and SD controllers the
			// flashing tests use, the watchdog) and the test rig's modules.
			Modules: []string{"virtio_pci", "virtio_blk", "virtio_net", "virtio_rng", "xhci_pci", "sdhci_pci",
				"i6300esb", "uinput", "configfs", "gpio_sim", "leds_gpio"},
			// QEMU's tree has a gpio-keys node for the power key on PL061
			// line 3; uinit requests that line itself to power off cleanly.
			NoModules:  []string{"gpio_keys"},
			Bootloader: Bootloader{Lives: BootQEMU, Note: "U-Boot is QEMU's -bios (Debian's u-boot-qemu); it reads extlinux.conf from the virtio disk."},
			Button: Button{Kind: ButtonGPIO, Label: "reset",
				GPIO: &GPIOLine{Chip: "rknas-sim", Offset: 0, ActiveLow: true, Bias: BiasNone, Name: "reset"}},
			LEDs: []LED{
				{Role: "status", GPIO: &GPIOLine{Chip: "rknas-sim", Offset: 1, Name: "led-status"}},
				{Role: "alert", GPIO: &GPIOLine{Chip: "rknas-sim", Offset: 2, Name: "led-alert"}},
			},
			UART: UART{Device: "ttyAMA0", Baud: 115200},
			// QEMU 7.2 has no eMMC device: an SD card on sdhci-pci stands in.
			EMMC:  EMMC{Alias: 0, Controller: "sdhci-pci", Type: "SD"},
			Notes: "The button line is driven through gpio-sim's sysfs pull attribute; no bias is requested so the simulated pull stays in charge.",
		},
		NoneProfile(""),
	}
	for i := range ps {
		if ps[i].ResetHold == 0 {
			ps[i].ResetHold = DefaultResetHold
		}
		if ps[i].CancelHold == 0 {
			ps[i].CancelHold = DefaultCancelHold
		}
	}
	return ps
}

// NoneProfile is the profile of a development host or an unknown board: no
// button, no LEDs, no UART, no eMMC. reason says why it was chosen.
func NoneProfile(reason string) Profile {
	return Profile{
		Name:       "none",
		Model:      "no board (development host or unknown board)",
		Button:     Button{Kind: ButtonNone},
		EMMC:       EMMC{Alias: -1},
		ResetHold:  DefaultResetHold,
		CancelHold: DefaultCancelHold,
		Reason:     reason,
	}
}
