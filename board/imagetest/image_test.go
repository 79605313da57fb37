//go:build imagetest

package imagetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/rknas/firmware/board"
	"github.com/rknas/firmware/board/diskimage"
	"github.com/rknas/firmware/board/modules"
	"github.com/u-root/u-root/pkg/dt"
)

// sfdiskTable is what `sfdisk --json` says of a disk.
type sfdiskTable struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		FirstLBA   uint64 `json:"firstlba"`
		LastLBA    uint64 `json:"lastlba"`
		Partitions []struct {
			Node  string `json:"node"`
			Start uint64 `json:"start"`
			Size  uint64 `json:"size"`
			Type  string `json:"type"`
			UUID  string `json:"uuid"`
			Name  string `json:"name"`
			Attrs string `json:"attrs"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

// TestImageLayout builds the image of every board profile with the README's
// command and checks it with independent tools: the GPT with sfdisk and
// sgdisk, the FAT boot partition with fsck.fat and mtools, extlinux.conf as
// U-Boot reads it, the device tree's compatible with fdtget against the
// profile, the state partition with e2fsck, the bootloader bytes against the
// manifest, and that the initramfs carries the board's modules.
//
// The first board's image is built alone (it builds the kernel and base
// initramfs caches), the others two at a time beside the kernel trees'
// test.
func TestImageLayout(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	first := true
	for _, p := range board.All() {
		if p.Name == "none" {
			continue
		}
		parallel := !first
		first = false
		t.Run(p.Name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			cmd := exec.Command(filepath.Join(root, "scripts", "image.sh"), p.Name)
			cmd.Dir = root
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if p.DTBSince != "" {
				// No kernel the image ships has this board's tree: the
				// builder must refuse and say which kernel would.
				if err == nil {
					t.Fatalf("built an image for %s although its device tree needs Linux %s", p.Name, p.DTBSince)
				}
				if !strings.Contains(stderr.String(), "Linux "+p.DTBSince) {
					t.Fatalf("the refusal does not name Linux %s:\n%s", p.DTBSince, stderr.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("scripts/image.sh %s: %v\n%s", p.Name, err, stderr.String())
			}
			img := strings.TrimSpace(string(out))
			checkImage(t, p, img)
		})
	}
}

func checkImage(t *testing.T, p board.Profile, img string) {
	// The checksum file matches.
	sum, err := os.ReadFile(img + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	if got := fileSHA256(t, img); !strings.HasPrefix(string(sum), got+"  ") {
		t.Errorf("%s.sha256 = %q, the image hashes to %s", img, sum, got)
	}

	// The GPT, read by sfdisk and checked by sgdisk.
	var tab sfdiskTable
	if err := json.Unmarshal(run(t, "sfdisk", "--json", img), &tab); err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	pt := tab.PartitionTable
	if pt.Label != "gpt" || len(pt.Partitions) != 2 {
		t.Fatalf("sfdisk: label %q with %d partitions, want gpt with 2", pt.Label, len(pt.Partitions))
	}
	boot, state := pt.Partitions[0], pt.Partitions[1]
	if boot.Name != diskimage.BootLabel || boot.Start != diskimage.BootStart || boot.Size != diskimage.BootSectors ||
		boot.Type != strings.ToUpper(diskimage.TypeBasicData.String()) || boot.Attrs != "LegacyBIOSBootable" {
		t.Errorf("boot partition: %+v", boot)
	}
	if state.Name != diskimage.StateLabel || state.Start != diskimage.BootStart+diskimage.BootSectors ||
		state.Size < diskimage.StateSectors || state.Type != strings.ToUpper(diskimage.TypeLinuxFS.String()) {
		t.Errorf("state partition: %+v", state)
	}
	if v := string(run(t, "sgdisk", "-v", img)); !strings.Contains(v, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", v)
	}

	// The boot partition: clean FAT, labelled, with the files U-Boot reads.
	dir := t.TempDir()
	bootFS := extract(t, img, dir, "boot.fat", diskimage.BootStart, diskimage.BootSectors)
	run(t, "fsck.fat", "-n", bootFS)
	if l := string(run(t, "mlabel", "-s", "-i", bootFS, "::")); !strings.Contains(l, diskimage.BootLabel) {
		t.Errorf("FAT label: %q", l)
	}
	get := func(name string) []byte {
		return run(t, "mtype", "-i", bootFS, "::/"+name)
	}
	conf := parseExtlinux(t, string(get(diskimage.ExtlinuxFile)))
	if conf["kernel"] != "/"+diskimage.KernelFile || conf["initrd"] != "/"+diskimage.InitramfsFile {
		t.Errorf("extlinux.conf: kernel %q initrd %q", conf["kernel"], conf["initrd"])
	}
	wantAppend := []string{diskimage.DiskArg + "=" + strings.ToLower(pt.ID)}
	if c := p.KernelConsole(); c != "" {
		wantAppend = append(wantAppend, "console="+c)
	}
	for _, w := range wantAppend {
		if !strings.Contains(" "+conf["append"]+" ", " "+w+" ") {
			t.Errorf("extlinux.conf append %q lacks %q", conf["append"], w)
		}
	}
	var m diskimage.Manifest
	if err := json.Unmarshal(get(diskimage.ManifestFile), &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if m.Board != p.Name || m.SoC != p.SoC {
		t.Errorf("manifest: board %q soc %q, want %q %q", m.Board, m.SoC, p.Name, p.SoC)
	}

	// The device tree: the one the profile names, for this board.
	if p.DTB == "" {
		if _, ok := conf["fdt"]; ok {
			t.Errorf("extlinux.conf gives a device tree to a board whose firmware provides one")
		}
	} else {
		if conf["fdt"] != "/"+diskimage.DTBDir+"/"+p.DTB {
			t.Errorf("extlinux.conf fdt %q, want /%s/%s", conf["fdt"], diskimage.DTBDir, p.DTB)
		}
		dtb := filepath.Join(dir, "board.dtb")
		if err := os.WriteFile(dtb, get(strings.TrimPrefix(conf["fdt"], "/")), 0o644); err != nil {
			t.Fatal(err)
		}
		compat := strings.Fields(string(run(t, "fdtget", "-t", "s", dtb, "/", "compatible")))
		if !overlaps(compat, p.Compatible) {
			t.Errorf("the image's device tree says compatible %v; the profile %v", compat, p.Compatible)
		}
		if got := board.DetectFS(dtFS(t, dtb)); got.Name != p.Name {
			t.Errorf("board.Detect on the image's device tree gives %q (%s)", got.Name, got.Reason)
		}
	}

	// The bootloader: where the manifest says, byte for byte.
	chain := readAt(t, img, diskimage.BootChainSector*diskimage.SectorSize, (diskimage.BootChainEnd-diskimage.BootChainSector)*diskimage.SectorSize)
	if m.Bootloader.Included {
		h := sha256.Sum256(chain[:m.Bootloader.Size])
		if hex.EncodeToString(h[:]) != m.Bootloader.SHA256 {
			t.Errorf("the bytes at sector %d are not the manifest's bootloader", diskimage.BootChainSector)
		}
		if p.Bootloader.Debian == "" {
			t.Errorf("a bootloader is included although the profile names no Debian build and none was given")
		}
	} else {
		if !bytes.Equal(chain, make([]byte, len(chain))) {
			t.Errorf("the boot chain area is not empty although no bootloader is included")
		}
		if p.Bootloader.Debian != "" {
			t.Errorf("no bootloader although Debian builds %s for this board", p.Bootloader.Debian)
		}
	}

	// The state partition: a clean, empty ext4 labelled RKNAS-STATE.
	stateFS := extract(t, img, dir, "state.ext4", state.Start, diskimage.StateSectors)
	run(t, "e2fsck", "-fn", stateFS)
	if l := strings.TrimSpace(string(run(t, "e2label", stateFS))); l != diskimage.StateLabel {
		t.Errorf("state label %q", l)
	}

	// The initramfs: the base image and the board's modules.
	ird := filepath.Join(dir, "initramfs.cpio.zst")
	if err := os.WriteFile(ird, get(diskimage.InitramfsFile), 0o644); err != nil {
		t.Fatal(err)
	}
	files := readCPIO(t, run(t, "zstd", "-dc", ird))
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	list := strings.Join(names, "\n") + "\n"
	for _, f := range []string{"bbin/bb", "bbin/authd", "bbin/rescue", "bbin/uinit"} {
		if !strings.Contains(list, f+"\n") {
			t.Errorf("the initramfs lacks %s", f)
		}
	}
	loadRE := regexp.MustCompile(`(?m)^lib/modules/([^/]+)/` + regexp.QuoteMeta(modules.LoadList) + `$`)
	lm := loadRE.FindStringSubmatch(list)
	if lm == nil {
		t.Fatalf("the initramfs has no module list")
	}
	load := string(files[lm[0]])
	mods := map[string]bool{}
	for _, n := range strings.Fields(load) {
		mods[n] = true
		if !regexp.MustCompile(`(?m)^lib/modules/` + regexp.QuoteMeta(lm[1]) + `/.*/` + regexp.QuoteMeta(n) + `\.ko$`).MatchString(list) {
			t.Errorf("module %s is listed but not in the initramfs", n)
		}
	}
	for _, n := range wantModules(p) {
		if !mods[n] {
			t.Errorf("the initramfs does not load %s; it loads %s", n, strings.Join(strings.Fields(load), " "))
		}
	}
	fmt.Printf("imagetest: %-24s ok: %d modules, bootloader %s, initramfs %d KiB\n", p.Name, len(mods),
		m.Bootloader.Source, len(get(diskimage.InitramfsFile))/1024)
}

// readCPIO reads every newc archive in b, one after the other as the kernel
// unpacks an initramfs, and returns the regular files' contents and the
// symbolic links' targets by path (a later archive's entry replaces an
// earlier one's).
func readCPIO(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	archives := 0
	for off := 0; off < len(b); {
		if b[off] == 0 { // padding between archives
			off++
			continue
		}
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("cpio: no newc header at byte %d", off)
		}
		field := func(i int) int {
			n, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("cpio: bad header field at byte %d: %v", off, err)
			}
			return int(n)
		}
		mode, size, nameLen := field(1), field(6), field(11)
		nameEnd := off + 110 + nameLen
		name := strings.TrimSuffix(string(b[off+110:nameEnd]), "\x00")
		data := (nameEnd + 3) &^ 3
		next := (data + size + 3) &^ 3
		if next > len(b) {
			t.Fatalf("cpio: %s runs past the end", name)
		}
		if name == "TRAILER!!!" {
			archives++
		} else if t := mode & 0o170000; t == 0o100000 || t == 0o120000 {
			files[strings.TrimPrefix(name, "./")] = b[data : data+size]
		}
		off = next
	}
	if archives < 2 {
		t.Errorf("the initramfs has %d archive(s); want the base and the board's modules", archives)
	}
	return files
}

// wantModules is what a board cannot work without, by what its profile
// says: the storage for its state, the button's driver, the LEDs', and the
// hardware watchdog uinit feeds.
func wantModules(p board.Profile) []string {
	want := []string{"ext4", "vfat"}
	switch {
	case p.Button.Kind == board.ButtonInput && p.Button.Line != nil:
		want = append(want, "gpio_keys")
	case p.Button.Kind == board.ButtonInput:
		want = append(want, "adc_keys", "rockchip_saradc")
	}
	if p.Name == "qemu-virt" {
		return append(want, "virtio_blk", "virtio_net", "gpio_sim", "sdhci_pci", "i6300esb")
	}
	switch p.SoC {
	case "rk3566", "rk3568", "rk3582", "rk3588", "rk3588s":
		want = append(want, "sdhci_of_dwcmshc", "gpio_rockchip", "dw_wdt")
	case "rk3399":
		want = append(want, "gpio_rockchip", "dw_wdt")
	}
	for _, l := range p.LEDs {
		if l.Class != "" && !strings.Contains(l.Class, "indicator-2") { // pwm-leds on the Orange Pi
			want = append(want, "leds_gpio")
			break
		}
	}
	return want
}

func parseExtlinux(t *testing.T, s string) map[string]string {
	t.Helper()
	conf := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, _ := strings.Cut(l, " ")
		conf[k] = strings.TrimSpace(v)
	}
	if conf["default"] == "" || conf["label"] != conf["default"] {
		t.Errorf("extlinux.conf: default %q, label %q", conf["default"], conf["label"])
	}
	return conf
}

func overlaps(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %s: %v\n%s%s (scripts/deps.sh installs the tools)", name, strings.Join(args, " "), err, out, stderr)
	}
	return out
}

func extract(t *testing.T, img, dir, name string, start, sectors uint64) string {
	t.Helper()
	out := filepath.Join(dir, name)
	if err := os.WriteFile(out, readAt(t, img, int64(start)*diskimage.SectorSize, int64(sectors)*diskimage.SectorSize), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func readAt(t *testing.T, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func moduleRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// dtFS is a file system with the device tree's compatible and model where
// board.Detect reads them on a running board.
func dtFS(t *testing.T, dtb string) fstest.MapFS {
	t.Helper()
	f, err := os.Open(dtb)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tree, err := dt.ReadFDT(f)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for _, prop := range []string{"compatible", "model"} {
		if p, ok := tree.RootNode.LookProperty(prop); ok {
			fsys["proc/device-tree/"+prop] = &fstest.MapFile{Data: p.Value}
		}
	}
	return fsys
}
