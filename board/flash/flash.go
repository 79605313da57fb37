package flash

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/rknas/firmware/board/diskimage"
)

// Job is one image written to one target.
type Job struct {
	Image *Image
	// Target is a whole block device (/dev/sdb, /dev/mmcblk1) or an image
	// file (for a VM).
	Target   string
	Options  Options
	Personal Personal
	// FileSize is the size of a new image-file target; 0 means the image's.
	FileSize int64
	// Overwrite allows replacing an existing file that is not an rknas image.
	Overwrite bool
	// Update replaces only the firmware (the boot partition) of a medium
	// that already holds one, keeping its state, password and hostname.
	// The image must be for the board the medium was made for.
	Update bool
	// AllowOtherBoard lets an update put an image for another board of the
	// same SoC on the medium (it was moved to that board on purpose).
	AllowOtherBoard bool
	// Confirm is asked before anything is written to a device; nil writes
	// without asking (--yes). holds is the manifest of the firmware the
	// device holds now, nil when it holds none.
	Confirm func(t *Target, holds *diskimage.Manifest) error
	// Inspector reads the kernel's view of the target (NewInspector()).
	Inspector Inspector
	// Log receives a line per step; Progress (a terminal) gets the
	// rewritten progress line, nil for none.
	Log, Progress io.Writer
}

// Result says what was written.
type Result struct {
	Target      string
	Description string
	Written     int64
	Write       time.Duration
	Verify      time.Duration
	Table       *diskimage.Table
}

// ErrNotConfirmed says the operator did not confirm.
var ErrNotConfirmed = errors.New("not confirmed: nothing was written")

// Flash writes the job's image to its target: it inspects and checks a
// device (refusing every unsafe one before a byte is written), asks for
// confirmation, writes the plan, reads everything back and compares.
func Flash(ctx context.Context, j Job) (*Result, error) {
	logf := func(format string, a ...any) {
		if j.Log != nil {
			fmt.Fprintf(j.Log, format+"\n", a...)
		}
	}
	fi, err := os.Stat(j.Target)
	var m Medium
	var size int64
	res := &Result{Target: j.Target}
	sparse := false
	switch {
	case err == nil && fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0:
		t, err := j.Inspector.Inspect(j.Target)
		if err != nil {
			return nil, err
		}
		res.Description = t.Describe()
		opts := j.Options
		opts.ImageSize = j.Image.Size
		if err := t.Check(opts); err != nil {
			return nil, err
		}
		// What the device holds now: shown with the question, and an
		// update for another board is refused before it is asked.
		holds, err := readManifest(j.Target, t.Size)
		if j.Update {
			if errors.Is(err, ErrBadImage) {
				return nil, fmt.Errorf("flash: update: %s does not hold rknas firmware: %w", j.Target, err)
			}
			if err != nil {
				return nil, fmt.Errorf("flash: update: %w", err)
			}
			if err := checkBoard(holds, j.Image.Manifest, j.AllowOtherBoard); err != nil {
				return nil, err
			}
		}
		if j.Confirm != nil {
			if err := j.Confirm(t, holds); err != nil {
				return nil, err
			}
		}
		if m, size, err = OpenTarget(t); err != nil {
			return nil, err
		}
	case err == nil && !fi.Mode().IsRegular():
		return nil, fmt.Errorf("flash: %s is neither a block device nor an image file (%s)", j.Target, fi.Mode().Type())
	case err == nil && j.Update:
		f, err := os.OpenFile(j.Target, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("flash: %w", err)
		}
		m, size = f, fi.Size()
		res.Description = fmt.Sprintf("image file %s, %.1f MiB", j.Target, float64(size)/(1<<20))
	case err == nil || errors.Is(err, fs.ErrNotExist):
		if j.Update {
			return nil, fmt.Errorf("flash: update: %w", err)
		}
		if m, size, err = openImageFile(j); err != nil {
			return nil, err
		}
		res.Description = fmt.Sprintf("image file %s, %.1f MiB", j.Target, float64(size)/(1<<20))
		sparse = true
	default:
		return nil, fmt.Errorf("flash: %w", err)
	}
	defer m.Close()

	var pl *Plan
	if j.Update {
		pl, err = updatePlan(j.Image, j.Target, size, j.AllowOtherBoard)
	} else {
		pl, err = j.Image.Plan(j.Personal, size)
	}
	if err != nil {
		return nil, err
	}
	res.Table = pl.Table
	bufs, err := NewBuffers()
	if err != nil {
		return nil, err
	}
	logf("writing %s to %s: %.1f MiB", j.Image.Manifest.Board, res.Description, float64(pl.Total)/(1<<20))
	var progress Progress
	if j.Progress != nil {
		progress = NewProgress(j.Progress, "write")
	}
	start := time.Now()
	if err := pl.Write(ctx, j.Image, m, sparse, bufs, progress); err != nil {
		return nil, err
	}
	res.Write = time.Since(start)
	res.Written = pl.Total
	logf("written in %.1f s (%.1f MiB/s); reading it back", res.Write.Seconds(), float64(pl.Total)/(1<<20)/res.Write.Seconds())
	if j.Progress != nil {
		progress = NewProgress(j.Progress, "verify")
	}
	start = time.Now()
	if err := pl.Verify(ctx, j.Image, m, bufs, progress); err != nil {
		return nil, err
	}
	res.Verify = time.Since(start)
	logf("verified: %d bytes read back and compared in %.1f s", pl.Total, res.Verify.Seconds())
	if err := m.Close(); err != nil {
		return nil, fmt.Errorf("flash: close %s: %w", j.Target, err)
	}
	if fi != nil && fi.Mode()&fs.ModeDevice != 0 {
		if err := RereadPartitions(j.Target); err != nil {
			logf("note: %v", err)
		}
	}
	return res, nil
}

// updatePlan reads the medium at path (through the page cache: the FAT
// reader reads at any offset, which O_DIRECT does not allow) and plans the
// firmware update.
func updatePlan(img *Image, path string, size int64, allowOtherBoard bool) (*Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("flash: update: %w", err)
	}
	defer f.Close()
	cur, err := ReadImage(f, size)
	if err != nil {
		return nil, fmt.Errorf("flash: update: %s does not hold rknas firmware: %w", path, err)
	}
	return img.UpdatePlan(cur, allowOtherBoard)
}

// readManifest returns the manifest of the firmware the medium at path
// (size bytes) holds, read through the page cache; nil and an error when it
// holds none.
func readManifest(path string, size int64) (*diskimage.Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("flash: read %s: %w", path, err)
	}
	defer f.Close()
	cur, err := ReadImage(f, size)
	if err != nil {
		return nil, err
	}
	return cur.Manifest, nil
}

// openImageFile opens (or creates) an image-file target of the job's size.
// It refuses the source image itself, and an existing file that is not an
// rknas image unless Overwrite.
func openImageFile(j Job) (Medium, int64, error) {
	if fi, err := os.Stat(j.Target); err == nil {
		if src, err := os.Stat(j.Image.Path); err == nil && os.SameFile(fi, src) {
			return nil, 0, fmt.Errorf("flash: %s is the image itself", j.Target)
		}
		if !j.Overwrite {
			f, err := os.Open(j.Target)
			if err != nil {
				return nil, 0, fmt.Errorf("flash: %w", err)
			}
			_, rerr := ReadImage(f, fi.Size())
			f.Close()
			if rerr != nil {
				return nil, 0, fmt.Errorf("flash: %s exists and is not an rknas disk image: refusing to overwrite it (--overwrite if you mean it)", j.Target)
			}
		}
	}
	size := j.FileSize
	if size == 0 {
		size = j.Image.Size
	}
	if size%diskimage.SectorSize != 0 || size < j.Image.Size {
		return nil, 0, fmt.Errorf("flash: file size %d must be a whole number of sectors and at least the image's %d bytes", size, j.Image.Size)
	}
	f, err := openFile(j.Target)
	if err != nil {
		return nil, 0, fmt.Errorf("flash: %w", err)
	}
	// A fresh file reads as zeros: Write skips zero chunks, so it stays sparse.
	err = f.Truncate(0)
	if err == nil {
		err = f.Truncate(size)
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("flash: size %s: %w", j.Target, err)
	}
	return f, size, nil
}
