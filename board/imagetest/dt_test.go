//go:build imagetest

package imagetest

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rknas/firmware/board"
	"github.com/u-root/u-root/pkg/dt"
)

// TestProfilesAgainstKernelTrees checks every profile against the device
// trees of the kernels its Kernels range names: the firmware's (Debian
// trixie's, fetched and cached by scripts/kernel.sh) and a newer Debian
// kernel's (trixie-backports, scripts/kernel.sh --newer-dtbs), which holds
// the boards whose trees came later. It checks compatible, the button
// (gpio-keys line, polarity, pull and key code, or the adc-keys key; no key
// at all for a profile without one), the LEDs' class names as that kernel
// names them, the console and its speed, and the eMMC's alias. A profile can
// no longer drift from the kernels it claims, and both ends of every claim
// are checked.
func TestProfilesAgainstKernelTrees(t *testing.T) {
	t.Parallel() // mostly downloads: beside the image builds
	root := moduleRoot(t)
	type kernelTrees struct {
		dir     string
		release board.Release
	}
	var kernels []kernelTrees
	for _, args := range [][]string{nil, {"--newer-dtbs"}} {
		out, err := exec.Command(filepath.Join(root, "scripts", "kernel.sh"), args...).Output()
		if err != nil {
			t.Fatalf("scripts/kernel.sh %s: %v", strings.Join(args, " "), err)
		}
		dir := strings.TrimSpace(string(out))
		abi, err := os.ReadFile(filepath.Join(dir, "abi"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := board.ParseRelease(strings.TrimSpace(string(abi)))
		if err != nil {
			t.Fatal(err)
		}
		kernels = append(kernels, kernelTrees{dir, r})
	}
	checks := map[board.Release]int{}
	for _, p := range board.All() {
		if p.DTB == "" {
			continue
		}
		first, last, err := board.ParseKernels(p.Kernels)
		if err != nil {
			t.Errorf("%s: %v", p.Name, err)
			continue
		}
		for _, end := range []board.Release{first, last} {
			if !slices.ContainsFunc(kernels, func(k kernelTrees) bool { return k.release == end }) {
				t.Errorf("%s: kernels %q names Linux %s, whose trees are not checked here (%s and %s are)",
					p.Name, p.Kernels, end, kernels[0].release, kernels[1].release)
			}
		}
		for _, k := range kernels {
			if !p.HoldsFor(k.release.String()) {
				continue
			}
			t.Run(p.Name+"/"+k.release.String(), func(t *testing.T) {
				checkProfileTree(t, p, filepath.Join(k.dir, "dtbs", p.DTB))
			})
			checks[k.release]++
		}
	}
	for _, k := range kernels {
		fmt.Printf("imagetest: %d profiles checked against the device trees of Linux %s (%s)\n", checks[k.release], k.release, filepath.Base(k.dir))
	}
}

// tree is a device tree with its phandles and aliases resolved.
type tree struct {
	root     *dt.Node
	phandles map[uint32]string // phandle -> node path
	aliases  map[string]string // alias -> node path
	nodes    map[string]*dt.Node
}

func readTree(t *testing.T, path string) *tree {
	t.Helper()
	fdt, err := dt.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	tr := &tree{root: fdt.RootNode, phandles: map[uint32]string{}, aliases: map[string]string{}, nodes: map[string]*dt.Node{}}
	var walk func(n *dt.Node, path string)
	walk = func(n *dt.Node, path string) {
		tr.nodes[path] = n
		if p, ok := n.LookProperty("phandle"); ok {
			if v, err := p.AsU32(); err == nil {
				tr.phandles[v] = path
			}
		}
		for _, c := range n.Children {
			walk(c, strings.TrimSuffix(path, "/")+"/"+c.Name)
		}
	}
	walk(tr.root, "/")
	if a, ok := tr.nodes["/aliases"]; ok {
		for _, p := range a.Properties {
			tr.aliases[p.Name] = str(a, p.Name)
		}
	}
	return tr
}

func str(n *dt.Node, prop string) string {
	if l := strs(n, prop); len(l) > 0 {
		return l[0]
	}
	return ""
}

// strs reads a string-list property. Not dt's AsStringList: it panics on
// some of the kernel's properties (u-root v0.16.0).
func strs(n *dt.Node, prop string) []string {
	p, ok := n.LookProperty(prop)
	if !ok || len(p.Value) == 0 || p.Value[len(p.Value)-1] != 0 {
		return nil
	}
	return strings.Split(string(p.Value[:len(p.Value)-1]), "\x00")
}

func u32s(n *dt.Node, prop string) []uint32 {
	p, ok := n.LookProperty(prop)
	if !ok {
		return nil
	}
	var out []uint32
	for i := 0; i+4 <= len(p.Value); i += 4 {
		out = append(out, binary.BigEndian.Uint32(p.Value[i:]))
	}
	return out
}

// compatibleNodes returns the paths of the nodes compatible with c.
func (tr *tree) compatibleNodes(c string) []string {
	var out []string
	for path, n := range tr.nodes {
		if slices.Contains(strs(n, "compatible"), c) {
			out = append(out, path)
		}
	}
	slices.Sort(out)
	return out
}

// aliasOf returns the alias naming path with the given prefix ("gpio").
func (tr *tree) aliasOf(path, prefix string) string {
	for name, p := range tr.aliases {
		if p == path && strings.HasPrefix(name, prefix) {
			return name
		}
	}
	return ""
}

// ledColors are include/dt-bindings/leds/common.h's LED_COLOR_ID_* names.
var ledColors = []string{"white", "red", "green", "blue", "amber", "violet", "yellow", "ir", "multicolor", "rgb", "purple", "orange", "pink", "cyan", "lime"}

// ledClassNames returns the class device names the kernel gives the tree's
// gpio-leds and pwm-leds: the label if set, else color:function with its
// enumerator, else the node name (led_compose_name), with _1, _2, ... for a
// name taken already.
func (tr *tree) ledClassNames() []string {
	var out []string
	seen := map[string]int{}
	for _, c := range []string{"gpio-leds", "pwm-leds"} {
		for _, path := range tr.compatibleNodes(c) {
			for _, led := range tr.nodes[path].Children {
				name := str(led, "label")
				if name == "" {
					color, function := "", str(led, "function")
					if v := u32s(led, "color"); len(v) == 1 && int(v[0]) < len(ledColors) {
						color = ledColors[v[0]]
					}
					if e := u32s(led, "function-enumerator"); len(e) == 1 && function != "" {
						function += "-" + strconv.Itoa(int(e[0]))
					}
					if color != "" || function != "" {
						name = color + ":" + function
					} else {
						name = led.Name
					}
				}
				// A name taken already gets _1, _2, ... (led_classdev_register).
				if n := seen[name]; n > 0 {
					seen[name]++
					name = fmt.Sprintf("%s_%d", name, n)
				} else {
					seen[name] = 1
				}
				out = append(out, name)
			}
		}
	}
	return out
}

// pinBias returns the bias ("pull-up", "pull-down", "disable" or "") that
// n's pinctrl-0 sets on line pin of chip gpioN: Rockchip's rockchip,pins
// entries are <bank pin function &pcfg>, and the pcfg node holds the bias.
func (tr *tree) pinBias(n *dt.Node, pin uint32, chip string) string {
	bank, err := strconv.Atoi(strings.TrimPrefix(chip, "gpio"))
	if err != nil {
		return ""
	}
	for _, ph := range u32s(n, "pinctrl-0") {
		group, ok := tr.nodes[tr.phandles[ph]]
		if !ok {
			continue
		}
		pins := u32s(group, "rockchip,pins")
		for i := 0; i+4 <= len(pins); i += 4 {
			if pins[i] != uint32(bank) || pins[i+1] != pin {
				continue
			}
			cfg := tr.nodes[tr.phandles[pins[i+3]]]
			for _, b := range []string{"pull-up", "pull-down", "disable"} {
				if cfg != nil {
					if _, ok := cfg.LookProperty("bias-" + b); ok {
						return b
					}
				}
			}
			return "none"
		}
	}
	return ""
}

func checkProfileTree(t *testing.T, p board.Profile, dtbPath string) {
	tr := readTree(t, dtbPath)
	if compat := strs(tr.root, "compatible"); !slices.ContainsFunc(p.Compatible, func(c string) bool { return slices.Contains(compat, c) }) {
		t.Errorf("compatible %q has none of the profile's %q", compat, p.Compatible)
	}

	// The button.
	switch b := p.Button; {
	case b.Kind == board.ButtonNone:
		// No key the profile leaves unused: a kernel that gained one is
		// outside the profile's Kernels.
		for _, c := range []string{"gpio-keys", "adc-keys"} {
			if nodes := tr.compatibleNodes(c); len(nodes) > 0 {
				t.Errorf("the profile has no button, but the tree has %s %q", c, nodes)
			}
		}
	case b.Kind == board.ButtonInput && b.Line != nil:
		found := false
		for _, keys := range tr.compatibleNodes("gpio-keys") {
			for _, key := range tr.nodes[keys].Children {
				if code := u32s(key, "linux,code"); len(code) != 1 || code[0] != uint32(b.KeyCode) {
					continue
				}
				found = true
				gpios := u32s(key, "gpios")
				if len(gpios) != 3 {
					t.Errorf("%s/%s: gpios %v, want <&controller pin flags>", keys, key.Name, gpios)
					continue
				}
				chip := tr.aliasOf(tr.phandles[gpios[0]], "gpio")
				if chip != b.Line.Chip || int(gpios[1]) != b.Line.Offset || (gpios[2]&1 == 1) != b.Line.ActiveLow {
					t.Errorf("button %s: the tree has %s line %d active-low=%v; the profile says %s", b.KeyName, chip, gpios[1], gpios[2]&1 == 1, b.Line)
				}
				if b.Line.Bias != "" && b.Line.Bias != board.BiasNone {
					if got := tr.pinBias(tr.nodes[keys], gpios[1], chip); got != string(b.Line.Bias) {
						t.Errorf("button %s: the keys' pinctrl gives %s line %d bias %q; the profile says %q", b.KeyName, chip, gpios[1], got, b.Line.Bias)
					}
				}
				if l := str(key, "label"); l != b.Label {
					t.Errorf("button label %q, the profile says %q", l, b.Label)
				}
				if name := filepath.Base(keys); name != b.InputName {
					t.Errorf("button input device %q, the profile says %q", name, b.InputName)
				}
			}
		}
		if !found {
			t.Errorf("no gpio-keys key with code %s (%d) in the tree", b.KeyName, b.KeyCode)
		}
	case b.Kind == board.ButtonInput:
		found := false
		for _, keys := range tr.compatibleNodes("adc-keys") {
			for _, key := range tr.nodes[keys].Children {
				if code := u32s(key, "linux,code"); len(code) == 1 && code[0] == uint32(b.KeyCode) {
					found = true
					if name := filepath.Base(keys); name != b.InputName {
						t.Errorf("button input device %q, the profile says %q", name, b.InputName)
					}
				}
			}
		}
		if !found {
			t.Errorf("no adc-keys key with code %s (%d) in the tree", b.KeyName, b.KeyCode)
		}
	}

	// The LEDs, as this kernel names them.
	classes := tr.ledClassNames()
	for _, l := range p.LEDs {
		if l.Class == "" {
			continue
		}
		if !slices.ContainsFunc(l.Classes(), func(c string) bool { return slices.Contains(classes, c) }) {
			t.Errorf("LED %s: none of %q is an LED of this tree (it has %q)", l.Role, l.Classes(), classes)
		}
	}

	// The console.
	if p.UART.Device != "" {
		chosen, ok := tr.nodes["/chosen"]
		path := ""
		if ok {
			path = str(chosen, "stdout-path")
		}
		alias, opts, _ := strings.Cut(path, ":")
		want := fmt.Sprintf("serial%s:%dn8", strings.TrimPrefix(p.UART.Device, "ttyS"), p.UART.Baud)
		if _, ok := tr.aliases[alias]; !ok || alias+":"+opts != want {
			t.Errorf("stdout-path %q, the profile says %s at %d (%s)", path, p.UART.Device, p.UART.Baud, want)
		}
	}

	// The eMMC.
	if p.EMMC.Alias >= 0 {
		path, ok := tr.aliases["mmc"+strconv.Itoa(p.EMMC.Alias)]
		if !ok {
			t.Errorf("no mmc%d alias in the tree", p.EMMC.Alias)
		} else if p.EMMC.Controller == "sdhci" {
			compat := strings.Join(strs(tr.nodes[path], "compatible"), " ")
			if !strings.Contains(compat, "dwcmshc") && !strings.Contains(compat, "sdhci") {
				t.Errorf("mmc%d is %s (%s), not an SDHCI eMMC controller", p.EMMC.Alias, path, compat)
			}
		}
	}
}
