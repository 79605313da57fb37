package diskimage

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"sort"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// SectorSize is the logical sector size the GPT codec works in.
const SectorSize = 512

// GUID is a GUID in its on-disk byte order (the first three fields
// little-endian, as GPT stores them).
type GUID [16]byte

// guidFields are the byte ranges of the textual form's five groups, in the
// order they are written, and whether GPT stores the group little-endian.
var guidFields = [5]struct {
	lo, hi int
	swap   bool
}{{0, 4, true}, {4, 6, true}, {6, 8, true}, {8, 10, false}, {10, 16, false}}

// ParseGUID parses the canonical textual form of a GUID,
// "0fc63daf-8483-4772-8e79-3d69d8477de4", in either case.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 {
		return g, fmt.Errorf("diskimage: parse GUID %q: length %d, want 36 (8-4-4-4-12 hex digits)", s, len(s))
	}
	pos := 0
	for i, f := range guidFields {
		if i > 0 {
			if s[pos] != '-' {
				r, _ := utf8.DecodeRuneInString(s[pos:])
				return GUID{}, fmt.Errorf("diskimage: parse GUID %q: want '-' at position %d, got %q", s, pos, r)
			}
			pos++
		}
		n := f.hi - f.lo
		field := s[pos : pos+2*n]
		for j := 0; j < len(field); j++ {
			if !guidIsHex(field[j]) {
				r, _ := utf8.DecodeRuneInString(field[j:])
				return GUID{}, fmt.Errorf("diskimage: parse GUID %q: %q at position %d is not a hex digit", s, r, pos+j)
			}
		}
		b, _ := hex.DecodeString(field) // checked above
		if f.swap {
			guidReverse(b)
		}
		copy(g[f.lo:f.hi], b)
		pos += 2 * n
	}
	return g, nil
}

func guidIsHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func guidReverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

// String returns the canonical lower-case form,
// "0fc63daf-8483-4772-8e79-3d69d8477de4".
func (g GUID) String() string {
	var sb strings.Builder
	sb.Grow(36)
	for i, f := range guidFields {
		if i > 0 {
			sb.WriteByte('-')
		}
		b := bytes.Clone(g[f.lo:f.hi])
		if f.swap {
			guidReverse(b)
		}
		sb.WriteString(hex.EncodeToString(b))
	}
	return sb.String()
}

// IsZero reports whether g is the all-zero GUID (an unused entry's type).
func (g GUID) IsZero() bool { return g == GUID{} }

// NewGUID returns a random (version 4, RFC 4122 variant) GUID from
// crypto/rand.
func NewGUID() (GUID, error) {
	var g GUID
	if _, err := rand.Read(g[:]); err != nil {
		return GUID{}, fmt.Errorf("diskimage: new GUID: %w", err)
	}
	g[7] = g[7]&0x0f | 0x40 // version 4: the high nibble of the third field, stored little-endian
	g[8] = g[8]&0x3f | 0x80 // variant 10x
	return g, nil
}

func mustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// Partition type GUIDs the firmware uses.
var (
	// TypeLinuxFS is "Linux filesystem data" (sgdisk 8300).
	TypeLinuxFS = mustParseGUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
	// TypeBasicData is "Microsoft basic data" (sgdisk 0700): FAT partitions
	// PCs can read.
	TypeBasicData = mustParseGUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
)

// AttrLegacyBIOSBootable is the partition attribute (bit 2) U-Boot's distro
// boot looks for to pick the partition it boots from.
const AttrLegacyBIOSBootable uint64 = 1 << 2

// Partition is one used entry of a GPT.
type Partition struct {
	// Number is 1..128: the entry's slot + 1 (the kernel's partition number).
	Number int
	// Type is the partition type GUID; ID is the partition's unique GUID
	// (PARTUUID).
	Type, ID GUID
	// First and Last are the first and last LBA, inclusive.
	First, Last uint64
	// Attributes are the entry's attribute bits (AttrLegacyBIOSBootable).
	Attributes uint64
	// Name is the partition name (PARTLABEL), up to 36 UTF-16 code units.
	Name string
}

// Sectors returns the partition's size in sectors (0 if Last < First).
func (p Partition) Sectors() uint64 {
	if p.Last < p.First {
		return 0
	}
	return p.Last - p.First + 1
}

// label names p in error messages: `partition 2 "RKNAS-STATE"`.
func (p Partition) label() string {
	if p.Name == "" {
		return fmt.Sprintf("partition %d", p.Number)
	}
	return fmt.Sprintf("partition %d %q", p.Number, p.Name)
}

// Table is a GUID partition table.
type Table struct {
	// DiskID is the disk GUID, the same in both headers.
	DiskID GUID
	// Partitions are the non-empty entries, sorted by Number.
	Partitions []Partition

	// FirstUsable and LastUsable are the header's usable LBA range, and
	// AlternateLBA is where the header says the other copy's header is (the
	// disk's last LBA for a primary written for this disk, 1 for a backup).
	// ReadGPT fills them in; Encode ignores them and computes its own.
	FirstUsable, LastUsable, AlternateLBA uint64
}

// Find returns the partition whose Name equals name (case-sensitive) and
// true, or false if there is none.
func (t *Table) Find(name string) (Partition, bool) {
	for _, p := range t.Partitions {
		if p.Name == name {
			return p, true
		}
	}
	return Partition{}, false
}

// On-disk layout constants.
const (
	gptSignature      = "EFI PART"
	gptRevision       = 0x00010000
	gptHeaderSize     = 92
	gptEntries        = 128 // what Encode writes, and the largest Number
	gptEntrySize      = 128 // what Encode writes
	gptEntriesSectors = gptEntries * gptEntrySize / SectorSize
	// gptSectors is the backup's size: the entry array and the header.
	gptSectors = gptEntriesSectors + 1
	// gptFirstUsable is Encode's first usable LBA: MBR, header, entries.
	gptFirstUsable    = 2 + gptEntriesSectors
	gptMaxEntrySize   = 4096
	gptMaxEntryBytes  = 1 << 20
	gptNameUnits      = 36
	gptEntryNameOff   = 56
	mbrPartitionOff   = 446
	mbrProtectiveType = 0xEE
)

// gptMinSectors is the smallest disk Encode lays out: both copies and at
// least one usable sector.
const gptMinSectors = gptFirstUsable + 1 + gptSectors

// gptHeader is the part of a GPT header the codec uses.
type gptHeader struct {
	myLBA, alternateLBA     uint64
	firstUsable, lastUsable uint64
	diskID                  GUID
	entryLBA                uint64
	count, size             uint32
	entriesCRC              uint32
}

// marshal returns the header's sector with its CRC filled in.
func (h *gptHeader) marshal() []byte {
	b := make([]byte, SectorSize)
	le := binary.LittleEndian
	copy(b, gptSignature)
	le.PutUint32(b[8:], gptRevision)
	le.PutUint32(b[12:], gptHeaderSize)
	le.PutUint64(b[24:], h.myLBA)
	le.PutUint64(b[32:], h.alternateLBA)
	le.PutUint64(b[40:], h.firstUsable)
	le.PutUint64(b[48:], h.lastUsable)
	copy(b[56:72], h.diskID[:])
	le.PutUint64(b[72:], h.entryLBA)
	le.PutUint32(b[80:], h.count)
	le.PutUint32(b[84:], h.size)
	le.PutUint32(b[88:], h.entriesCRC)
	le.PutUint32(b[16:], crc32.ChecksumIEEE(b[:gptHeaderSize]))
	return b
}

// Encode lays the table out for a disk of sectors sectors with 128 entries
// of 128 bytes. primary is LBA 0..33: a protective MBR with one 0xEE
// partition covering the disk (capped at 0xFFFFFFFF sectors), the header at
// LBA 1 and the entries at LBA 2..33. backup is the 33 sectors to write at
// LBA sectors-33: the entries at sectors-33..sectors-2 and the backup header
// at sectors-1. The usable range is 34..sectors-34.
//
// It checks that the disk is large enough, that every partition lies inside
// the usable range with First <= Last, that partitions do not overlap, that
// Numbers are unique in 1..128, that types, unique IDs and the disk ID are
// non-zero, that unique IDs are unique, and that names are valid UTF-8
// without NUL and fit in 36 UTF-16 code units. Errors name the partition and
// the problem.
func (t *Table) Encode(sectors uint64) (primary, backup []byte, err error) {
	if sectors < gptMinSectors {
		return nil, nil, fmt.Errorf("diskimage: encode GPT: a disk of %d sectors is too small (at least %d)", sectors, gptMinSectors)
	}
	first, last := uint64(gptFirstUsable), sectors-1-gptSectors
	if t.DiskID.IsZero() {
		return nil, nil, errors.New("diskimage: encode GPT: the disk GUID is zero")
	}
	entries := make([]byte, gptEntries*gptEntrySize)
	ids := make(map[GUID]int, len(t.Partitions))
	for _, p := range t.Partitions {
		if p.Number < 1 || p.Number > gptEntries {
			return nil, nil, fmt.Errorf("diskimage: encode GPT: %s: number outside 1..%d", p.label(), gptEntries)
		}
		if err := gptCheckName(p.Name); err != nil {
			return nil, nil, fmt.Errorf("diskimage: encode GPT: %s: %w", p.label(), err)
		}
		if p.Type.IsZero() {
			return nil, nil, fmt.Errorf("diskimage: encode GPT: %s: the type GUID is zero (an unused entry)", p.label())
		}
		if p.ID.IsZero() {
			return nil, nil, fmt.Errorf("diskimage: encode GPT: %s: the unique GUID is zero", p.label())
		}
		if n, dup := ids[p.ID]; dup {
			return nil, nil, fmt.Errorf("diskimage: encode GPT: %s: unique GUID %s is also partition %d's", p.label(), p.ID, n)
		}
		ids[p.ID] = p.Number
		e := entries[(p.Number-1)*gptEntrySize : p.Number*gptEntrySize]
		if !GUID(e[0:16]).IsZero() {
			return nil, nil, fmt.Errorf("diskimage: encode GPT: %s: number %d is used twice", p.label(), p.Number)
		}
		gptPutEntry(e, p)
	}
	if err := gptCheckRanges(t.Partitions, first, last); err != nil {
		return nil, nil, fmt.Errorf("diskimage: encode GPT: %w", err)
	}

	entriesCRC := crc32.ChecksumIEEE(entries)
	h := gptHeader{
		myLBA: 1, alternateLBA: sectors - 1,
		firstUsable: first, lastUsable: last,
		diskID:   t.DiskID,
		entryLBA: 2, count: gptEntries, size: gptEntrySize,
		entriesCRC: entriesCRC,
	}
	primary = make([]byte, 0, gptFirstUsable*SectorSize)
	primary = append(primary, protectiveMBR(sectors)...)
	primary = append(primary, h.marshal()...)
	primary = append(primary, entries...)

	h.myLBA, h.alternateLBA, h.entryLBA = sectors-1, 1, sectors-gptSectors
	backup = make([]byte, 0, gptSectors*SectorSize)
	backup = append(backup, entries...)
	backup = append(backup, h.marshal()...)
	return primary, backup, nil
}

// protectiveMBR returns LBA 0: one partition of type 0xEE from LBA 1 to the
// end of the disk (capped at 0xFFFFFFFF sectors), CHS fields at their
// "not representable" values.
func protectiveMBR(sectors uint64) []byte {
	b := make([]byte, SectorSize)
	p := b[mbrPartitionOff : mbrPartitionOff+16]
	p[0] = 0x00                         // not bootable
	p[1], p[2], p[3] = 0x00, 0x02, 0x00 // start CHS 0/0/2 = LBA 1
	p[4] = mbrProtectiveType
	p[5], p[6], p[7] = 0xff, 0xff, 0xff // end CHS
	binary.LittleEndian.PutUint32(p[8:], 1)
	binary.LittleEndian.PutUint32(p[12:], uint32(min(sectors-1, math.MaxUint32)))
	b[510], b[511] = 0x55, 0xaa
	return b
}

// gptCheckName says why name cannot be stored in an entry, if it cannot.
func gptCheckName(name string) error {
	switch {
	case !utf8.ValidString(name):
		return errors.New("the name is not valid UTF-8")
	case strings.IndexByte(name, 0) >= 0:
		return errors.New("the name contains a NUL")
	}
	if n := len(utf16.Encode([]rune(name))); n > gptNameUnits {
		return fmt.Errorf("the name is %d UTF-16 code units long, at most %d fit", n, gptNameUnits)
	}
	return nil
}

func gptPutEntry(e []byte, p Partition) {
	le := binary.LittleEndian
	copy(e[0:16], p.Type[:])
	copy(e[16:32], p.ID[:])
	le.PutUint64(e[32:], p.First)
	le.PutUint64(e[40:], p.Last)
	le.PutUint64(e[48:], p.Attributes)
	for i, u := range utf16.Encode([]rune(p.Name)) {
		le.PutUint16(e[gptEntryNameOff+2*i:], u)
	}
}

// gptCheckRanges checks that every partition lies in first..last with
// First <= Last and that no two overlap.
func gptCheckRanges(parts []Partition, first, last uint64) error {
	for _, p := range parts {
		switch {
		case p.First > p.Last:
			return fmt.Errorf("%s: first LBA %d is after last LBA %d", p.label(), p.First, p.Last)
		case p.First < first || p.Last > last:
			return fmt.Errorf("%s: LBA %d..%d is outside the usable range %d..%d", p.label(), p.First, p.Last, first, last)
		}
	}
	byFirst := make([]Partition, len(parts))
	copy(byFirst, parts)
	sort.Slice(byFirst, func(i, j int) bool { return byFirst[i].First < byFirst[j].First })
	for i := 1; i < len(byFirst); i++ {
		if a, b := byFirst[i-1], byFirst[i]; b.First <= a.Last {
			return fmt.Errorf("%s (LBA %d..%d) overlaps %s (LBA %d..%d)", b.label(), b.First, b.Last, a.label(), a.First, a.Last)
		}
	}
	return nil
}

// GPTSource says which copy of the GPT ReadGPT read.
type GPTSource int

// The copies of a GPT.
const (
	// GPTPrimary is the copy at LBA 1.
	GPTPrimary GPTSource = iota
	// GPTBackup is the copy at the disk's last LBA.
	GPTBackup
)

// String returns "primary" or "backup".
func (s GPTSource) String() string {
	switch s {
	case GPTPrimary:
		return "primary"
	case GPTBackup:
		return "backup"
	}
	return fmt.Sprintf("GPTSource(%d)", int(s))
}

// ReadGPT reads the table of a disk of sectors sectors from r. It checks
// the header's signature, revision, size, CRC32 and MyLBA, the usable range,
// the entry array's bounds (entry size a multiple of 128 and at most 4096,
// count*size at most 1 MiB, inside the disk) and CRC32, and that the used
// entries are numbered at most 128 and lie inside the usable range without
// overlapping. If the primary (LBA 1) fails a check it reads the backup at
// the last LBA and says so through the GPTSource; it does not check the
// backup when the primary is good. Errors name each copy and the check that
// failed, "diskimage: read GPT: primary: header CRC mismatch at LBA 1
// (stored 0x..., computed 0x...); backup: no GPT signature at LBA 2047",
// and wrap the reader's errors (a short read is io.ErrUnexpectedEOF).
func ReadGPT(r io.ReaderAt, sectors uint64) (*Table, GPTSource, error) {
	if sectors < 3 {
		return nil, GPTPrimary, fmt.Errorf("diskimage: read GPT: a disk of %d sectors is too small for a GPT", sectors)
	}
	if sectors > math.MaxInt64/SectorSize {
		return nil, GPTPrimary, fmt.Errorf("diskimage: read GPT: a disk of %d sectors is too large", sectors)
	}
	t, perr := gptReadCopy(r, sectors, 1)
	if perr == nil {
		return t, GPTPrimary, nil
	}
	t, berr := gptReadCopy(r, sectors, sectors-1)
	if berr == nil {
		return t, GPTBackup, nil
	}
	return nil, GPTPrimary, fmt.Errorf("diskimage: read GPT: primary: %w; backup: %w", perr, berr)
}

// gptReadCopy reads and checks the header at lba and its entries. Its errors
// say what is wrong without naming the copy.
func gptReadCopy(r io.ReaderAt, sectors, lba uint64) (*Table, error) {
	b, err := gptReadFull(r, lba, SectorSize)
	if err != nil {
		return nil, fmt.Errorf("read header at LBA %d: %w", lba, err)
	}
	if string(b[:8]) != gptSignature {
		return nil, fmt.Errorf("no GPT signature at LBA %d", lba)
	}
	le := binary.LittleEndian
	if rev := le.Uint32(b[8:]); rev != gptRevision {
		return nil, fmt.Errorf("header at LBA %d: revision 0x%08x, want 0x%08x", lba, rev, gptRevision)
	}
	hsize := le.Uint32(b[12:])
	if hsize < gptHeaderSize || hsize > SectorSize {
		return nil, fmt.Errorf("header at LBA %d: header size %d outside %d..%d", lba, hsize, gptHeaderSize, SectorSize)
	}
	stored := le.Uint32(b[16:])
	le.PutUint32(b[16:], 0)
	if sum := crc32.ChecksumIEEE(b[:hsize]); sum != stored {
		return nil, fmt.Errorf("header CRC mismatch at LBA %d (stored 0x%08x, computed 0x%08x)", lba, stored, sum)
	}
	h := gptHeader{
		myLBA:        le.Uint64(b[24:]),
		alternateLBA: le.Uint64(b[32:]),
		firstUsable:  le.Uint64(b[40:]),
		lastUsable:   le.Uint64(b[48:]),
		diskID:       GUID(b[56:72]),
		entryLBA:     le.Uint64(b[72:]),
		count:        le.Uint32(b[80:]),
		size:         le.Uint32(b[84:]),
		entriesCRC:   le.Uint32(b[88:]),
	}
	switch {
	case h.myLBA != lba:
		return nil, fmt.Errorf("header at LBA %d says it is at LBA %d", lba, h.myLBA)
	case h.firstUsable > h.lastUsable:
		return nil, fmt.Errorf("header at LBA %d: first usable LBA %d is after last usable LBA %d", lba, h.firstUsable, h.lastUsable)
	case h.lastUsable >= sectors:
		return nil, fmt.Errorf("header at LBA %d: last usable LBA %d is beyond the disk's last LBA %d", lba, h.lastUsable, sectors-1)
	case h.size < gptEntrySize || h.size%gptEntrySize != 0 || h.size > gptMaxEntrySize:
		return nil, fmt.Errorf("header at LBA %d: entry size %d is not a multiple of %d in %d..%d", lba, h.size, gptEntrySize, gptEntrySize, gptMaxEntrySize)
	case uint64(h.count)*uint64(h.size) > gptMaxEntryBytes:
		return nil, fmt.Errorf("header at LBA %d: entry array of %d×%d bytes is larger than 1 MiB", lba, h.count, h.size)
	}
	n := int(h.count) * int(h.size)
	arraySectors := uint64(n+SectorSize-1) / SectorSize
	if h.entryLBA == 0 || h.entryLBA >= sectors || arraySectors > sectors-h.entryLBA {
		return nil, fmt.Errorf("header at LBA %d: entry array at LBA %d (%d sectors) does not fit in LBA 1..%d", lba, h.entryLBA, arraySectors, sectors-1)
	}
	if h.entryLBA <= lba && lba < h.entryLBA+arraySectors {
		return nil, fmt.Errorf("header at LBA %d: entry array at LBA %d..%d covers the header", lba, h.entryLBA, h.entryLBA+arraySectors-1)
	}
	entries, err := gptReadFull(r, h.entryLBA, n)
	if err != nil {
		return nil, fmt.Errorf("read entries at LBA %d: %w", h.entryLBA, err)
	}
	if sum := crc32.ChecksumIEEE(entries); sum != h.entriesCRC {
		return nil, fmt.Errorf("entry array CRC mismatch at LBA %d (header says 0x%08x, computed 0x%08x)", h.entryLBA, h.entriesCRC, sum)
	}
	t := &Table{DiskID: h.diskID, FirstUsable: h.firstUsable, LastUsable: h.lastUsable, AlternateLBA: h.alternateLBA}
	for i := 0; i < int(h.count); i++ {
		e := entries[i*int(h.size) : (i+1)*int(h.size)]
		typ := GUID(e[0:16])
		if typ.IsZero() {
			continue
		}
		if i >= gptEntries {
			return nil, fmt.Errorf("entry %d is in use: only partitions 1..%d are supported", i+1, gptEntries)
		}
		t.Partitions = append(t.Partitions, Partition{
			Number:     i + 1,
			Type:       typ,
			ID:         GUID(e[16:32]),
			First:      le.Uint64(e[32:]),
			Last:       le.Uint64(e[40:]),
			Attributes: le.Uint64(e[48:]),
			Name:       gptDecodeName(e[gptEntryNameOff : gptEntryNameOff+2*gptNameUnits]),
		})
	}
	if err := gptCheckRanges(t.Partitions, h.firstUsable, h.lastUsable); err != nil {
		return nil, err
	}
	return t, nil
}

// gptDecodeName decodes a NUL-padded UTF-16LE name; unpaired surrogates become
// U+FFFD.
func gptDecodeName(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// gptReadFull reads n bytes at lba; a short read is io.ErrUnexpectedEOF.
func gptReadFull(r io.ReaderAt, lba uint64, n int) ([]byte, error) {
	b := make([]byte, n)
	got, err := r.ReadAt(b, int64(lba)*SectorSize)
	if got == n {
		return b, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}
