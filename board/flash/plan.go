package flash

import (
	"errors"
	"fmt"
	"sort"

	"github.com/rknas/firmware/board/diskimage"
	"github.com/rknas/firmware/board/provision"
)

// Piece is one run of bytes the flasher writes to the target: from the
// image at Src (with the device's own values patched in), or Data.
type Piece struct {
	What string
	// Off and Len are the target's byte range.
	Off, Len int64
	// Src is where the bytes come from in the image when Data is nil.
	Src  int64
	Data []byte
	// Sync flushes the target after this piece, before the next one.
	Sync bool
	// Wipe marks a piece a later one overwrites: the read-back skips it.
	Wipe bool
}

// patch replaces image bytes at Off (an image offset) with Data.
type patch struct {
	Off  int64
	Data []byte
}

// Plan is what the flasher writes for one medium.
type Plan struct {
	Pieces  []Piece
	patches []patch
	// Total is the number of bytes written (Pieces' lengths).
	Total int64
	// Table is the medium's new partition table.
	Table *diskimage.Table
}

// Plan returns the writes that put img on a medium of targetSize bytes,
// personalised with p. The order keeps a medium whose writing is cut short
// from booting a half-written system: the old partition tables are wiped
// first (the primary at the start and the backup at the end, which U-Boot
// and Linux would otherwise fall back to), then the partitions are written,
// then the boot chain when the image carries one, then the backup GPT, and
// the primary GPT last. Until the last piece lands, the medium has no
// valid partition table and nothing boots from it. When the image carries
// no bootloader, the medium's first 16 MiB after the GPT are left as they
// are: they may hold the board's own U-Boot.
func (img *Image) Plan(p Personal, targetSize int64) (*Plan, error) {
	const sector = diskimage.SectorSize
	if targetSize%sector != 0 {
		return nil, fmt.Errorf("flash: target size %d is not a whole number of sectors", targetSize)
	}
	sectors := uint64(targetSize / sector)
	tab, err := diskimage.MediumTable(p.Disk, p.Boot, p.State, sectors)
	if err != nil {
		return nil, err
	}
	primary, backup, err := tab.Encode(sectors)
	if err != nil {
		return nil, err
	}
	imgState, _ := img.Table.Find(diskimage.StateLabel)
	partsEnd := int64(imgState.Last+1) * sector
	if partsEnd > targetSize-33*sector {
		return nil, fmt.Errorf("flash: the target (%d bytes) is smaller than the image's partitions (%d bytes)", targetSize, partsEnd+33*sector)
	}
	var pieces []Piece
	pieces = append(pieces,
		Piece{What: "wipe the old partition table", Off: 0, Len: int64(len(primary)), Data: make([]byte, len(primary)), Wipe: true},
		Piece{What: "wipe the old backup partition table", Off: targetSize - 33*sector, Len: 33 * sector,
			Data: make([]byte, 33*sector), Sync: true, Wipe: true},
		Piece{What: "boot and state partitions", Off: diskimage.BootStart * sector, Len: partsEnd - diskimage.BootStart*sector,
			Src: diskimage.BootStart * sector, Sync: true},
	)
	if img.Manifest.Bootloader.Included {
		pieces = append(pieces, Piece{What: "boot chain (" + img.Manifest.Bootloader.Source + ")",
			Off: int64(len(primary)), Len: diskimage.BootStart*sector - int64(len(primary)), Src: int64(len(primary)), Sync: true})
	}
	pieces = append(pieces,
		Piece{What: "backup partition table", Off: targetSize - 33*sector, Len: int64(len(backup)), Data: backup, Sync: true},
		Piece{What: "partition table", Off: 0, Len: int64(len(primary)), Data: primary, Sync: true},
	)
	pw, err := provision.Pad(p.Password, provision.PasswordFileSize)
	if err != nil {
		return nil, err
	}
	host, err := provision.Pad(p.Hostname, provision.HostnameFileSize)
	if err != nil {
		return nil, err
	}
	patches := []patch{
		{img.password.Offset, pw},
		{img.hostname.Offset, host},
		{img.diskArg.Offset, []byte(p.Disk.String())},
	}
	sort.Slice(patches, func(i, j int) bool { return patches[i].Off < patches[j].Off })
	pl := &Plan{Pieces: pieces, patches: patches, Table: tab}
	for _, pc := range pieces {
		pl.Total += pc.Len
	}
	return pl, nil
}

// fill reads len(buf) image bytes at off into buf and applies the patches.
func (pl *Plan) fill(img *Image, buf []byte, off int64) error {
	if _, err := img.r.ReadAt(buf, off); err != nil {
		return fmt.Errorf("flash: read image at %d: %w", off, err)
	}
	end := off + int64(len(buf))
	for _, p := range pl.patches {
		pe := p.Off + int64(len(p.Data))
		if pe <= off || p.Off >= end {
			continue
		}
		from, to := max(p.Off, off), min(pe, end)
		copy(buf[from-off:to-off], p.Data[from-p.Off:to-p.Off])
	}
	return nil
}

// ErrOtherBoard says an update's image is for another board than the one
// the medium was made for: the boot partition carries the board's device
// tree and boot menu, and another board's leave it unbootable.
var ErrOtherBoard = errors.New("image for another board")

// checkBoard refuses to update a medium made for one board (cur, the
// manifest it holds) with an image for another (img). allowOther lets an
// image for another board of the same SoC through (the owner moved the
// medium to that board on purpose); another SoC, or one a manifest does not
// name, is refused all the same.
func checkBoard(cur, img *diskimage.Manifest, allowOther bool) error {
	if cur.Board == img.Board {
		return nil
	}
	sameSoC := cur.SoC != "" && cur.SoC == img.SoC
	if sameSoC && allowOther {
		return nil
	}
	what := fmt.Sprintf("the medium was made for %s and the image is for %s", boardName(cur), boardName(img))
	if sameSoC {
		return fmt.Errorf("flash: update: %w: %s; nothing was written. Update it with an image for %s "+
			"(make image BOARD=%s), or, if the medium now lives in a %s on purpose, add --allow-other-board",
			ErrOtherBoard, what, cur.Board, cur.Board, img.Board)
	}
	soc := "another SoC"
	if cur.SoC == "" || img.SoC == "" {
		soc = "not known to be the same SoC"
	}
	return fmt.Errorf("flash: update: %w: %s, %s, which --allow-other-board does not allow; nothing was written. "+
		"Update it with an image for %s (make image BOARD=%s), or flash this image without --update, "+
		"which erases the medium's state (accounts, settings)", ErrOtherBoard, what, soc, cur.Board, cur.Board)
}

// boardName is "QNAP TS-433 (qnap-ts433, rk3568)", with what the manifest
// has of that.
func boardName(m *diskimage.Manifest) string {
	in := m.Board
	if m.SoC != "" {
		in += ", " + m.SoC
	}
	if m.Model == "" {
		return in
	}
	return m.Model + " (" + in + ")"
}

// UpdatePlan returns the writes that replace the firmware on a medium that
// already holds one (target, read with ReadImage): only the boot partition
// is rewritten, with the medium's own password, hostname and disk GUID kept,
// so the state partition and the partition table stay as they are. A cut
// during the write leaves the boot partition unusable until the update is
// run again; the state is not touched. An image for another board than the
// one target's manifest names is refused (ErrOtherBoard); allowOtherBoard
// lets another board of the same SoC through.
func (img *Image) UpdatePlan(target *Image, allowOtherBoard bool) (*Plan, error) {
	const sector = diskimage.SectorSize
	if err := checkBoard(target.Manifest, img.Manifest, allowOtherBoard); err != nil {
		return nil, err
	}
	tb, ok := target.Table.Find(diskimage.BootLabel)
	if !ok || tb.First != diskimage.BootStart || tb.Sectors() != diskimage.BootSectors {
		return nil, fmt.Errorf("flash: update: the target's %s partition is not where this image's is", diskimage.BootLabel)
	}
	pw, err := readExtent(target, target.password)
	if err != nil {
		return nil, err
	}
	host, err := readExtent(target, target.hostname)
	if err != nil {
		return nil, err
	}
	pl := &Plan{Table: target.Table, patches: []patch{
		{img.password.Offset, pw},
		{img.hostname.Offset, host},
		{img.diskArg.Offset, []byte(target.Table.DiskID.String())},
	}}
	sort.Slice(pl.patches, func(i, j int) bool { return pl.patches[i].Off < pl.patches[j].Off })
	pl.Pieces = []Piece{{What: "boot partition", Off: diskimage.BootStart * sector, Len: diskimage.BootSectors * sector,
		Src: diskimage.BootStart * sector, Sync: true}}
	pl.Total = pl.Pieces[0].Len
	return pl, nil
}

// split returns the plan without its last piece (the partition table) and
// that piece alone.
func (pl *Plan) split() (head, tail *Plan) {
	n := len(pl.Pieces) - 1
	head = &Plan{Pieces: pl.Pieces[:n], patches: pl.patches, Table: pl.Table}
	tail = &Plan{Pieces: pl.Pieces[n:], patches: pl.patches, Table: pl.Table}
	for _, pc := range head.Pieces {
		head.Total += pc.Len
	}
	tail.Total = tail.Pieces[0].Len
	return head, tail
}

// InstallPlan returns the writes that put the medium img (the one the
// firmware runs from) on a medium of targetSize bytes: the boot partition
// as it is (password, hostname and all), a new empty state file system
// (template) at the start of the state partition, the boot chain when the
// source carries one, and a new partition table with new GUIDs; in Plan's
// order.
func (img *Image) InstallPlan(targetSize int64, template []byte) (*Plan, error) {
	const sector = diskimage.SectorSize
	pw, err := readExtent(img, img.password)
	if err != nil {
		return nil, err
	}
	host, err := readExtent(img, img.hostname)
	if err != nil {
		return nil, err
	}
	var p Personal
	for _, g := range []*diskimage.GUID{&p.Disk, &p.Boot, &p.State} {
		if *g, err = diskimage.NewGUID(); err != nil {
			return nil, err
		}
	}
	// Password and hostname are the source's bytes, whatever they are
	// (even unprovisioned); Plan needs values only to pad them.
	p.Password, p.Hostname = "x", "x"
	pl, err := img.Plan(p, targetSize)
	if err != nil {
		return nil, err
	}
	for i := range pl.patches {
		switch pl.patches[i].Off {
		case img.password.Offset:
			pl.patches[i].Data = pw
		case img.hostname.Offset:
			pl.patches[i].Data = host
		}
	}
	var pieces []Piece
	for _, pc := range pl.Pieces {
		if pc.What != "boot and state partitions" {
			pieces = append(pieces, pc)
			continue
		}
		pieces = append(pieces,
			Piece{What: "boot partition", Off: diskimage.BootStart * sector, Len: diskimage.BootSectors * sector,
				Src: diskimage.BootStart * sector},
			Piece{What: "new state file system", Off: (diskimage.BootStart + diskimage.BootSectors) * sector,
				Len: int64(len(template)), Data: template, Sync: true})
	}
	pl.Pieces, pl.Total = pieces, 0
	for _, pc := range pieces {
		pl.Total += pc.Len
	}
	return pl, nil
}

func readExtent(img *Image, e diskimage.Extent) ([]byte, error) {
	b := make([]byte, e.Length)
	if _, err := img.r.ReadAt(b, e.Offset); err != nil {
		return nil, fmt.Errorf("flash: read the medium's provisioning: %w", err)
	}
	return b, nil
}

// Bytes returns what piece pc writes: its Data, or the image's bytes with
// the device's values patched in.
func (pl *Plan) Bytes(img *Image, pc Piece) ([]byte, error) {
	if pc.Data != nil {
		return pc.Data, nil
	}
	b := make([]byte, pc.Len)
	if err := pl.fill(img, b, pc.Src); err != nil {
		return nil, err
	}
	return b, nil
}
