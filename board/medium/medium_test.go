package medium

import (
	"strings"
	"testing"

	"github.com/rknas/firmware/board/diskimage"
)

// TestChoose: the medium is the one disk with the GUID the boot loader
// named, or with none named the one disk with a state partition; a copy of
// the medium beside it (the same GUID on two disks) is refused rather than
// mounted at random.
func TestChoose(t *testing.T) {
	const a, b = "6a0c0e5e-8a3e-4b6b-9d62-2f6f3b2f8e01", "0d4c1f0a-77b2-4e39-a0f1-5c4d1b7e9a22"
	disk := func(name, guid string) *Medium {
		g, err := diskimage.ParseGUID(guid)
		if err != nil {
			t.Fatal(err)
		}
		return &Medium{Disk: name, Table: &diskimage.Table{DiskID: g}}
	}
	for _, tc := range []struct {
		name  string
		want  string
		disks []*Medium
		pick  string // the disk chosen, or
		err   string // what the error says
	}{
		{"the named disk", a, []*Medium{disk("sda", b), disk("mmcblk0", a)}, "mmcblk0", ""},
		{"the named disk, upper case", strings.ToUpper(a), []*Medium{disk("mmcblk0", a)}, "mmcblk0", ""},
		{"a copy beside it", a, []*Medium{disk("mmcblk0", a), disk("sda", a)}, "", "2 disks (mmcblk0, sda) have the GUID " + a},
		{"named, not there", a, []*Medium{disk("sda", b)}, "", "no disk has the GUID " + a},
		{"none named, one disk", "", []*Medium{disk("mmcblk1", b)}, "mmcblk1", ""},
		{"none named, two disks", "", []*Medium{disk("mmcblk1", b), disk("sda", a)}, "", "2 disks have a " + diskimage.StateLabel},
		{"no disk", a, nil, "", "no disk with a " + diskimage.StateLabel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := choose(tc.want, tc.disks)
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("choose = %v, %v; want an error saying %q", m, err, tc.err)
				}
			case err != nil || m.Disk != tc.pick:
				t.Fatalf("choose = %v, %v; want %s", m, err, tc.pick)
			}
		})
	}
}
