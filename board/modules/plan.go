package modules

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rknas/firmware/authd/atomicfile"
)

// skipped lists the kernel subtrees whose drivers a NAS firmware does not
// load even when the device tree describes the hardware: display, GPU,
// video codecs, cameras, sound, radios and crypto offload. A module from
// there still comes along when a kept module depends on it.
var skipped = []string{
	"kernel/drivers/gpu/", "kernel/drivers/media/", "kernel/sound/", "kernel/drivers/video/",
	"kernel/drivers/staging/", "kernel/drivers/net/wireless/", "kernel/drivers/bluetooth/",
	"kernel/drivers/crypto/", "kernel/drivers/devfreq/", "kernel/drivers/input/touchscreen/",
	"kernel/drivers/net/can/", "kernel/drivers/iommu/",
}

// Skipped reports whether the module file p (relative to /lib/modules/<abi>)
// lies in a subtree the firmware does not load for a device-tree match.
func Skipped(p string) bool {
	for _, s := range skipped {
		if strings.HasPrefix(p, s) {
			return true
		}
	}
	return false
}

// Kernel is an unpacked kernel's module tree: /lib/modules/<abi> with
// depmod's modules.dep, modules.alias and modules.builtin.
type Kernel struct {
	// Dir is the directory /lib/modules/<abi>.
	Dir     string
	ABI     string
	Aliases []Alias
	Index   *Index
	Builtin map[string]bool
	// external maps modules added with AddModule to their source files.
	external map[string]string
}

// AddModule adds a module built out of tree (gpio-sim for the VM): it is
// staged as rel (e.g. "extra/gpio-sim.ko") from src and needs deps.
func (k *Kernel) AddModule(rel, src string, deps []string) {
	n := Name(rel)
	k.Index.Path[n] = rel
	k.Index.Deps[n] = deps
	if k.external == nil {
		k.external = map[string]string{}
	}
	k.external[n] = src
}

// OpenKernel reads the module index files under dir (/lib/modules/<abi>).
func OpenKernel(dir string) (*Kernel, error) {
	k := &Kernel{Dir: dir, ABI: filepath.Base(dir)}
	read := func(name string, parse func(io.Reader) error) error {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("modules: %w (run depmod)", err)
		}
		defer f.Close()
		return parse(f)
	}
	err := read("modules.alias", func(r io.Reader) (err error) { k.Aliases, err = ParseAliases(r); return })
	if err == nil {
		err = read("modules.dep", func(r io.Reader) (err error) { k.Index, err = ParseDep(r); return })
	}
	if err == nil {
		err = read("modules.builtin", func(r io.Reader) (err error) { k.Builtin, err = ParseBuiltin(r); return })
	}
	if err != nil {
		return nil, err
	}
	return k, nil
}

// Plan is the set of modules an image carries, and why.
type Plan struct {
	// Load lists the modules uinit loads, in order: the extra modules first
	// (PHY drivers must be registered before the Ethernet driver probes its
	// PHY), then the device tree's. Dependencies are loaded on the way.
	Load []string
	// All is Load with every dependency, each after what it needs.
	All []string
	// Why maps a module of Load to the reasons it is there: device-tree
	// node paths, or "extra".
	Why map[string][]string
	// Builtin lists the wanted modules the kernel has built in.
	Builtin []string
}

// Resolve plans the modules for a board: the drivers matching the enabled
// nodes of dtb (nil for none), minus the skipped subtrees, plus extra
// (module names for what the tree cannot tell: PCIe and USB devices, PHYs,
// file systems), minus the device-tree matches named in without. An extra module that does not exist is an error; so is a
// missing dependency.
func (k *Kernel) Resolve(dtb []byte, extra, without []string) (*Plan, error) {
	skip := map[string]bool{}
	for _, m := range without {
		skip[Name(m)] = true
	}
	p := &Plan{Why: map[string][]string{}}
	var builtin []string
	add := func(m, why string) {
		m = Name(m)
		if k.Builtin[m] {
			if len(p.Why[m]) == 0 {
				builtin = append(builtin, m)
			}
			p.Why[m] = append(p.Why[m], why)
			return
		}
		if len(p.Why[m]) == 0 {
			p.Load = append(p.Load, m)
		}
		p.Why[m] = append(p.Why[m], why)
	}
	for _, m := range extra {
		if _, ok := k.Index.Path[Name(m)]; !ok && !k.Builtin[Name(m)] {
			return nil, fmt.Errorf("modules: extra module %s: %w", m, ErrUnknown)
		}
		add(m, "extra")
	}
	if dtb != nil {
		devs, err := Devices(dtb)
		if err != nil {
			return nil, err
		}
		for _, d := range devs {
			for _, m := range Match(k.Aliases, d.Modalias) {
				if path, ok := k.Index.Path[m]; (ok && Skipped(path)) || skip[m] {
					continue
				}
				add(m, d.Path)
			}
		}
	}
	all, err := k.Index.Closure(p.Load, k.Builtin)
	if err != nil {
		return nil, err
	}
	p.All = all
	for m := range p.Why {
		if k.Builtin[m] {
			delete(p.Why, m)
		}
	}
	sort.Strings(builtin)
	p.Builtin = builtin
	return p, nil
}

// LoadList is the name of the file, in /lib/modules/<abi>, that lists the
// modules uinit loads (one name per line). Not modules-load.d: u-root's
// init would load those itself, one at a time, before uinit can report.
const LoadList = "rknas.load"

// Stage copies the planned modules into dest/lib/modules/<abi>, uncompressed
// (the initramfs is compressed as a whole), and writes modules.dep,
// modules.builtin and LoadList for them. It returns the bytes written.
func (k *Kernel) Stage(p *Plan, dest string) (int64, error) {
	mdir := filepath.Join(dest, "lib", "modules", k.ABI)
	var dep bytes.Buffer
	var total int64
	// Files are named by the module's canonical name (nls_iso8859-1.ko
	// becomes nls_iso8859_1.ko): u-root's kmodule finds a module by its
	// name with all dashes or all underscores, not a mix.
	rel := func(m string) string {
		return path.Join(path.Dir(k.Index.Path[m]), m+".ko")
	}
	for _, m := range p.All {
		src := filepath.Join(k.Dir, k.Index.Path[m])
		if e, ok := k.external[m]; ok {
			src = e
		}
		dst := filepath.Join(mdir, rel(m))
		n, err := copyModule(src, dst)
		if err != nil {
			return total, err
		}
		total += n
		var deps []string
		for _, d := range k.Index.Deps[m] {
			if !k.Builtin[d] {
				deps = append(deps, rel(d))
			}
		}
		// "PATH:" alone when there are none, as depmod writes it: kmodule
		// takes anything after the colon for a dependency.
		fmt.Fprintf(&dep, "%s:", rel(m))
		if len(deps) > 0 {
			fmt.Fprintf(&dep, " %s", strings.Join(deps, " "))
		}
		dep.WriteString("\n")
	}
	builtin, err := os.ReadFile(filepath.Join(k.Dir, "modules.builtin"))
	if err != nil {
		return total, fmt.Errorf("modules: %w", err)
	}
	for name, data := range map[string][]byte{
		"modules.dep":     dep.Bytes(),
		"modules.builtin": builtin,
		LoadList:          []byte(strings.Join(p.Load, "\n") + "\n"),
	} {
		if err := atomicfile.Write(filepath.Join(mdir, name), data, 0o644); err != nil {
			return total, fmt.Errorf("modules: %w", err)
		}
	}
	return total, nil
}

// copyModule copies one module file, decompressing .ko.xz with xz(1),
// which is a hundred times faster than a decoder in Go.
func copyModule(src, dst string) (int64, error) {
	var data []byte
	var err error
	switch {
	case strings.HasSuffix(src, ".ko.xz"):
		var stderr bytes.Buffer
		cmd := exec.Command("xz", "-dc", src)
		cmd.Stderr = &stderr
		if data, err = cmd.Output(); err != nil {
			return 0, fmt.Errorf("modules: xz -dc %s (xz-utils: scripts/deps.sh): %w: %s", src, err, bytes.TrimSpace(stderr.Bytes()))
		}
	case strings.HasSuffix(src, ".ko"):
		if data, err = os.ReadFile(src); err != nil {
			return 0, fmt.Errorf("modules: %w", err)
		}
	default:
		return 0, fmt.Errorf("modules: %s: only .ko and .ko.xz are supported", src)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, fmt.Errorf("modules: %w", err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		return 0, fmt.Errorf("modules: %w", err)
	}
	return int64(len(data)), nil
}
