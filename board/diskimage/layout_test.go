package diskimage

import (
	"errors"
	"strings"
	"testing"
)

func guid(t *testing.T) GUID {
	t.Helper()
	g, err := NewGUID()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestMediumTable(t *testing.T) {
	for _, sectors := range []uint64{ImageSectors, 1 << 21, 31116288 /* a "16 GB" card */, 1 << 31} {
		tab, err := MediumTable(guid(t), guid(t), guid(t), sectors)
		if err != nil {
			t.Fatalf("%d sectors: %v", sectors, err)
		}
		boot, _ := tab.Find(BootLabel)
		state, _ := tab.Find(StateLabel)
		if boot.First != BootStart || boot.Sectors() != BootSectors || boot.Attributes != AttrLegacyBIOSBootable {
			t.Errorf("%d sectors: boot %+v", sectors, boot)
		}
		if state.First != boot.Last+1 || (state.Last+1)%2048 != 0 || state.Last > sectors-34 || sectors-34-state.Last >= 2048 {
			t.Errorf("%d sectors: state %d-%d does not end on the last MiB before the backup GPT", sectors, state.First, state.Last)
		}
		if _, _, err := tab.Encode(sectors); err != nil {
			t.Errorf("%d sectors: %v", sectors, err)
		}
	}
	if _, err := MediumTable(guid(t), guid(t), guid(t), ImageSectors-4096); err == nil {
		t.Error("a medium smaller than the image got a table")
	}
}

func TestPlanGrow(t *testing.T) {
	small, _ := MediumTable(guid(t), guid(t), guid(t), ImageSectors)
	small.AlternateLBA = ImageSectors - 1
	for _, tt := range []struct {
		name    string
		sectors uint64
		grow    bool
		err     string
	}{
		{"the image's own size", ImageSectors, false, ""},
		{"a larger card", 1 << 24, true, ""},
		{"less than a MiB larger", ImageSectors + 1000, true, ""}, // the backup must move to the end
		{"a smaller medium", ImageSectors - 4096, false, "ends before"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nt, changed, err := PlanGrow(small, tt.sectors)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || changed != tt.grow {
				t.Fatalf("changed %v, %v; want %v", changed, err, tt.grow)
			}
			if !changed {
				return
			}
			st, _ := nt.Find(StateLabel)
			old, _ := small.Find(StateLabel)
			if st.Last < old.Last || st.Last > tt.sectors-34 || nt.DiskID != small.DiskID {
				t.Errorf("grown state %d-%d on %d sectors", st.First, st.Last, tt.sectors)
			}
			if _, _, err := nt.Encode(tt.sectors); err != nil {
				t.Error(err)
			}
		})
	}
	// A partition after the state one: nothing grows.
	odd := &Table{DiskID: guid(t), Partitions: append(append([]Partition(nil), small.Partitions...),
		Partition{Number: 3, Type: TypeLinuxFS, ID: guid(t), First: small.Partitions[1].Last + 1, Last: small.Partitions[1].Last + 100, Name: "OTHER"})}
	if _, _, err := PlanGrow(odd, 1<<24); err == nil || !strings.Contains(err.Error(), "not the last") {
		t.Errorf("state not last: %v", err)
	}
}

// memDisk is a sparse disk in memory, by sector, that can lose power after
// budget bytes.
type memDisk struct {
	sectors map[int64][]byte
	budget  int
	syncs   int
}

func newMemDisk() *memDisk { return &memDisk{sectors: map[int64][]byte{}, budget: 1 << 30} }

func (d *memDisk) clone(budget int) *memDisk {
	c := &memDisk{sectors: map[int64][]byte{}, budget: budget}
	for k, v := range d.sectors {
		c.sectors[k] = v
	}
	return c
}

func (d *memDisk) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		s, o := (off+int64(i))/SectorSize, (off+int64(i))%SectorSize
		if b, ok := d.sectors[s]; ok {
			p[i] = b[o]
		} else {
			p[i] = 0
		}
	}
	return len(p), nil
}

func (d *memDisk) WriteAt(p []byte, off int64) (int, error) {
	n := min(len(p), d.budget)
	for i := 0; i < n; i++ {
		s, o := (off+int64(i))/SectorSize, (off+int64(i))%SectorSize
		b := make([]byte, SectorSize)
		copy(b, d.sectors[s])
		b[o] = p[i]
		d.sectors[s] = b
	}
	d.budget -= n
	if n < len(p) {
		return n, errors.New("power cut")
	}
	return n, nil
}

func (d *memDisk) Sync() error { d.syncs++; return nil }

// TestWriteGPTPowerCut grows a table with a power cut at every 512th byte
// of the two copies: the disk must always read as the old table or the
// new one, never as neither.
func TestWriteGPTPowerCut(t *testing.T) {
	const sectors = 1 << 20
	old, _ := MediumTable(guid(t), guid(t), guid(t), ImageSectors)
	primary, backup, err := old.Encode(ImageSectors)
	if err != nil {
		t.Fatal(err)
	}
	img := newMemDisk()
	img.WriteAt(primary, 0)
	img.WriteAt(backup, (ImageSectors-33)*SectorSize)
	probe, _, _ := ReadGPT(img, sectors)
	if probe == nil {
		t.Fatal("the old table does not read on the larger disk")
	}
	nt, changed, err := PlanGrow(probe, sectors)
	if err != nil || !changed {
		t.Fatalf("PlanGrow: %v %v", changed, err)
	}
	newState, _ := nt.Find(StateLabel)
	total := 67 * SectorSize
	for cut := 0; cut <= total; cut += 512 {
		d := img.clone(cut)
		err := WriteGPT(d, nt, sectors)
		if cut == total && err != nil {
			t.Fatalf("the whole write failed: %v", err)
		}
		got, _, rerr := ReadGPT(d, sectors)
		if rerr != nil {
			t.Fatalf("cut after %d bytes: no readable GPT: %v", cut, rerr)
		}
		st, _ := got.Find(StateLabel)
		if st.Last != newState.Last && st.Last != old.Partitions[1].Last {
			t.Fatalf("cut after %d bytes: state ends at %d, neither old nor new", cut, st.Last)
		}
		if cut == total && (st.Last != newState.Last || d.syncs != 2) {
			t.Fatalf("after the whole write: state ends at %d with %d flushes", st.Last, d.syncs)
		}
	}
}

func TestManifest(t *testing.T) {
	good := `{"format":1,"board":"qnap-ts433","model":"QNAP TS-433","version":"v1","kernel":"6.12","bootloader":{"included":false,"source":"none"},"built":"2026-11-29T00:00:00Z"}`
	m, err := ParseManifest([]byte(good))
	if err != nil || m.Board != "qnap-ts433" {
		t.Fatalf("ParseManifest = %+v, %v", m, err)
	}
	for name, bad := range map[string]string{
		"format 2":          strings.Replace(good, `"format":1`, `"format":2`, 1),
		"no board":          strings.Replace(good, `"board":"qnap-ts433"`, `"board":""`, 1),
		"included, no size": strings.Replace(good, `"included":false`, `"included":true`, 1),
		"huge bootloader":   strings.Replace(good, `"included":false`, `"included":true,"size":99999999`, 1),
		"not JSON":          "BOOT",
	} {
		if _, err := ParseManifest([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"format":1,"board":"x","bootloader":{"included":true,"size":10}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err == nil && (m.Board == "" || m.Bootloader.Size > (BootChainEnd-BootChainSector)*SectorSize) {
			t.Fatalf("accepted %+v", m)
		}
	})
}

func TestExtlinuxConfig(t *testing.T) {
	d := guid(t)
	m := &Manifest{Version: "v1", Model: "QNAP TS-433", Board: "qnap-ts433", Kernel: "6.12.117+deb13-arm64", DTB: "rockchip/rk3568-qnap-ts433.dtb"}
	c := ExtlinuxConfig(m, "ttyS2,115200n8", d)
	for _, want := range []string{"default rknas\n", "label rknas\n", "\tkernel /rknas/Image\n", "\tfdt /rknas/dtb/rockchip/rk3568-qnap-ts433.dtb\n",
		"\tinitrd /rknas/initramfs.cpio.zst\n", "console=ttyS2,115200n8 rknas.disk=" + d.String() + " "} {
		if !strings.Contains(c, want) {
			t.Errorf("extlinux.conf lacks %q:\n%s", want, c)
		}
	}
	if strings.Count(c, DiskArg+"=") != 1 {
		t.Errorf("the flasher needs %s= exactly once:\n%s", DiskArg, c)
	}
	m.DTB = ""
	if strings.Contains(ExtlinuxConfig(m, "ttyAMA0", d), "fdt ") {
		t.Error("an fdt line without a device tree")
	}
}
