package modules

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/net/ethernet/realtek/r8169.ko.xz": "r8169",
		"kernel/fs/nls/nls_iso8859-1.ko.xz":               "nls_iso8859_1",
		"gpio-sim":                                        "gpio_sim",
		"extra/gpio-sim.ko":                               "gpio_sim",
		"xhci-plat-hcd.ko.zst":                            "xhci_plat_hcd",
	} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, tt := range []struct {
		p, s string
		want bool
	}{
		{"of:N*T*Crockchip,rk3568-dwmacC*", "of:NethernetT(null)Crockchip,rk3568-dwmacCsnps,dwmac-4.20a", true},
		{"of:N*T*Crockchip,rk3568-dwmac", "of:NethernetT<NULL>Crockchip,rk3568-dwmac", true},
		{"of:N*T*Crockchip,rk3568-dwmac", "of:NethernetT<NULL>Crockchip,rk3568-dwmacCsnps", false},
		{"of:N*T*Crockchip,rk3568-dwmacC*", "of:NethernetT<NULL>Crockchip,rk3568-gmac", false},
		{"pci:v000010ECd00008125sv*sd*bc*sc*i*", "pci:v000010ECd00008125sv000010ECsd00000123bc02sc00i00", true},
		{"usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*", "usb:v0BDAp0129d3960dc00dsc00dp00ic08isc06ip50in00", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"[abc]x", "bx", true},
		{"[!abc]x", "bx", false},
		{"[^abc]x", "dx", true},
		{"[a-c]*", "c/d/e", true},
		{"[]]x", "]x", true},
		{"[", "[", true},     // malformed set: a literal '['
		{"[ab", "[ab", true}, // likewise
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{"**", "", true},
		{"*a*b*c*", "xaybzc", true},
		{"*a*b*c*", "xaybz", false},
		{"", "", true},
		{"", "x", false},
	} {
		if got := Glob(tt.p, tt.s); got != tt.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tt.p, tt.s, got, tt.want)
		}
	}
}

// TestGlobLikeFnmatch compares Glob with the shell's own pattern matching
// (bash's case, which follows fnmatch(3) without flags) on patterns of the
// kinds modules.alias holds.
func TestGlobLikeFnmatch(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is needed to compare with fnmatch")
	}
	pats := []string{"of:N*T*Cx,yC*", "of:N*T*Cx,y", "a[0-9]?z", "[!a]*", "*\\**", "ab[cd]*ef"}
	strs := []string{"of:NnT<NULL>Cx,yCz", "of:NnT<NULL>Cx,y", "a5qz", "b", "a", "x*y", "abcxef", "abdef", ""}
	for _, p := range pats {
		for _, s := range strs {
			cmd := exec.Command(bash, "-c", `case "$2" in $1) exit 0;; esac; exit 1`, "bash", p, s)
			want := cmd.Run() == nil
			if got := Glob(p, s); got != want {
				t.Errorf("Glob(%q, %q) = %v, bash case says %v", p, s, got, want)
			}
		}
	}
}

func FuzzGlob(f *testing.F) {
	f.Add("of:N*T*Crockchip,rk3568-dwmacC*", "of:NethernetT<NULL>Crockchip,rk3568-dwmac")
	f.Add("[a-", "b")
	f.Add(`\`, `\`)
	f.Fuzz(func(t *testing.T, p, s string) {
		if len(p) > 64 || len(s) > 64 {
			return
		}
		_ = Glob(p, s) // must end and not panic
		if !strings.ContainsAny(s, `*?[\`) && !Glob(s, s) {
			t.Errorf("a pattern without special characters does not match itself: %q", s)
		}
	})
}

const depText = `kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/mbcache.ko.xz kernel/fs/jbd2/jbd2.ko.xz
kernel/lib/crc16.ko.xz:
kernel/fs/mbcache.ko.xz:
kernel/fs/jbd2/jbd2.ko.xz:
kernel/drivers/net/ethernet/realtek/r8169.ko.xz: kernel/drivers/net/phy/realtek.ko.xz kernel/drivers/net/mdio/of_mdio.ko.xz
kernel/drivers/net/phy/realtek.ko.xz: kernel/drivers/net/phy/libphy.ko.xz
kernel/drivers/net/phy/libphy.ko.xz:
`

func TestParseDepAndClosure(t *testing.T) {
	ix, err := ParseDep(strings.NewReader(depText))
	if err != nil {
		t.Fatal(err)
	}
	if got := ix.Path["r8169"]; got != "kernel/drivers/net/ethernet/realtek/r8169.ko.xz" {
		t.Errorf("Path[r8169] = %q", got)
	}
	// of_mdio is built in: not loaded, not an error.
	got, err := ix.Closure([]string{"ext4", "r8169", "ext4"}, map[string]bool{"of_mdio": true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"crc16", "mbcache", "jbd2", "ext4", "libphy", "realtek", "r8169"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Closure = %v, want %v", got, want)
	}
	if _, err := ix.Closure([]string{"r8169"}, nil); !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "of_mdio (needed by r8169)") {
		t.Errorf("a missing dependency: %v", err)
	}
	cyc, _ := ParseDep(strings.NewReader("a.ko: b.ko\nb.ko: a.ko\n"))
	if _, err := cyc.Closure([]string{"a"}, nil); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("a cycle: %v", err)
	}
	for _, bad := range []string{"no colon here\n", ": x.ko\n", "../../etc/x.ko:\n"} {
		if _, err := ParseDep(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseDep(%q) accepted it", bad)
		}
	}
}

func TestParseAliases(t *testing.T) {
	al, err := ParseAliases(strings.NewReader(`# Aliases extracted from modules themselves.
alias of:N*T*Crockchip,rk3568-dwmacC* dwmac_rk
alias mt8183_da7219_max98357 soc card mt8183-da7219

`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Alias{{"of:N*T*Crockchip,rk3568-dwmacC*", "dwmac_rk"}, {"mt8183_da7219_max98357 soc card", "mt8183_da7219"}}
	if !reflect.DeepEqual(al, want) {
		t.Errorf("ParseAliases = %+v, want %+v", al, want)
	}
	if _, err := ParseAliases(strings.NewReader("alias onlytwo\n")); err == nil {
		t.Error("a two-field alias line was accepted")
	}
	if got := Match(al, "of:NethernetT<NULL>Crockchip,rk3568-dwmacCsnps,dwmac-4.20a"); !reflect.DeepEqual(got, []string{"dwmac_rk"}) {
		t.Errorf("Match = %v", got)
	}
}

func FuzzParseDep(f *testing.F) {
	f.Add(depText)
	f.Add("a.ko: b.ko\nb.ko: a.ko\n")
	f.Fuzz(func(t *testing.T, s string) {
		ix, err := ParseDep(strings.NewReader(s))
		if err != nil {
			return
		}
		var names []string
		for n := range ix.Path {
			names = append(names, n)
		}
		order, err := ix.Closure(names, nil)
		if err != nil {
			return
		}
		pos := map[string]int{}
		for i, n := range order {
			pos[n] = i
		}
		for _, n := range order {
			for _, d := range ix.Deps[n] {
				if pos[d] > pos[n] {
					t.Fatalf("%s comes before its dependency %s", n, d)
				}
			}
		}
	})
}

func FuzzParseAliases(f *testing.F) {
	f.Add("alias of:N*T*Cx,y x\n")
	f.Fuzz(func(t *testing.T, s string) {
		al, err := ParseAliases(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, a := range al {
			if a.Module == "" || strings.ContainsAny(a.Module, " \t-") {
				t.Fatalf("bad module name %q", a.Module)
			}
		}
	})
}

// dtc compiles a device tree source with the real compiler (Debian's
// device-tree-compiler).
func dtc(t testing.TB, src string) []byte {
	t.Helper()
	bin, err := exec.LookPath("dtc")
	if err != nil {
		t.Fatal("dtc not found: install device-tree-compiler (scripts/deps.sh)")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "t.dts"), filepath.Join(dir, "t.dtb")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(bin, "-q", "-I", "dts", "-O", "dtb", "-o", out, in).CombinedOutput(); err != nil {
		t.Fatalf("dtc: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const testDTS = `/dts-v1/;
/ {
	compatible = "vendor,board", "rockchip,rk3568";
	#address-cells = <2>;
	#size-cells = <2>;
	ethernet@fe2a0000 {
		compatible = "rockchip,rk3568-gmac", "snps,dwmac-4.20a";
		reg = <0 0xfe2a0000 0 0x10000>;
	};
	mmc@fe310000 {
		compatible = "rockchip,rk3568-dwcmshc";
		status = "okay";
	};
	gpu@fde60000 {
		compatible = "rockchip,rk3568-mali", "arm,mali-bifrost";
		status = "disabled";
	};
	bus {
		compatible = "simple-bus";
		status = "disabled";
		uart@1 { compatible = "snps,dw-apb-uart"; };
	};
	memory@0 {
		device_type = "memory";
		compatible = "test,mem";
	};
	keys { compatible = "gpio-keys"; };
};
`

func TestDevices(t *testing.T) {
	devs, err := Devices(dtc(t, testDTS))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range devs {
		got[d.Path] = d.Modalias
	}
	want := map[string]string{
		"/":                  "of:NT<NULL>Cvendor,boardCrockchip,rk3568",
		"/ethernet@fe2a0000": "of:NethernetT<NULL>Crockchip,rk3568-gmacCsnps,dwmac-4.20a",
		"/mmc@fe310000":      "of:NmmcT<NULL>Crockchip,rk3568-dwcmshc",
		"/memory@0":          "of:NmemoryTmemoryCtest,mem",
		"/keys":              "of:NkeysT<NULL>Cgpio-keys",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Devices =\n%v\nwant (disabled nodes and their children left out)\n%v", got, want)
	}
	for _, bad := range [][]byte{nil, []byte("not a device tree"), make([]byte, maxDTB+1)} {
		if _, err := Devices(bad); err == nil {
			t.Errorf("Devices accepted %d bytes of garbage", len(bad))
		}
	}
}

func FuzzDevices(f *testing.F) {
	f.Add(dtc(f, testDTS))
	f.Fuzz(func(t *testing.T, b []byte) {
		devs, err := Devices(b)
		if err != nil {
			return
		}
		for _, d := range devs {
			if !strings.HasPrefix(d.Modalias, "of:N") {
				t.Fatalf("modalias %q", d.Modalias)
			}
		}
	})
}

// TestResolveAndStage plans a board from a device tree against a small
// module tree and stages it: skipped subtrees, extra modules, built-ins,
// the module files decompressed and renamed, modules.dep and the load list.
func TestResolveAndStage(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"modules.dep": "kernel/drivers/net/ethernet/stmicro/stmmac/dwmac-rk.ko.xz: kernel/drivers/net/ethernet/stmicro/stmmac/stmmac.ko.xz\n" +
			"kernel/drivers/net/ethernet/stmicro/stmmac/stmmac.ko.xz:\n" +
			"kernel/drivers/gpu/drm/panfrost/panfrost.ko.xz:\n" +
			"kernel/fs/nls/nls_iso8859-1.ko.xz:\n" +
			"kernel/drivers/input/keyboard/gpio_keys.ko.xz:\n",
		"modules.alias": "alias of:N*T*Crockchip,rk3568-gmacC* dwmac_rk\n" +
			"alias of:N*T*Carm,mali-bifrost panfrost\n" +
			"alias of:N*T*Cgpio-keys gpio_keys\n" +
			"alias of:N*T*Crockchip,rk3568-dwcmshc sdhci_of_dwcmshc\n",
		"modules.builtin": "kernel/drivers/mmc/host/sdhci-of-dwcmshc.ko\n",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []string{"kernel/drivers/net/ethernet/stmicro/stmmac/dwmac-rk.ko", "kernel/drivers/net/ethernet/stmicro/stmmac/stmmac.ko",
		"kernel/drivers/gpu/drm/panfrost/panfrost.ko", "kernel/fs/nls/nls_iso8859-1.ko", "kernel/drivers/input/keyboard/gpio_keys.ko"} {
		p := filepath.Join(dir, m)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("module "+m), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command("xz", "--check=crc32", p).CombinedOutput(); err != nil {
			t.Fatalf("xz: %v %s", err, b)
		}
	}
	k, err := OpenKernel(dir)
	if err != nil {
		t.Fatal(err)
	}
	dts := strings.Replace(testDTS, `status = "disabled";`, `status = "okay";`, 1) // the GPU on: still skipped
	plan, err := k.Resolve(dtc(t, dts), []string{"nls_iso8859_1"}, []string{"gpio_keys"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"nls_iso8859_1", "dwmac_rk"}; !reflect.DeepEqual(plan.Load, want) {
		t.Errorf("Load = %v, want %v (extras first; GPU skipped; gpio_keys left out)", plan.Load, want)
	}
	if want := []string{"nls_iso8859_1", "stmmac", "dwmac_rk"}; !reflect.DeepEqual(plan.All, want) {
		t.Errorf("All = %v, want %v", plan.All, want)
	}
	if !reflect.DeepEqual(plan.Builtin, []string{"sdhci_of_dwcmshc"}) {
		t.Errorf("Builtin = %v", plan.Builtin)
	}
	if _, err := k.Resolve(nil, []string{"no_such_module"}, nil); !errors.Is(err, ErrUnknown) {
		t.Errorf("an unknown extra module: %v", err)
	}

	dest := t.TempDir()
	if _, err := k.Stage(plan, dest); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(dest, "lib", "modules", filepath.Base(dir))
	b, err := os.ReadFile(filepath.Join(md, "kernel/fs/nls/nls_iso8859_1.ko"))
	if err != nil || string(b) != "module kernel/fs/nls/nls_iso8859-1.ko" {
		t.Errorf("staged module: %q, %v (decompressed, named by its module name)", b, err)
	}
	dep, _ := os.ReadFile(filepath.Join(md, "modules.dep"))
	wantDep := "kernel/fs/nls/nls_iso8859_1.ko:\nkernel/drivers/net/ethernet/stmicro/stmmac/stmmac.ko:\n" +
		"kernel/drivers/net/ethernet/stmicro/stmmac/dwmac_rk.ko: kernel/drivers/net/ethernet/stmicro/stmmac/stmmac.ko\n"
	if string(dep) != wantDep {
		t.Errorf("modules.dep =\n%s\nwant\n%s", dep, wantDep)
	}
	load, _ := os.ReadFile(filepath.Join(md, LoadList))
	if string(load) != "nls_iso8859_1\ndwmac_rk\n" {
		t.Errorf("%s = %q", LoadList, load)
	}
}
