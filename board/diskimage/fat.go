package diskimage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"strings"
	"unicode/utf16"
)

// The FAT reader's bounds. Everything it reads comes from a medium someone
// plugged in, so every loop and every allocation has a ceiling that does not
// come from the medium.
const (
	fatMaxCache    = 4 << 20    // the largest FAT, in bytes, OpenFAT keeps in memory; a larger one is read entry by entry
	fatMaxDepth    = 16         // components in a path
	fatMaxDirBytes = 65536 * 32 // the spec's limit on a directory: 65536 entries of 32 bytes
	fatEntrySize   = 32         // bytes in a directory entry
)

// FAT is a FAT16 or FAT32 file system read from r at [offset, offset+size).
// It never writes. After OpenFAT it holds the parsed boot sector and, when
// it is at most 4 MiB, the FAT; every other read goes to r, so a FAT is safe
// for concurrent use when r is.
type FAT struct {
	r           io.ReaderAt
	fat32       bool
	clusterSize int64
	fatOff      int64  // absolute offset of the FAT in use
	rootOff     int64  // FAT16: absolute offset of the fixed root directory
	rootSize    int64  // FAT16: its length in bytes
	rootCluster uint32 // FAT32: first cluster of the root directory
	dataOff     int64  // absolute offset of cluster 2, the first data cluster
	clusters    uint32 // data clusters: valid cluster numbers are 2..clusters+1
	fat         []byte // FAT entries 0..clusters+1, when they fit in fatMaxCache
	label       string
}

// Extent is a run of a file's bytes on the underlying reader.
type Extent struct {
	Offset int64 // absolute in the ReaderAt given to OpenFAT
	Length int64
}

// FATFile describes a file or a directory.
type FATFile struct {
	Name string // the long name if there is one, else the 8.3 name as "NAME.EXT" (lower case where the entry's case flags say so)
	// Size is the file's length in bytes. For a directory, which FAT gives no
	// size, Stat reports the length of its cluster chain (of the fixed root
	// directory on FAT16) and ReadDir reports 0.
	Size int64
	Dir  bool
	// Extents are where the bytes lie on the reader, in file order, adjacent
	// clusters merged. The clusters hold a file rounded up to whole
	// clusters; Stat trims the last extent so that the lengths add up to
	// Size exactly, and the bytes past Size in the last cluster are not
	// included. ReadDir leaves Extents nil: following every entry's chain
	// would make one listing cost as much as the whole volume.
	Extents []Extent
}

// OpenFAT parses the boot sector of the FAT file system at [offset,
// offset+size) of r and checks that its regions lie within that range. It
// accepts FAT16 and FAT32, decided as the specification does by the number
// of clusters, and refuses FAT12. It also reads the root directory, for the
// volume label.
func OpenFAT(r io.ReaderAt, offset, size int64) (*FAT, error) {
	return openFAT(r, offset, size, fatMaxCache)
}

// openFAT is OpenFAT with the cache limit as a parameter, so tests can take
// the read-on-demand path.
func openFAT(r io.ReaderAt, offset, size, maxCache int64) (*FAT, error) {
	f, err := parseFATBoot(r, offset, size, maxCache)
	if err != nil {
		return nil, fmt.Errorf("diskimage: open FAT: %w", err)
	}
	return f, nil
}

func parseFATBoot(r io.ReaderAt, offset, size, maxCache int64) (*FAT, error) {
	if r == nil {
		return nil, errors.New("no reader")
	}
	if offset < 0 || size < 0 || offset > math.MaxInt64-size {
		return nil, fmt.Errorf("offset %d and size %d are not a byte range", offset, size)
	}
	if size < 512 {
		return nil, fmt.Errorf("size %d is smaller than a boot sector (512 bytes)", size)
	}
	var bs [512]byte
	if err := fatReadFull(r, bs[:], offset); err != nil {
		return nil, fmt.Errorf("read boot sector at byte %d: %w", offset, err)
	}
	if bs[510] != 0x55 || bs[511] != 0xAA {
		return nil, fmt.Errorf("boot sector signature is 0x%02X%02X, want 0x55AA", bs[510], bs[511])
	}
	le := binary.LittleEndian
	bps := int64(le.Uint16(bs[11:]))
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 {
		return nil, fmt.Errorf("bytes per sector is %d, want 512, 1024, 2048 or 4096", bps)
	}
	spc := int64(bs[13])
	if spc == 0 || spc&(spc-1) != 0 {
		return nil, fmt.Errorf("sectors per cluster is %d, want a power of two from 1 to 128", spc)
	}
	reserved := int64(le.Uint16(bs[14:]))
	if reserved == 0 {
		return nil, errors.New("reserved sectors is 0, want at least 1 (the boot sector)")
	}
	nFATs := int64(bs[16])
	if nFATs == 0 {
		return nil, errors.New("number of FATs is 0, want at least 1")
	}
	rootEntries := int64(le.Uint16(bs[17:]))
	total := int64(le.Uint16(bs[19:]))
	if total == 0 {
		total = int64(le.Uint32(bs[32:]))
	}
	if total == 0 {
		return nil, errors.New("total sectors is 0")
	}
	fatSize := int64(le.Uint16(bs[22:]))
	layout32 := fatSize == 0 // FAT32's BPB keeps the 16-bit FAT size 0 and the real one at 36
	if layout32 {
		fatSize = int64(le.Uint32(bs[36:]))
	}
	if fatSize == 0 {
		return nil, errors.New("FAT size is 0 sectors")
	}
	if total > size/bps {
		return nil, fmt.Errorf("total sectors is %d (%d bytes), more than the %d bytes given: is the image truncated?", total, total*bps, size)
	}
	rootSectors := (rootEntries*fatEntrySize + bps - 1) / bps
	dataStart := reserved + nFATs*fatSize + rootSectors
	if dataStart >= total {
		return nil, fmt.Errorf("data region starts at sector %d (reserved sectors %d + number of FATs %d × FAT size %d + root directory %d), not before total sectors %d",
			dataStart, reserved, nFATs, fatSize, rootSectors, total)
	}
	clusters := (total - dataStart) / spc
	f := &FAT{r: r, clusterSize: bps * spc, dataOff: offset + dataStart*bps}
	var label []byte
	entSize := int64(2)
	switch {
	case clusters < 4085:
		return nil, fmt.Errorf("%d clusters make this FAT12, which is not supported (FAT16 has at least 4085)", clusters)
	case clusters < 65525:
		if layout32 {
			return nil, fmt.Errorf("FAT size (16-bit field) is 0 as on FAT32, but %d clusters make this FAT16", clusters)
		}
		if rootEntries == 0 {
			return nil, errors.New("root entries is 0, want at least 1 on FAT16")
		}
		f.fatOff = offset + reserved*bps
		f.rootOff = offset + (reserved+nFATs*fatSize)*bps
		f.rootSize = rootEntries * fatEntrySize
		if bs[38] == 0x29 { // extended boot signature: serial number, label and type follow
			label = bs[43:54]
		}
	default:
		if !layout32 {
			return nil, fmt.Errorf("FAT size (16-bit field) is %d as on FAT16, but %d clusters make this FAT32", fatSize, clusters)
		}
		if rootEntries != 0 {
			return nil, fmt.Errorf("root entries is %d, want 0 on FAT32", rootEntries)
		}
		if clusters > 0x0FFFFFF5 {
			return nil, fmt.Errorf("%d clusters, more than FAT32 can number (268435445)", clusters)
		}
		f.fat32 = true
		entSize = 4
		active := int64(0)
		if flags := le.Uint16(bs[40:]); flags&0x80 != 0 { // mirroring off: one FAT is in use
			active = int64(flags & 0x0F)
			if active >= nFATs {
				return nil, fmt.Errorf("active FAT is %d (extended flags 0x%04X), but number of FATs is %d", active, flags, nFATs)
			}
		}
		f.fatOff = offset + (reserved+active*fatSize)*bps
		if bs[66] == 0x29 {
			label = bs[71:82]
		}
	}
	f.clusters = uint32(clusters)
	if f.fat32 {
		f.rootCluster = le.Uint32(bs[44:])
		if f.rootCluster < 2 || f.rootCluster > f.clusters+1 {
			return nil, fmt.Errorf("root cluster is %d, want 2..%d", f.rootCluster, f.clusters+1)
		}
	}
	need := (clusters + 2) * entSize
	if fatSize*bps < need {
		return nil, fmt.Errorf("FAT size is %d sectors (%d bytes), too small for %d clusters (%d bytes)", fatSize, fatSize*bps, clusters, need)
	}
	if need <= maxCache {
		f.fat = make([]byte, need)
		if err := fatReadFull(r, f.fat, f.fatOff); err != nil {
			return nil, fmt.Errorf("read FAT at byte %d: %w", f.fatOff, err)
		}
	}
	f.label = fatLabel(label)
	l, err := f.rootLabel()
	if err != nil {
		return nil, fmt.Errorf("root directory: %w", err)
	}
	if l != "" {
		f.label = l
	}
	return f, nil
}

// Label returns the volume label: the root directory's volume-label entry
// if it has one, else the boot sector's. "NO NAME", FAT's word for no label,
// is returned as "".
func (f *FAT) Label() string { return f.label }

// Stat returns the file or directory at path ("/extlinux/extlinux.conf" or
// "extlinux/extlinux.conf"; "/" is the root, named "/"), matching each
// component against long and short names without regard to case. Paths have
// at most 16 components and no "..". A missing file gives an error wrapping
// fs.ErrNotExist. The file's whole cluster chain is checked, so a loop or a
// bad entry in it is an error even past the clusters its size needs.
func (f *FAT) Stat(path string) (FATFile, error) {
	n, err := f.lookup(path)
	if err != nil {
		return FATFile{}, fmt.Errorf("diskimage: FAT stat %s: %w", path, err)
	}
	fi := FATFile{Name: n.name, Size: n.size, Dir: n.dir}
	if n.dir {
		fi.Extents, err = f.dirExtents(n)
		fi.Size = 0
		for _, x := range fi.Extents {
			fi.Size += x.Length
		}
	} else {
		fi.Extents, err = f.fileExtents(n)
	}
	if err != nil {
		return FATFile{}, fmt.Errorf("diskimage: FAT stat %s: %w", path, err)
	}
	return fi, nil
}

// ReadFile returns the contents of the file at path, or an error if it is
// larger than max bytes.
func (f *FAT) ReadFile(path string, max int64) ([]byte, error) {
	n, err := f.lookup(path)
	if err != nil {
		return nil, fmt.Errorf("diskimage: FAT read %s: %w", path, err)
	}
	if n.dir {
		return nil, fmt.Errorf("diskimage: FAT read %s: is a directory", path)
	}
	if n.size > max {
		return nil, fmt.Errorf("diskimage: FAT read %s: file is %d bytes, more than the %d allowed", path, n.size, max)
	}
	exts, err := f.fileExtents(n)
	if err != nil {
		return nil, fmt.Errorf("diskimage: FAT read %s: %w", path, err)
	}
	b := make([]byte, n.size) // the extents add up to n.size, which is at most max
	p := b
	for _, x := range exts {
		if err := fatReadFull(f.r, p[:x.Length], x.Offset); err != nil {
			return nil, fmt.Errorf("diskimage: FAT read %s at byte %d: %w", path, x.Offset, err)
		}
		p = p[x.Length:]
	}
	return b, nil
}

// ReadDir lists the directory at path ("/" for the root) in on-disk order,
// without ".", "..", deleted entries and volume labels. The entries have no
// Extents; Stat gives them.
func (f *FAT) ReadDir(path string) ([]FATFile, error) {
	n, err := f.lookup(path)
	if err != nil {
		return nil, fmt.Errorf("diskimage: FAT read directory %s: %w", path, err)
	}
	if !n.dir {
		return nil, fmt.Errorf("diskimage: FAT read directory %s: not a directory", path)
	}
	exts, err := f.dirExtents(n)
	if err != nil {
		return nil, fmt.Errorf("diskimage: FAT read directory %s: %w", path, err)
	}
	var out []FATFile
	err = f.entries(exts, func(d fatDirEntry) bool {
		fi := FATFile{Name: d.name, Dir: d.dir}
		if !d.dir {
			fi.Size = int64(d.size)
		}
		out = append(out, fi)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("diskimage: FAT read directory %s: %w", path, err)
	}
	return out, nil
}

// fatNode is a file or directory found by lookup.
type fatNode struct {
	path    string // as found: the names on disk joined with "/"
	name    string
	dir     bool
	root    bool
	cluster uint32
	size    int64
}

func (f *FAT) lookup(path string) (fatNode, error) {
	var comps []string
	for _, c := range strings.Split(path, "/") {
		switch {
		case c == "" || c == ".":
			continue
		case c == "..":
			return fatNode{}, errors.New(`".." is not allowed in a path`)
		case len(comps) == fatMaxDepth:
			return fatNode{}, fmt.Errorf("path has more than %d components", fatMaxDepth)
		}
		comps = append(comps, c)
	}
	cur := fatNode{path: "/", name: "/", dir: true, root: true}
	for _, c := range comps {
		if !cur.dir {
			return fatNode{}, fmt.Errorf("%s is not a directory", cur.path)
		}
		next, err := f.find(cur, c)
		if err != nil {
			return fatNode{}, err
		}
		cur = next
	}
	return cur, nil
}

// find looks name up in the directory dir.
func (f *FAT) find(dir fatNode, name string) (fatNode, error) {
	exts, err := f.dirExtents(dir)
	if err != nil {
		return fatNode{}, err
	}
	var hit fatDirEntry
	found := false
	err = f.entries(exts, func(d fatDirEntry) bool {
		if strings.EqualFold(d.name, name) || strings.EqualFold(d.short, name) {
			hit, found = d, true
			return false
		}
		return true
	})
	if err != nil {
		return fatNode{}, fmt.Errorf("directory %s: %w", dir.path, err)
	}
	if !found {
		return fatNode{}, fmt.Errorf("no %q in %s: %w", name, dir.path, fs.ErrNotExist)
	}
	p := dir.path + "/" + hit.name
	if dir.root {
		p = "/" + hit.name
	}
	return fatNode{path: p, name: hit.name, dir: hit.dir, cluster: hit.cluster, size: int64(hit.size)}, nil
}

// dirExtents returns where the directory n lies, at most fatMaxDirBytes.
func (f *FAT) dirExtents(n fatNode) ([]Extent, error) {
	if n.root && !f.fat32 {
		return []Extent{{Offset: f.rootOff, Length: f.rootSize}}, nil
	}
	start := n.cluster
	if n.root {
		start = f.rootCluster
	}
	var exts []Extent
	var total int64
	err := f.walk(n.path, start, func(c uint32) error {
		if total >= fatMaxDirBytes {
			return fmt.Errorf("directory %s is longer than %d bytes (65536 entries)", n.path, fatMaxDirBytes)
		}
		exts = fatAppendExtent(exts, f.clusterOffset(c), f.clusterSize)
		total += f.clusterSize
		return nil
	})
	return exts, err
}

// fileExtents returns where the bytes of the file n lie, trimmed to its
// size. It follows the whole chain, so a loop or a bad entry after the last
// cluster the size needs is still an error; clusters beyond that are left
// out, as every FAT driver does.
func (f *FAT) fileExtents(n fatNode) ([]Extent, error) {
	if n.size == 0 && n.cluster == 0 {
		return nil, nil
	}
	need := (n.size + f.clusterSize - 1) / f.clusterSize
	var exts []Extent
	var got int64
	err := f.walk(n.path, n.cluster, func(c uint32) error {
		if got < need {
			exts = fatAppendExtent(exts, f.clusterOffset(c), f.clusterSize)
		}
		got++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if got < need {
		return nil, fmt.Errorf("%s is %d bytes, but its cluster chain has only %d clusters of %d bytes", n.path, n.size, got, f.clusterSize)
	}
	if len(exts) > 0 {
		exts[len(exts)-1].Length -= need*f.clusterSize - n.size
	}
	return exts, nil
}

func (f *FAT) clusterOffset(c uint32) int64 { return f.dataOff + int64(c-2)*f.clusterSize }

func fatAppendExtent(exts []Extent, off, n int64) []Extent {
	if k := len(exts) - 1; k >= 0 && exts[k].Offset+exts[k].Length == off {
		exts[k].Length += n
		return exts
	}
	return append(exts, Extent{Offset: off, Length: n})
}

// walk calls visit with each cluster of the chain that starts at start, in
// order. name says whose chain it is, for errors. A chain without a loop
// has at most f.clusters clusters, so walk visits at most that many; a loop
// is usually found sooner, with Brent's algorithm, in constant memory.
func (f *FAT) walk(name string, start uint32, visit func(c uint32) error) error {
	if start < 2 || start > f.clusters+1 {
		return fmt.Errorf("cluster chain of %s: first cluster %d is out of range 2..%d", name, start, f.clusters+1)
	}
	tortoise, power, lam := start, uint32(1), uint32(0)
	c := start
	for visited := uint32(1); ; visited++ {
		if err := visit(c); err != nil {
			return err
		}
		next, err := f.next(name, c)
		if err != nil {
			return err
		}
		if next == 0 {
			return nil
		}
		c = next
		lam++
		if c == tortoise || visited == f.clusters { // the latter: more clusters than there are, so some repeat
			return fmt.Errorf("cluster chain of %s loops at cluster %d", name, f.loopEntry(start))
		}
		if lam == power {
			tortoise, power, lam = c, power*2, 0
		}
	}
}

// next returns the cluster after c in a chain, or 0 at the end of the chain.
func (f *FAT) next(name string, c uint32) (uint32, error) {
	v, err := f.entry(c)
	if err != nil {
		return 0, fmt.Errorf("cluster chain of %s: read FAT entry %d: %w", name, c, err)
	}
	bad := uint32(0xFFF7)
	if f.fat32 {
		bad = 0x0FFFFFF7
	}
	switch {
	case v > bad: // 0xFFF8 and up: end of chain
		return 0, nil
	case v == bad:
		return 0, fmt.Errorf("cluster chain of %s: cluster %d is marked bad", name, c)
	case v == 0:
		return 0, fmt.Errorf("cluster chain of %s: cluster %d is marked free", name, c)
	case v < 2 || v > f.clusters+1:
		return 0, fmt.Errorf("cluster chain of %s: cluster %d points to cluster %d, out of range 2..%d", name, c, v, f.clusters+1)
	}
	return v, nil
}

// entry returns FAT entry c, which the caller has checked is in range.
func (f *FAT) entry(c uint32) (uint32, error) {
	size := int64(2)
	if f.fat32 {
		size = 4
	}
	off := int64(c) * size
	var b []byte
	if f.fat != nil {
		b = f.fat[off : off+size]
	} else {
		var a [4]byte
		b = a[:size]
		if err := fatReadFull(f.r, b, f.fatOff+off); err != nil {
			return 0, err
		}
	}
	if f.fat32 {
		return binary.LittleEndian.Uint32(b) & 0x0FFFFFFF, nil
	}
	return uint32(binary.LittleEndian.Uint16(b)), nil
}

// loopEntry returns the first cluster that the chain from start reaches
// twice, for the error message; walk has seen that the chain loops.
func (f *FAT) loopEntry(start uint32) uint32 {
	step := func(c uint32) uint32 {
		v, err := f.entry(c)
		if err != nil || v < 2 || v > f.clusters+1 { // the reader changed under us
			return start
		}
		return v
	}
	limit := 4*uint64(f.clusters) + 4 // Brent needs at most about 3 times the chain's length
	// The loop's length, lam (Brent).
	tortoise, hare, power, lam := start, step(start), uint64(1), uint64(1)
	for i := uint64(0); tortoise != hare && i < limit; i++ {
		if power == lam {
			tortoise, power, lam = hare, power*2, 0
		}
		hare = step(hare)
		lam++
	}
	// Where it starts: the first cluster whose successor lam steps on is itself.
	h := start
	for i := uint64(0); i < lam; i++ {
		h = step(h)
	}
	t := start
	for i := uint64(0); t != h && i < limit; i++ {
		t, h = step(t), step(h)
	}
	return t
}

// fatDirEntry is a file or directory entry of a directory.
type fatDirEntry struct {
	name    string // the long name if it is valid, else short
	short   string // the 8.3 name as NAME.EXT, case flags applied
	dir     bool
	cluster uint32
	size    uint32
}

// entries calls fn with each file and directory of the directory stored at
// exts, pairing long names with their short entries, until fn returns false.
func (f *FAT) entries(exts []Extent, fn func(fatDirEntry) bool) error {
	var l fatLFN
	return f.rawDir(exts, func(e []byte) bool {
		attr := e[11]
		switch {
		case e[0] == 0xE5: // deleted
			l.reset()
			return true
		case attr&0x3F == 0x0F: // a piece of a long name
			l.add(e)
			return true
		case attr&0x08 != 0, e[0] == '.': // volume label; "." and ".."
			l.reset()
			return true
		}
		le := binary.LittleEndian
		d := fatDirEntry{
			short:   fatShortName(e),
			dir:     attr&0x10 != 0,
			cluster: uint32(le.Uint16(e[26:])),
			size:    le.Uint32(e[28:]),
		}
		if f.fat32 {
			d.cluster |= uint32(le.Uint16(e[20:])) << 16
		}
		d.name = d.short
		if long, ok := l.name(fatChecksum(e[:11])); ok {
			d.name = long
		}
		l.reset()
		return fn(d)
	})
}

// rawDir calls fn with each 32-byte entry of the directory stored at exts,
// until the end-of-directory mark or until fn returns false. e is valid
// only during the call.
func (f *FAT) rawDir(exts []Extent, fn func(e []byte) bool) error {
	buf := make([]byte, 4096)
	for _, x := range exts {
		for off := int64(0); off+fatEntrySize <= x.Length; {
			n := min(int64(len(buf)), x.Length-off)
			n -= n % fatEntrySize
			if err := fatReadFull(f.r, buf[:n], x.Offset+off); err != nil {
				return fmt.Errorf("read directory at byte %d: %w", x.Offset+off, err)
			}
			for i := int64(0); i < n; i += fatEntrySize {
				e := buf[i : i+fatEntrySize]
				if e[0] == 0 { // this entry and all after it are free
					return nil
				}
				if !fn(e) {
					return nil
				}
			}
			off += n
		}
	}
	return nil
}

// rootLabel returns the label in the root directory's volume-label entry,
// or "" if there is none.
func (f *FAT) rootLabel() (string, error) {
	exts, err := f.dirExtents(fatNode{path: "/", name: "/", dir: true, root: true})
	if err != nil {
		return "", err
	}
	label := ""
	err = f.rawDir(exts, func(e []byte) bool {
		if e[0] != 0xE5 && e[11]&0x3F != 0x0F && e[11]&0x08 != 0 {
			label = fatLabel(e[:11])
			return false
		}
		return true
	})
	return label, err
}

func fatLabel(b []byte) string {
	s := strings.TrimRight(fatOEM(b), " \x00")
	if s == "NO NAME" {
		return ""
	}
	return s
}

// fatShortName returns the 8.3 name of entry e as NAME.EXT, lower case
// where the entry's case flags (byte 12, as Windows NT and mtools write
// them) say so.
func fatShortName(e []byte) string {
	var n [8]byte
	copy(n[:], e[:8])
	if n[0] == 0x05 { // a name starting with 0xE5, which would mark it deleted
		n[0] = 0xE5
	}
	base := strings.TrimRight(fatOEM(n[:]), " ")
	ext := strings.TrimRight(fatOEM(e[8:11]), " ")
	if e[12]&0x08 != 0 {
		base = strings.ToLower(base)
	}
	if e[12]&0x10 != 0 {
		ext = strings.ToLower(ext)
	}
	if ext == "" {
		return base
	}
	return base + "." + ext
}

// fatCP850 is code page 850 from 0x80 to 0xFF, the OEM code page mkfs.vfat
// and mtools use by default for short names and labels.
var fatCP850 = []rune("ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜø£Ø×ƒ" +
	"áíóúñÑªº¿®¬½¼¡«»░▒▓│┤ÁÂÀ©╣║╗╝¢¥┐" +
	"└┴┬├─┼ãÃ╚╔╩╦╠═╬¤ðÐÊËÈıÍÎÏ┘┌█▄¦Ì▀" +
	"ÓßÔÒõÕµþÞÚÛÙýÝ¯´\u00ad±‗¾¶§÷¸°¨·¹³²■\u00a0")

func fatOEM(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		if c < 0x80 {
			s.WriteByte(c)
		} else {
			s.WriteRune(fatCP850[c-0x80])
		}
	}
	return s.String()
}

// fatChecksum is the checksum of an 8.3 name that its long-name entries
// carry.
func fatChecksum(name []byte) byte {
	var s byte
	for _, c := range name[:11] {
		s = (s>>1 | s<<7) + c
	}
	return s
}

// fatLFNChars are the offsets of the 13 UTF-16 units in a long-name entry.
var fatLFNChars = [13]int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}

// fatLFN collects the long-name entries before a short entry. They come
// last piece first, numbered N|0x40, N-1, ..., 1, all with the checksum of
// the short name that follows; anything else discards them, and the short
// name is used.
type fatLFN struct {
	buf   [20 * 13]uint16
	count int  // pieces in the name being collected; 0 when none
	next  int  // the piece expected next; 0 when all are in
	sum   byte // their checksum
}

func (l *fatLFN) reset() { l.count, l.next = 0, 0 }

func (l *fatLFN) add(e []byte) {
	seq := int(e[0] &^ 0x40)
	if seq < 1 || seq > 20 {
		l.reset()
		return
	}
	if e[0]&0x40 != 0 {
		l.count, l.next, l.sum = seq, seq, e[13]
	} else if l.count == 0 || seq != l.next || e[13] != l.sum {
		l.reset()
		return
	}
	p := l.buf[(seq-1)*13:]
	for i, o := range fatLFNChars {
		p[i] = binary.LittleEndian.Uint16(e[o:])
	}
	l.next = seq - 1
}

// name returns the collected long name if it is complete, belongs to the
// short name with checksum sum, and is a usable name.
func (l *fatLFN) name(sum byte) (string, bool) {
	if l.count == 0 || l.next != 0 || l.sum != sum {
		return "", false
	}
	u := l.buf[:l.count*13]
	for i, c := range u {
		if c == 0 {
			u = u[:i]
			break
		}
	}
	if len(u) == 0 || len(u) > 255 {
		return "", false
	}
	s := string(utf16.Decode(u))
	if s == "." || s == ".." || strings.Contains(s, "/") {
		return "", false
	}
	return s, true
}

// fatReadFull reads len(p) bytes at off, or fails.
func fatReadFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
