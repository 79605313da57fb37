package board

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ErrNoEMMC says no eMMC was found.
var ErrNoEMMC = errors.New("no eMMC found")

var mmcDisk = regexp.MustCompile(`^mmcblk([0-9]+)$`) // not mmcblk0boot0, mmcblk0rpmb, partitions

// Locate returns the /dev path of the eMMC on the running system.
func (e EMMC) Locate() (string, error) { return e.Find(os.DirFS("/")) }

// Find returns "/dev/mmcblkN" for the eMMC, reading sys/block/*/device/type
// (which must be MMCType) in fsys (rooted at /). The profile's alias is tried first; if it is not an
// eMMC (missing alias, SD card in that slot) every mmcblkN is checked, so a
// board whose aliases moved between kernels still finds its eMMC.
func (e EMMC) Find(fsys fs.FS) (string, error) {
	isMMC := func(n int) (bool, error) {
		b, err := fs.ReadFile(fsys, fmt.Sprintf("sys/block/mmcblk%d/device/type", n))
		if err != nil {
			return false, err
		}
		return strings.TrimSpace(string(b)) == e.MMCType(), nil
	}
	if e.Alias >= 0 {
		if ok, _ := isMMC(e.Alias); ok {
			return fmt.Sprintf("/dev/mmcblk%d", e.Alias), nil
		}
	}
	ents, err := fs.ReadDir(fsys, "sys/block")
	if err != nil {
		return "", fmt.Errorf("board: find eMMC: %w", err)
	}
	var idx []int
	for _, d := range ents {
		if m := mmcDisk.FindStringSubmatch(d.Name()); m != nil {
			n, _ := strconv.Atoi(m[1])
			idx = append(idx, n)
		}
	}
	sort.Ints(idx)
	var seen []string
	for _, n := range idx {
		ok, err := isMMC(n)
		if err != nil {
			seen = append(seen, fmt.Sprintf("mmcblk%d: %v", n, err))
			continue
		}
		if ok {
			return fmt.Sprintf("/dev/mmcblk%d", n), nil
		}
		seen = append(seen, fmt.Sprintf("mmcblk%d is not %s", n, e.MMCType()))
	}
	if len(seen) == 0 {
		return "", fmt.Errorf("board: find eMMC: %w (no mmcblk devices)", ErrNoEMMC)
	}
	return "", fmt.Errorf("board: find eMMC: %w (%s)", ErrNoEMMC, strings.Join(seen, "; "))
}
