package diskimage

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// gptDisk is an io.ReaderAt over a disk of size bytes that holds data at a few
// offsets and zeros elsewhere, so tests can use large disks cheaply.
type gptDisk struct {
	size    int64
	regions []gptRegion
}

type gptRegion struct {
	off  int64
	data []byte
}

func (d *gptDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= d.size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := d.size - off; int64(n) > rest {
		n = int(rest)
	}
	clear(p[:n])
	for _, r := range d.regions {
		lo, hi := max(off, r.off), min(off+int64(n), r.off+int64(len(r.data)))
		if lo < hi {
			copy(p[lo-off:hi-off], r.data[lo-r.off:hi-r.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// gptNewDisk places primary at 0 and backup at (sectors-33)*512, as a flasher
// would. A nil copy is left out (zeros).
func gptNewDisk(sectors uint64, primary, backup []byte) *gptDisk {
	d := &gptDisk{size: int64(sectors) * SectorSize}
	if primary != nil {
		d.regions = append(d.regions, gptRegion{0, primary})
	}
	if backup != nil {
		d.regions = append(d.regions, gptRegion{int64(sectors-33) * SectorSize, backup})
	}
	return d
}

func gptRandomGUID(t testing.TB) GUID {
	t.Helper()
	g, err := NewGUID()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// gptParse parses a GUID a tool printed.
func gptParse(t testing.TB, s string) GUID {
	t.Helper()
	g, err := ParseGUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// gptFirmwareTable is the firmware's layout: a FAT boot partition at 16 MiB
// and a Linux state partition up to the end, aligned down to 1 MiB.
func gptFirmwareTable(t testing.TB, sectors uint64) *Table {
	end := (sectors-33)/2048*2048 - 1
	return &Table{
		DiskID: gptRandomGUID(t),
		Partitions: []Partition{
			{Number: 1, Type: TypeBasicData, ID: gptRandomGUID(t), First: 32768, Last: 32768 + 262144 - 1,
				Attributes: AttrLegacyBIOSBootable, Name: "RKNAS-BOOT"},
			{Number: 2, Type: TypeLinuxFS, ID: gptRandomGUID(t), First: 32768 + 262144, Last: end, Name: "RKNAS-STATE"},
		},
	}
}

func TestGUIDKnownTypes(t *testing.T) {
	tests := []struct {
		name   string
		g      GUID
		text   string
		onDisk string // hex, as GPT stores it
	}{
		{"linux fs", TypeLinuxFS, "0fc63daf-8483-4772-8e79-3d69d8477de4", "af3dc60f838472478e793d69d8477de4"},
		{"basic data", TypeBasicData, "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", "a2a0d0ebe5b9334487c068b6b72699c7"},
		{"zero", GUID{}, "00000000-0000-0000-0000-000000000000", "00000000000000000000000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.g.String(); got != tt.text {
				t.Errorf("String() = %q, want %q", got, tt.text)
			}
			if got := hex.EncodeToString(tt.g[:]); got != tt.onDisk {
				t.Errorf("bytes = %s, want %s", got, tt.onDisk)
			}
			for _, in := range []string{tt.text, strings.ToUpper(tt.text)} {
				g, err := ParseGUID(in)
				if err != nil {
					t.Fatalf("ParseGUID(%q): %v", in, err)
				}
				if g != tt.g {
					t.Errorf("ParseGUID(%q) = %s, want %s", in, g, tt.g)
				}
			}
			if tt.g.IsZero() != (tt.name == "zero") {
				t.Errorf("IsZero() = %v", tt.g.IsZero())
			}
		})
	}
}

func TestParseGUIDErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "length 0"},
		{"0fc63daf-8483-4772-8e79-3d69d8477de", "length 35"},
		{"{0fc63daf-8483-4772-8e79-3d69d8477de4}", "length 38"},
		{"0fc63daf84834772-8e79-3d69d8477de4xx", "want '-' at position 8"},
		{"0fc63daf-8483-4772-8e79x3d69d8477de4", "want '-' at position 23"},
		{"0fc63dag-8483-4772-8e79-3d69d8477de4", "'g' at position 7 is not a hex digit"},
		{"0fc63daf-8483-4772-8e79-3d69d8477d+4", "'+' at position 34"},
		{"0fc63daf-8483-4772-8e7-93d69d8477de4", "'-' at position 22 is not a hex digit"},
		{"0fc63daf-8483-4772-8e79-3d69d8477dé", "'é' at position 34 is not a hex digit"},
	}
	for _, tt := range tests {
		g, err := ParseGUID(tt.in)
		if err == nil {
			t.Errorf("ParseGUID(%q) = %s, want an error", tt.in, g)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "diskimage: parse GUID") {
			t.Errorf("ParseGUID(%q) error %q, want it to contain %q", tt.in, err, tt.want)
		}
		if !g.IsZero() {
			t.Errorf("ParseGUID(%q) returned %s with an error", tt.in, g)
		}
	}
}

func TestNewGUID(t *testing.T) {
	v4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[GUID]bool{}
	for range 100 {
		g := gptRandomGUID(t)
		if !v4.MatchString(g.String()) {
			t.Fatalf("NewGUID() = %s, not a version-4 RFC 4122 GUID", g)
		}
		if seen[g] {
			t.Fatalf("NewGUID() returned %s twice", g)
		}
		seen[g] = true
		back, err := ParseGUID(g.String())
		if err != nil || back != g {
			t.Fatalf("ParseGUID(%s) = %s, %v", g, back, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	long := strings.Repeat("é", 34) + "😀" // 34 + 2 UTF-16 code units
	tests := []struct {
		name    string
		sectors uint64
		table   func(t *testing.T) *Table
	}{
		{"firmware 1 GiB", 1 << 21, func(t *testing.T) *Table { return gptFirmwareTable(t, 1<<21) }},
		{"firmware 3 TiB", 3 << 31, func(t *testing.T) *Table { return gptFirmwareTable(t, 3<<31) }},
		{"no partitions", 2048, func(t *testing.T) *Table { return &Table{DiskID: gptRandomGUID(t)} }},
		{"smallest disk", 68, func(t *testing.T) *Table {
			return &Table{DiskID: gptRandomGUID(t), Partitions: []Partition{{Number: 1, Type: TypeLinuxFS, ID: gptRandomGUID(t), First: 34, Last: 34}}}
		}},
		{"sparse numbers, unsorted, long names, attributes", 1 << 16, func(t *testing.T) *Table {
			return &Table{DiskID: gptRandomGUID(t), Partitions: []Partition{
				{Number: 128, Type: TypeLinuxFS, ID: gptRandomGUID(t), First: 60000, Last: 1<<16 - 34, Name: long},
				{Number: 3, Type: TypeBasicData, ID: gptRandomGUID(t), First: 34, Last: 2047, Attributes: 1<<63 | 1<<60 | AttrLegacyBIOSBootable | 1, Name: "EFI"},
				{Number: 7, Type: gptRandomGUID(t), ID: gptRandomGUID(t), First: 2048, Last: 59999, Name: strings.Repeat("x", 36)},
			}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.table(t)
			inCopy := *in
			inCopy.Partitions = append([]Partition(nil), in.Partitions...)
			primary, backup, err := in.Encode(tt.sectors)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(in, &inCopy) {
				t.Errorf("Encode changed its table")
			}
			if len(primary) != 34*SectorSize || len(backup) != 33*SectorSize {
				t.Fatalf("len(primary), len(backup) = %d, %d; want %d, %d", len(primary), len(backup), 34*SectorSize, 33*SectorSize)
			}
			want := inCopy.Partitions
			slices.SortFunc(want, func(a, b Partition) int { return a.Number - b.Number })
			if want == nil {
				want = []Partition{}
			}

			for _, c := range []struct {
				name    string
				disk    *gptDisk
				source  GPTSource
				altLBA  uint64
				entries uint64 // LBA of the entry array in that copy
			}{
				{"both", gptNewDisk(tt.sectors, primary, backup), GPTPrimary, tt.sectors - 1, 2},
				{"backup only", gptNewDisk(tt.sectors, nil, backup), GPTBackup, 1, tt.sectors - 33},
			} {
				got, src, err := ReadGPT(c.disk, tt.sectors)
				if err != nil {
					t.Fatalf("%s: ReadGPT: %v", c.name, err)
				}
				if src != c.source {
					t.Errorf("%s: source %v, want %v", c.name, src, c.source)
				}
				parts := got.Partitions
				if parts == nil {
					parts = []Partition{}
				}
				if !reflect.DeepEqual(parts, want) {
					t.Errorf("%s: partitions\n got %+v\nwant %+v", c.name, parts, want)
				}
				if got.DiskID != in.DiskID {
					t.Errorf("%s: disk GUID %s, want %s", c.name, got.DiskID, in.DiskID)
				}
				if got.FirstUsable != 34 || got.LastUsable != tt.sectors-34 || got.AlternateLBA != c.altLBA {
					t.Errorf("%s: usable %d..%d alternate %d, want 34..%d alternate %d", c.name,
						got.FirstUsable, got.LastUsable, got.AlternateLBA, tt.sectors-34, c.altLBA)
				}
			}
			// The backup header points at its own entries.
			h := backup[32*SectorSize:]
			if lba := binary.LittleEndian.Uint64(h[72:]); lba != tt.sectors-33 {
				t.Errorf("backup entry LBA %d, want %d", lba, tt.sectors-33)
			}
			if !bytes.Equal(primary[2*SectorSize:], backup[:32*SectorSize]) {
				t.Errorf("the two entry arrays differ")
			}
		})
	}
}

func TestProtectiveMBR(t *testing.T) {
	tests := []struct {
		sectors uint64
		size    uint32
	}{
		{68, 67},
		{1 << 21, 1<<21 - 1},
		{1 << 32, 0xFFFFFFFF},
		{3 << 31, 0xFFFFFFFF}, // 3 TiB
	}
	for _, tt := range tests {
		primary, _, err := (&Table{DiskID: gptRandomGUID(t)}).Encode(tt.sectors)
		if err != nil {
			t.Fatal(err)
		}
		mbr := primary[:SectorSize]
		p := mbr[446:462]
		if p[4] != 0xEE || binary.LittleEndian.Uint32(p[8:]) != 1 || binary.LittleEndian.Uint32(p[12:]) != tt.size {
			t.Errorf("%d sectors: MBR partition type %#x start %d size %d, want 0xee 1 %d", tt.sectors,
				p[4], binary.LittleEndian.Uint32(p[8:]), binary.LittleEndian.Uint32(p[12:]), tt.size)
		}
		if !bytes.Equal(mbr[462:510], make([]byte, 48)) || mbr[510] != 0x55 || mbr[511] != 0xAA {
			t.Errorf("%d sectors: other MBR partitions not empty or no 55AA signature", tt.sectors)
		}
		if string(primary[SectorSize:SectorSize+8]) != "EFI PART" {
			t.Errorf("no header at LBA 1")
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	const sectors = 1 << 16 // last usable LBA 65502
	idA, idB := gptRandomGUID(t), gptRandomGUID(t)
	part := func(n int, first, last uint64) Partition {
		return Partition{Number: n, Type: TypeLinuxFS, ID: gptRandomGUID(t), First: first, Last: last, Name: "p" + strconv.Itoa(n)}
	}
	with := func(f func(p *Partition)) []Partition {
		p := part(1, 2048, 4095)
		f(&p)
		return []Partition{p}
	}
	tests := []struct {
		name    string
		sectors uint64
		disk    GUID
		parts   []Partition
		want    string
	}{
		{"overlap", sectors, idA, []Partition{part(1, 2048, 4095), part(2, 4095, 8191)},
			`partition 2 "p2" (LBA 4095..8191) overlaps partition 1 "p1" (LBA 2048..4095)`},
		{"overlap inside, unsorted", sectors, idA, []Partition{part(2, 100, 10000), part(1, 5000, 6000)},
			`partition 1 "p1" (LBA 5000..6000) overlaps partition 2 "p2" (LBA 100..10000)`},
		{"before first usable", sectors, idA, []Partition{part(1, 33, 100)}, `partition 1 "p1": LBA 33..100 is outside the usable range 34..65502`},
		{"after last usable", sectors, idA, []Partition{part(1, 2048, 65503)}, `LBA 2048..65503 is outside the usable range 34..65502`},
		{"first after last", sectors, idA, []Partition{part(1, 4096, 4095)}, `partition 1 "p1": first LBA 4096 is after last LBA 4095`},
		{"duplicate number", sectors, idA, []Partition{part(3, 2048, 4095), part(3, 4096, 8191)}, `partition 3 "p3": number 3 is used twice`},
		{"number 0", sectors, idA, []Partition{part(0, 2048, 4095)}, `partition 0 "p0": number outside 1..128`},
		{"number 129", sectors, idA, []Partition{part(129, 2048, 4095)}, `partition 129 "p129": number outside 1..128`},
		{"zero type", sectors, idA, with(func(p *Partition) { p.Type = GUID{} }), `partition 1 "p1": the type GUID is zero`},
		{"zero unique GUID", sectors, idA, with(func(p *Partition) { p.ID = GUID{} }), `partition 1 "p1": the unique GUID is zero`},
		{"duplicate unique GUID", sectors, idA, []Partition{
			{Number: 1, Type: TypeLinuxFS, ID: idB, First: 2048, Last: 4095},
			{Number: 2, Type: TypeLinuxFS, ID: idB, First: 4096, Last: 8191}},
			"partition 2: unique GUID " + idB.String() + " is also partition 1's"},
		{"zero disk GUID", sectors, GUID{}, nil, "the disk GUID is zero"},
		{"name too long", sectors, idA, with(func(p *Partition) { p.Name = strings.Repeat("n", 37) }), "is 37 UTF-16 code units long, at most 36 fit"},
		{"name too long in UTF-16", sectors, idA, with(func(p *Partition) { p.Name = strings.Repeat("😀", 18) + "a" }), "is 37 UTF-16 code units long"},
		{"name with NUL", sectors, idA, with(func(p *Partition) { p.Name = "a\x00b" }), "the name contains a NUL"},
		{"name not UTF-8", sectors, idA, with(func(p *Partition) { p.Name = "a\xffb" }), "the name is not valid UTF-8"},
		{"disk too small", 67, idA, nil, "a disk of 67 sectors is too small (at least 68)"},
		{"disk of 0 sectors", 0, idA, nil, "a disk of 0 sectors is too small"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := &Table{DiskID: tt.disk, Partitions: tt.parts}
			p, b, err := tab.Encode(tt.sectors)
			if err == nil {
				t.Fatalf("Encode succeeded, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "diskimage: encode GPT: ") {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if p != nil || b != nil {
				t.Errorf("Encode returned data with an error")
			}
		})
	}
}

// gptRewriteHeader changes the header at off in b and fixes its CRC, so that
// only the check under test fails.
func gptRewriteHeader(b []byte, off int, f func(h []byte)) {
	h := b[off : off+SectorSize]
	f(h)
	binary.LittleEndian.PutUint32(h[16:], 0)
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:binary.LittleEndian.Uint32(h[12:])]))
}

func TestReadGPTDamage(t *testing.T) {
	const sectors = 1 << 16
	tab := &Table{DiskID: gptRandomGUID(t), Partitions: []Partition{
		{Number: 1, Type: TypeBasicData, ID: gptRandomGUID(t), First: 2048, Last: 4095, Name: "RKNAS-BOOT", Attributes: AttrLegacyBIOSBootable},
		{Number: 2, Type: TypeLinuxFS, ID: gptRandomGUID(t), First: 4096, Last: sectors - 34, Name: "RKNAS-STATE"},
	}}
	primary, backup, err := tab.Encode(sectors)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	const hdr = SectorSize       // the primary header's offset in primary
	const bhdr = 32 * SectorSize // the backup header's offset in backup

	type damage func(p, b []byte) *gptDisk
	flip := func(buf []byte, off int) { buf[off] ^= 0x40 }
	tests := []struct {
		name   string
		damage damage
		source GPTSource
		want   []string // error substrings; none means success
		is     error    // the error wraps this
	}{
		{"intact", func(p, b []byte) *gptDisk { return gptNewDisk(sectors, p, b) }, GPTPrimary, nil, nil},
		{"primary header byte", func(p, b []byte) *gptDisk { flip(p, hdr+60); return gptNewDisk(sectors, p, b) }, GPTBackup, nil, nil},
		{"primary header padding is not covered", func(p, b []byte) *gptDisk { flip(p, hdr+200); return gptNewDisk(sectors, p, b) }, GPTPrimary, nil, nil},
		{"primary entries byte", func(p, b []byte) *gptDisk { flip(p, 2*SectorSize+130); return gptNewDisk(sectors, p, b) }, GPTBackup, nil, nil},
		{"unused primary entry byte", func(p, b []byte) *gptDisk { flip(p, 33*SectorSize+5); return gptNewDisk(sectors, p, b) }, GPTBackup, nil, nil},
		{"protective MBR gone", func(p, b []byte) *gptDisk { clear(p[:SectorSize]); return gptNewDisk(sectors, p, b) }, GPTPrimary, nil, nil},
		{"backup damaged only", func(p, b []byte) *gptDisk { flip(b, bhdr+60); return gptNewDisk(sectors, p, b) }, GPTPrimary, nil, nil},
		{"both headers", func(p, b []byte) *gptDisk {
			flip(p, hdr+60)
			flip(b, bhdr+60)
			return gptNewDisk(sectors, p, b)
		}, 0, []string{"diskimage: read GPT: primary: header CRC mismatch at LBA 1", "; backup: header CRC mismatch at LBA 65535"}, nil},
		{"primary header, backup entries", func(p, b []byte) *gptDisk {
			flip(p, hdr+60)
			flip(b, 0)
			return gptNewDisk(sectors, p, b)
		}, 0, []string{"primary: header CRC mismatch at LBA 1", "backup: entry array CRC mismatch at LBA 65503"}, nil},
		{"zero disk", func(p, b []byte) *gptDisk { return gptNewDisk(sectors, nil, nil) }, 0,
			[]string{"diskimage: read GPT: primary: no GPT signature at LBA 1; backup: no GPT signature at LBA 65535"}, nil},
		{"truncated after the primary header", func(p, b []byte) *gptDisk { return &gptDisk{size: 20 * SectorSize, regions: []gptRegion{{0, p}}} }, 0,
			[]string{"primary: read entries at LBA 2: unexpected EOF", "backup: read header at LBA 65535: unexpected EOF"}, io.ErrUnexpectedEOF},
		{"truncated before the primary header", func(p, b []byte) *gptDisk { return &gptDisk{size: 1 * SectorSize, regions: []gptRegion{{0, p}}} }, 0,
			[]string{"primary: read header at LBA 1: unexpected EOF"}, io.ErrUnexpectedEOF},
		{"truncated half way", func(p, b []byte) *gptDisk {
			d := gptNewDisk(sectors, p, b)
			d.size = sectors * SectorSize / 2
			flip(p, hdr+60)
			return d
		}, 0, []string{"primary: header CRC mismatch", "backup: read header at LBA 65535: unexpected EOF"}, io.ErrUnexpectedEOF},
		{"revision", func(p, b []byte) *gptDisk {
			gptRewriteHeader(p, hdr, func(h []byte) { le.PutUint32(h[8:], 0x00020000) })
			return gptNewDisk(sectors, p, nil)
		}, 0, []string{"primary: header at LBA 1: revision 0x00020000, want 0x00010000"}, nil},
		{"header size small", func(p, b []byte) *gptDisk {
			p[hdr+12] = 91 // no CRC fix: the size is checked first
			return gptNewDisk(sectors, p, nil)
		}, 0, []string{"primary: header at LBA 1: header size 91 outside 92..512"}, nil},
		{"header size large", func(p, b []byte) *gptDisk {
			le.PutUint32(p[hdr+12:], 513)
			return gptNewDisk(sectors, p, nil)
		}, 0, []string{"header size 513 outside 92..512"}, nil},
		{"header size 512 is fine", func(p, b []byte) *gptDisk {
			gptRewriteHeader(p, hdr, func(h []byte) { le.PutUint32(h[12:], 512) })
			return gptNewDisk(sectors, p, b)
		}, GPTPrimary, nil, nil},
		{"MyLBA", func(p, b []byte) *gptDisk {
			gptRewriteHeader(p, hdr, func(h []byte) { le.PutUint64(h[24:], 2) })
			return gptNewDisk(sectors, p, nil)
		}, 0, []string{"primary: header at LBA 1 says it is at LBA 2"}, nil},
		{"backup copied to LBA 1", func(p, b []byte) *gptDisk {
			copy(p[hdr:], b[bhdr:])
			return gptNewDisk(sectors, p, nil)
		}, 0, []string{"primary: header at LBA 1 says it is at LBA 65535"}, nil},
		{"entry size 64", func(p, b []byte) *gptDisk {
			gptRewriteHeader(p, hdr, func(h []byte) { le.PutUint32(h[84:], 64) })
			return gptNewDisk(sectors, p, nil)
		}, 0, []string{"entry size 64 is not a multiple of 128 in 128..4096"}, nil},
		{"entry size 8192", func(p, b []byte) *gptDisk {
			gptRewriteHeader(p, hdr, func(h []byte) { le.PutUint32(h[84:], 8192) })
			return gptNewDisk(sectors, p, nil)
		}, 0, []string{"entry size 8192 is not a multiple"}, nil},
		{"entry size 200", func(p, b []byte) *gptDisk {
			gptRewriteHeader(p, hdr, func(h []byte) { le.PutUint32(h[84:], 200) })
			return gptNewDisk(sectors, p, nil)
		}, 0, []string{"entry size 200 is not a multiple"}, nil},
		{"entry array over 1 MiB", func(p, b []byte) *gptDisk {
			gptRewriteHeader(p, hdr, func(h []byte) { le.PutUint32(h[80:], 8193) })
			return gptNewDisk(sectors, p, nil)
		}, 0, []string{"entry array of 8193×128 bytes is larger than 1 MiB"}, nil},
		{"entry array past the disk", func(p, b []byte) *gptDisk {
			gptRewriteHeader(p, hdr, func(h []byte) { le.PutUint64(h[72:], sectors-31) })
			return gptNewDisk(sectors, p, nil)
		}, 0, []string{"entry array at LBA 65505 (32 sectors) does not fit in LBA 1..65535"}, nil},
		{"entry array over the header", func(p, b []byte) *gptDisk {
			gptRewriteHeader(p, hdr, func(h []byte) { le.PutUint64(h[72:], 1) })
			return gptNewDisk(sectors, p, nil)
		}, 0, []string{"entry array at LBA 1..32 covers the header"}, nil},
		{"last usable beyond the disk", func(p, b []byte) *gptDisk {
			gptRewriteHeader(p, hdr, func(h []byte) { le.PutUint64(h[48:], sectors) })
			return gptNewDisk(sectors, p, nil)
		}, 0, []string{"last usable LBA 65536 is beyond the disk's last LBA 65535"}, nil},
		{"usable range reversed", func(p, b []byte) *gptDisk {
			gptRewriteHeader(p, hdr, func(h []byte) { le.PutUint64(h[40:], 70000) })
			return gptNewDisk(sectors, p, nil)
		}, 0, []string{"first usable LBA 70000 is after last usable LBA 65502"}, nil},
		{"partition outside the usable range", func(p, b []byte) *gptDisk {
			gptRewriteHeader(p, hdr, func(h []byte) { le.PutUint64(h[48:], 60000) })
			return gptNewDisk(sectors, p, nil)
		}, 0, []string{`primary: partition 2 "RKNAS-STATE": LBA 4096..65502 is outside the usable range 34..60000`}, nil},
		{"overlapping partitions", func(p, b []byte) *gptDisk {
			le.PutUint64(p[2*SectorSize+128+32:], 4000)
			gptRewriteHeader(p, hdr, func(h []byte) { le.PutUint32(h[88:], crc32.ChecksumIEEE(p[2*SectorSize:34*SectorSize])) })
			return gptNewDisk(sectors, p, nil)
		}, 0, []string{`partition 2 "RKNAS-STATE" (LBA 4000..65502) overlaps partition 1 "RKNAS-BOOT" (LBA 2048..4095)`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, b := bytes.Clone(primary), bytes.Clone(backup)
			d := tt.damage(p, b)
			got, src, err := ReadGPT(d, sectors)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ReadGPT: %v", err)
				}
				if src != tt.source {
					t.Errorf("source %v, want %v", src, tt.source)
				}
				if !reflect.DeepEqual(got.Partitions, tab.Partitions) || got.DiskID != tab.DiskID {
					t.Errorf("got %+v, want %+v", got, tab)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadGPT succeeded (%v), want an error", src)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
			if got != nil {
				t.Errorf("ReadGPT returned a table with an error")
			}
		})
	}
}

func TestReadGPTTableForSmallerDisk(t *testing.T) {
	// An image built for 512 MiB flashed to a 1 GiB card: the primary is
	// read, and AlternateLBA shows the backup is not at the end.
	const image = 1 << 20
	tab := gptFirmwareTable(t, image)
	primary, backup, err := tab.Encode(image)
	if err != nil {
		t.Fatal(err)
	}
	d := gptNewDisk(image, primary, backup)
	d.size = 1 << 30
	got, src, err := ReadGPT(d, 1<<21)
	if err != nil {
		t.Fatal(err)
	}
	if src != GPTPrimary || got.AlternateLBA != image-1 || got.LastUsable != image-34 || !reflect.DeepEqual(got.Partitions, tab.Partitions) {
		t.Errorf("source %v alternate %d last usable %d, want primary %d %d", src, got.AlternateLBA, got.LastUsable, image-1, image-34)
	}
	// A table for a larger disk than this one is refused: its usable range
	// runs off the end, and its backup is not here.
	big := gptFirmwareTable(t, 1<<22)
	primary, _, err = big.Encode(1 << 22)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = ReadGPT(gptNewDisk(1<<21, primary, nil), 1<<21)
	if err == nil || !strings.Contains(err.Error(), "last usable LBA 4194270 is beyond the disk's last LBA 2097151") {
		t.Errorf("ReadGPT of a table for a larger disk: %v", err)
	}
}

func TestReadGPTTinyDisks(t *testing.T) {
	for _, n := range []uint64{0, 1, 2, 1 << 62} {
		_, _, err := ReadGPT(&gptDisk{size: 1 << 20}, n)
		if err == nil {
			t.Errorf("ReadGPT of %d sectors succeeded", n)
		}
	}
}

func TestFind(t *testing.T) {
	tab := gptFirmwareTable(t, 1<<21)
	for _, tt := range []struct {
		name   string
		number int
		ok     bool
	}{
		{"RKNAS-BOOT", 1, true},
		{"RKNAS-STATE", 2, true},
		{"rknas-state", 0, false},
		{"", 0, false},
	} {
		p, ok := tab.Find(tt.name)
		if ok != tt.ok || p.Number != tt.number {
			t.Errorf("Find(%q) = partition %d, %v; want %d, %v", tt.name, p.Number, ok, tt.number, tt.ok)
		}
	}
	if s := tab.Partitions[0].Sectors(); s != 262144 {
		t.Errorf("Sectors() = %d, want 262144", s)
	}
	if s := (Partition{First: 10, Last: 9}).Sectors(); s != 0 {
		t.Errorf("Sectors() of an inverted partition = %d, want 0", s)
	}
}

func TestGPTSourceString(t *testing.T) {
	for s, want := range map[GPTSource]string{GPTPrimary: "primary", GPTBackup: "backup", 7: "GPTSource(7)"} {
		if got := s.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(s), got, want)
		}
	}
}

// gptTool returns the path of a partitioning tool; the tests need the real
// ones and never skip.
func gptTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found: install gdisk and fdisk: scripts/deps.sh", name)
	return ""
}

// gptRun runs a tool and returns what it wrote to stdout and stderr; it fails
// the test if the tool fails.
func gptRun(t *testing.T, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(gptTool(t, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}

// gptSparseImage writes an encoded table into a sparse file of sectors
// sectors.
func gptSparseImage(t *testing.T, sectors uint64, primary, backup []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(sectors) * SectorSize); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(primary, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(backup, int64(sectors-33)*SectorSize); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// gptSfdiskTable is what `sfdisk --json` prints.
type gptSfdiskTable struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		FirstLBA   uint64 `json:"firstlba"`
		LastLBA    uint64 `json:"lastlba"`
		SectorSize int    `json:"sectorsize"`
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

// gptSfdiskRead returns the table as sfdisk sees it, in our types.
func gptSfdiskRead(t *testing.T, path string) *Table {
	t.Helper()
	out, warn := gptRun(t, "sfdisk", "--json", path)
	if warn != "" {
		// sfdisk reports a damaged copy here and still exits 0.
		t.Errorf("sfdisk --json %s warns:\n%s", path, warn)
	}
	var st gptSfdiskTable
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("sfdisk --json: %v\n%s", err, out)
	}
	pt := st.PartitionTable
	if pt.Label != "gpt" || pt.SectorSize != SectorSize {
		t.Fatalf("sfdisk sees label %q sector size %d\n%s", pt.Label, pt.SectorSize, out)
	}
	tab := &Table{DiskID: gptParse(t, pt.ID), FirstUsable: pt.FirstLBA, LastUsable: pt.LastLBA}
	for _, p := range pt.Partitions {
		n, err := strconv.Atoi(strings.TrimPrefix(p.Node, path))
		if err != nil {
			t.Fatalf("sfdisk node %q: %v", p.Node, err)
		}
		var attrs uint64
		for _, a := range strings.Fields(p.Attrs) {
			switch {
			case a == "LegacyBIOSBootable":
				attrs |= AttrLegacyBIOSBootable
			case a == "RequiredPartition":
				attrs |= 1
			case a == "NoBlockIOProtocol":
				attrs |= 2
			case strings.HasPrefix(a, "GUID:"):
				for _, bit := range strings.Split(strings.TrimPrefix(a, "GUID:"), ",") {
					b, err := strconv.Atoi(bit)
					if err != nil {
						t.Fatalf("sfdisk attrs %q: %v", p.Attrs, err)
					}
					attrs |= 1 << b
				}
			default:
				t.Fatalf("sfdisk attrs %q: unknown %q", p.Attrs, a)
			}
		}
		tab.Partitions = append(tab.Partitions, Partition{
			Number: n, Type: gptParse(t, p.Type), ID: gptParse(t, p.UUID),
			First: p.Start, Last: p.Start + p.Size - 1, Attributes: attrs, Name: p.Name,
		})
	}
	return tab
}

func TestToolsReadEncoded(t *testing.T) {
	tests := []struct {
		name    string
		sectors uint64
		table   func(t *testing.T) *Table
	}{
		{"firmware 1 GiB", 1 << 21, func(t *testing.T) *Table { return gptFirmwareTable(t, 1<<21) }},
		{"firmware 3 TiB", 3 << 31, func(t *testing.T) *Table { return gptFirmwareTable(t, 3<<31) }},
		{"gaps, attributes, unicode", 1 << 18, func(t *testing.T) *Table {
			return &Table{DiskID: gptRandomGUID(t), Partitions: []Partition{
				{Number: 1, Type: TypeBasicData, ID: gptRandomGUID(t), First: 2048, Last: 4095, Attributes: AttrLegacyBIOSBootable | 1<<60, Name: "Ünïcødé 😀"},
				{Number: 5, Type: TypeLinuxFS, ID: gptRandomGUID(t), First: 8192, Last: 1<<18 - 2048 - 1, Name: strings.Repeat("L", 36)},
			}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.table(t)
			primary, backup, err := in.Encode(tt.sectors)
			if err != nil {
				t.Fatal(err)
			}
			path := gptSparseImage(t, tt.sectors, primary, backup)

			// sgdisk -v exits 0 and says "No problems found" even when a
			// CRC is wrong: it reports that as a Caution on stdout and
			// the details on stderr. So both must be clean.
			out, warn := gptRun(t, "sgdisk", "-v", path)
			if !strings.Contains(out, "No problems found") {
				t.Errorf("sgdisk -v found problems:\n%s", out)
			}
			for _, bad := range []string{"Problem", "Warning", "Caution", "rror"} {
				if strings.Contains(out+warn, bad) {
					t.Errorf("sgdisk -v says %q:\n%s%s", bad, out, warn)
				}
			}
			if warn != "" {
				t.Errorf("sgdisk -v wrote to stderr:\n%s", warn)
			}

			got := gptSfdiskRead(t, path)
			if got.DiskID != in.DiskID || got.FirstUsable != 34 || got.LastUsable != tt.sectors-34 {
				t.Errorf("sfdisk: disk %s usable %d..%d, want %s 34..%d", got.DiskID, got.FirstUsable, got.LastUsable, in.DiskID, tt.sectors-34)
			}
			if !reflect.DeepEqual(got.Partitions, in.Partitions) {
				t.Errorf("sfdisk partitions\n got %+v\nwant %+v", got.Partitions, in.Partitions)
			}
		})
	}
}

func TestReadSgdiskTable(t *testing.T) {
	const sectors = 1 << 21 // 1 GiB
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, sectors*SectorSize); err != nil {
		t.Fatal(err)
	}
	gptRun(t, "sgdisk", "-o", "-n", "1:32768:+128M", "-c", "1:RKNAS-BOOT", "-t", "1:0700", "-A", "1:set:2",
		"-n", "2:0:0", "-c", "2:RKNAS-STATE", "-t", "2:8300", path)
	want := gptSfdiskRead(t, path)

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, src, err := ReadGPT(f, sectors)
	if err != nil {
		t.Fatal(err)
	}
	if src != GPTPrimary {
		t.Errorf("source %v, want primary", src)
	}
	if got.DiskID != want.DiskID || got.FirstUsable != want.FirstUsable || got.LastUsable != want.LastUsable || got.AlternateLBA != sectors-1 {
		t.Errorf("header: disk %s usable %d..%d alternate %d; sfdisk says %s %d..%d",
			got.DiskID, got.FirstUsable, got.LastUsable, got.AlternateLBA, want.DiskID, want.FirstUsable, want.LastUsable)
	}
	if !reflect.DeepEqual(got.Partitions, want.Partitions) {
		t.Errorf("partitions\n got %+v\nsfdisk %+v", got.Partitions, want.Partitions)
	}
	boot, ok := got.Find("RKNAS-BOOT")
	if !ok || boot.Number != 1 || boot.First != 32768 || boot.Sectors() != 262144 || boot.Type != TypeBasicData || boot.Attributes != AttrLegacyBIOSBootable {
		t.Errorf("RKNAS-BOOT = %+v, %v", boot, ok)
	}
	state, ok := got.Find("RKNAS-STATE")
	if !ok || state.Number != 2 || state.First != 32768+262144 || state.Type != TypeLinuxFS {
		t.Errorf("RKNAS-STATE = %+v, %v", state, ok)
	}

	// sgdisk's table re-encodes to the same bytes it wrote, but for the
	// protective MBR's CHS fields.
	primary, backup, err := got.Encode(sectors)
	if err != nil {
		t.Fatal(err)
	}
	disk := make([]byte, 34*SectorSize)
	if _, err := f.ReadAt(disk, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk[SectorSize:], primary[SectorSize:]) {
		t.Errorf("re-encoded primary header and entries differ from sgdisk's")
	}
	end := make([]byte, 33*SectorSize)
	if _, err := f.ReadAt(end, (sectors-33)*SectorSize); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(end, backup) {
		t.Errorf("re-encoded backup differs from sgdisk's")
	}

	// With its primary header wiped, the backup gives the same table.
	if _, err := f.WriteAt(make([]byte, SectorSize), SectorSize); err != nil {
		t.Fatal(err)
	}
	fromBackup, src, err := ReadGPT(f, sectors)
	if err != nil {
		t.Fatal(err)
	}
	if src != GPTBackup || !reflect.DeepEqual(fromBackup.Partitions, got.Partitions) || fromBackup.DiskID != got.DiskID || fromBackup.AlternateLBA != 1 {
		t.Errorf("from the backup: %v %+v", src, fromBackup)
	}
}

// gptSectorMap is the fuzz input's format: a disk's size in sectors (uint16,
// little-endian), then records of an LBA (uint16) and up to one sector of
// data for it; everything else is zero. A GPT needs only a few non-zero
// sectors, so inputs stay small and the fuzzer's mutations and minimization
// stay fast, where a whole disk image would be tens of KiB of zeros.
func gptSectorMap(data []byte) (uint64, *gptDisk) {
	if len(data) < 2 {
		return 0, &gptDisk{}
	}
	sectors := uint64(binary.LittleEndian.Uint16(data))
	d := &gptDisk{size: int64(sectors) * SectorSize}
	for rest := data[2:]; len(rest) > 2; {
		lba := int64(binary.LittleEndian.Uint16(rest))
		rest = rest[2:]
		n := min(SectorSize, len(rest))
		d.regions = append(d.regions, gptRegion{lba * SectorSize, rest[:n]})
		rest = rest[n:]
	}
	return sectors, d
}

// gptToSectorMap encodes the non-zero sectors of primary and backup.
func gptToSectorMap(sectors uint64, primary, backup []byte) []byte {
	out := binary.LittleEndian.AppendUint16(nil, uint16(sectors))
	add := func(first uint64, b []byte) {
		for i := 0; i < len(b); i += SectorSize {
			if s := b[i : i+SectorSize]; !bytes.Equal(s, make([]byte, SectorSize)) {
				out = binary.LittleEndian.AppendUint16(out, uint16(first+uint64(i/SectorSize)))
				out = append(out, s...)
			}
		}
	}
	add(0, primary)
	add(sectors-33, backup)
	return out
}

func FuzzReadGPT(f *testing.F) {
	for _, sectors := range []uint64{100, 4096} {
		tab := &Table{DiskID: gptRandomGUID(f), Partitions: []Partition{
			{Number: 1, Type: TypeBasicData, ID: gptRandomGUID(f), First: 34, Last: 39, Attributes: AttrLegacyBIOSBootable, Name: "RKNAS-BOOT"},
			{Number: 2, Type: TypeLinuxFS, ID: gptRandomGUID(f), First: 40, Last: sectors - 34, Name: "RKNAS-STATE"},
		}}
		primary, backup, err := tab.Encode(sectors)
		if err != nil {
			f.Fatal(err)
		}
		in := gptToSectorMap(sectors, primary, backup)
		f.Add(in)
		if _, d := gptSectorMap(in); !bytes.Equal(gptReadAll(f, d), append(append(bytes.Clone(primary), make([]byte, (sectors-67)*SectorSize)...), backup...)) {
			f.Fatal("sectorMap does not give back the disk")
		}
		primary[SectorSize+70] ^= 1 // the primary's disk GUID: read the backup
		f.Add(gptToSectorMap(sectors, primary, backup))
	}
	f.Add([]byte{100, 0})  // a zero disk
	f.Add([]byte{2, 0, 1}) // too small
	random := make([]byte, 6*(SectorSize+2))
	for i := range random {
		random[i] = byte(i*7919 + i>>3)
	}
	f.Add(random)

	f.Fuzz(func(t *testing.T, data []byte) {
		sectors, d := gptSectorMap(data)
		got, src, err := ReadGPT(d, sectors)
		if err != nil {
			if got != nil {
				t.Fatalf("table and error: %v", err)
			}
			return
		}
		if src != GPTPrimary && src != GPTBackup {
			t.Fatalf("source %v", src)
		}
		if got.FirstUsable > got.LastUsable || got.LastUsable >= sectors {
			t.Fatalf("usable range %d..%d on %d sectors", got.FirstUsable, got.LastUsable, sectors)
		}
		fits := sectors >= 68 && !got.DiskID.IsZero()
		ids := map[GUID]bool{}
		for i, p := range got.Partitions {
			if p.Number < 1 || p.Number > 128 || (i > 0 && p.Number <= got.Partitions[i-1].Number) {
				t.Fatalf("partition numbers not unique, sorted, in 1..128: %+v", got.Partitions)
			}
			if p.Type.IsZero() || p.First > p.Last || p.First < got.FirstUsable || p.Last > got.LastUsable {
				t.Fatalf("bad partition accepted: %+v in %d..%d", p, got.FirstUsable, got.LastUsable)
			}
			// Valid for Encode's layout on this disk, with the unique
			// GUIDs Encode insists on.
			if p.First < 34 || p.Last > sectors-34 || p.ID.IsZero() || ids[p.ID] {
				fits = false
			}
			ids[p.ID] = true
		}
		if !fits {
			return
		}
		primary, backup, err := got.Encode(sectors)
		if err != nil {
			t.Fatalf("ReadGPT accepted %+v but Encode says: %v", got, err)
		}
		again, src, err := ReadGPT(gptNewDisk(sectors, primary, backup), sectors)
		if err != nil || src != GPTPrimary {
			t.Fatalf("re-encoded table does not read back: %v %v", src, err)
		}
		if again.DiskID != got.DiskID || !reflect.DeepEqual(again.Partitions, got.Partitions) {
			t.Fatalf("re-encoded table differs:\n got %+v\nwant %+v", again, got)
		}
	})
}

func gptReadAll(t testing.TB, d *gptDisk) []byte {
	t.Helper()
	b := make([]byte, d.size)
	if _, err := d.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}
