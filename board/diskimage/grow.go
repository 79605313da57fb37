package diskimage

import (
	"errors"
	"fmt"
	"io"
)

// minGrow is the least growth worth rewriting the partition table for.
const minGrow = 2048 // 1 MiB

// PlanGrow returns the table of a medium of sectors sectors on which the
// state partition, if it is the last one, reaches to the end (aligned down
// to 1 MiB), with the backup GPT at the medium's last sector. It reports
// false when nothing needs to change: the partition already fills the
// medium and the backup is at the end. An image written to a larger card or
// eMMC grows this way on its first boot.
func PlanGrow(t *Table, sectors uint64) (*Table, bool, error) {
	if len(t.Partitions) == 0 {
		return nil, false, errors.New("diskimage: grow: the GPT has no partitions")
	}
	i := -1
	for j, p := range t.Partitions {
		if p.Name == StateLabel {
			i = j
		}
	}
	if i < 0 {
		return nil, false, fmt.Errorf("diskimage: grow: no %s partition", StateLabel)
	}
	st := t.Partitions[i]
	for _, p := range t.Partitions {
		if p.First > st.First {
			return nil, false, fmt.Errorf("diskimage: grow: %s is not the last partition (partition %d follows it)", StateLabel, p.Number)
		}
	}
	if sectors < 34+st.Last+1+33 {
		return nil, false, fmt.Errorf("diskimage: grow: the medium (%d sectors) ends before %s does (sector %d)", sectors, StateLabel, st.Last)
	}
	end := (sectors-34+1)/2048*2048 - 1
	grow := end >= st.Last+minGrow
	moved := t.AlternateLBA != 0 && t.AlternateLBA != sectors-1
	if !grow && !moved {
		return t, false, nil
	}
	nt := &Table{DiskID: t.DiskID, Partitions: append([]Partition(nil), t.Partitions...)}
	if grow {
		nt.Partitions[i].Last = end
	}
	return nt, true, nil
}

// Device is a whole disk that can be read, written and flushed: an
// *os.File of a block device, or an image file.
type Device interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// WriteGPT writes t to a medium of sectors sectors in the order that keeps
// it readable if power fails half way: the backup copy at the end first,
// flushed, then the primary copy, flushed. Until the primary is whole the
// old primary (or, once it is torn, the new backup) is a valid table.
func WriteGPT(d Device, t *Table, sectors uint64) error {
	primary, backup, err := t.Encode(sectors)
	if err != nil {
		return err
	}
	if _, err := d.WriteAt(backup, int64(sectors-33)*SectorSize); err != nil {
		return fmt.Errorf("diskimage: write backup GPT: %w", err)
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("diskimage: flush backup GPT: %w", err)
	}
	if _, err := d.WriteAt(primary, 0); err != nil {
		return fmt.Errorf("diskimage: write GPT: %w", err)
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("diskimage: flush GPT: %w", err)
	}
	return nil
}
