package modules

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/rknas/firmware/board"
	"github.com/u-root/u-root/pkg/dt"
)

// Device is one enabled device-tree node that a driver can bind to.
type Device struct {
	// Path is the node's full path, e.g. "/ethernet@fe010000".
	Path string
	// Modalias is what the kernel puts in the device's modalias file:
	// "of:N<name>T<device_type or <NULL>>C<compatible>..." (of_modalias()).
	Modalias string
}

// maxDTB bounds a device tree read from outside: real ones are under 256 KiB.
const maxDTB = 4 << 20

// Devices reads a flattened device tree (a .dtb) and returns every node that
// has a compatible property and is enabled (its status and every ancestor's
// status absent, "okay" or "ok"), in tree order.
func Devices(dtb []byte) ([]Device, error) {
	if len(dtb) > maxDTB {
		return nil, fmt.Errorf("modules: device tree is %d bytes, more than %d", len(dtb), maxDTB)
	}
	fdt, err := dt.ReadFDT(bytes.NewReader(dtb))
	if err != nil {
		return nil, fmt.Errorf("modules: read device tree: %w", err)
	}
	if fdt.RootNode == nil {
		return nil, fmt.Errorf("modules: device tree has no root node")
	}
	var out []Device
	var walk func(n *dt.Node, parent string, depth int) error
	walk = func(n *dt.Node, parent string, depth int) error {
		if depth > 64 {
			return fmt.Errorf("modules: device tree nested deeper than 64 levels at %s", parent)
		}
		p := parent + "/" + n.Name
		if depth == 0 {
			p = "/"
		}
		if !enabled(n) {
			return nil
		}
		if compat, ok := n.LookProperty("compatible"); ok {
			// Not dt's AsStringList: it does not stop at the end of the list.
			list, err := board.ParseCompatible(compat.Value)
			if err != nil {
				return fmt.Errorf("modules: %s: compatible: %w", p, err)
			}
			out = append(out, Device{Path: p, Modalias: modalias(n, list)})
		}
		for _, c := range n.Children {
			if err := walk(c, strings.TrimSuffix(p, "/"), depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(fdt.RootNode, "", 0); err != nil {
		return nil, err
	}
	return out, nil
}

func enabled(n *dt.Node) bool {
	st, ok := n.LookProperty("status")
	if !ok {
		return true
	}
	s, err := st.AsString()
	if err != nil {
		return false
	}
	return s == "okay" || s == "ok"
}

// modalias builds the string the kernel's of_modalias() prints for a node.
func modalias(n *dt.Node, compat []string) string {
	var b strings.Builder
	name, _, _ := strings.Cut(n.Name, "@")
	typ := "<NULL>"
	if t, ok := n.LookProperty("device_type"); ok {
		if s, err := t.AsString(); err == nil {
			typ = s
		}
	}
	fmt.Fprintf(&b, "of:N%sT%s", name, typ)
	for _, c := range compat {
		b.WriteString("C")
		b.WriteString(c)
	}
	return b.String()
}
