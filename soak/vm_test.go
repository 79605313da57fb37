//go:build soak

package soak

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestPowerCutsInVM runs the power-cut row in the QEMU arm64 VM
// (initramfs/vmtest's TestSoakPowerCuts: a RESET's recovery cut at random
// instants, every boot checked) and puts its row in the table. It runs
// beside the crash row: the VM has one virtual CPU.
func TestPowerCutsInVM(t *testing.T) {
	t.Parallel()
	_, sc := campaign()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "test", "-tags", "vmtest,soak", "-count=1", "-timeout", "90m", "-run", "^TestSoakPowerCuts$", "-v", "./initramfs/vmtest")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), fmt.Sprintf("RKNAS_SOAK_CUTS=%d", sc.powerCuts))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	var r struct {
		What, Did, Found string
		Lost             int
	}
	found := false
	lines := bufio.NewScanner(&out)
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	for lines.Scan() {
		if js, ok := strings.CutPrefix(lines.Text(), "soak-row: "); ok {
			found = json.Unmarshal([]byte(js), &r) == nil
		}
	}
	if runErr != nil || !found {
		t.Fatalf("the VM's power cuts: %v\n%s", runErr, out.String())
	}
	record(row{what: r.What, did: r.Did, found: r.Found, lost: r.Lost})
}
