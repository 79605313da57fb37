package flash

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rknas/firmware/board/diskimage"
	"github.com/rknas/firmware/board/medium"
	"golang.org/x/sys/unix"
)

// InstallJob copies the running firmware from its medium (a TF card) to
// another one (the board's eMMC): the boot partition as it is, a fresh state
// partition filling the target, and the state's files.
type InstallJob struct {
	// Source is the medium the system runs from.
	Source *medium.Medium
	// Target is the whole disk to install to, e.g. /dev/mmcblk0.
	Target string
	// StateDir is where the source's state partition is mounted (/state).
	StateDir string
	// Options; AllowFixed is what an eMMC needs.
	Options   Options
	Inspector Inspector
	Log       io.Writer
}

// maxState bounds the state copied to the new medium: it is read into
// memory while the file system is frozen.
const maxState = 256 << 20

// Install writes the job's target and returns what it did. The target is
// checked like any flashing target first (never the running medium, never a
// mounted disk); the partitions are written and read back as the flasher
// does; then the new state file system is mounted, grown to fill the target
// and filled with the state, copied from a frozen (consistent) snapshot.
func Install(ctx context.Context, j InstallJob) (*Result, error) {
	logf := func(format string, a ...any) {
		if j.Log != nil {
			fmt.Fprintf(j.Log, format+"\n", a...)
		}
	}
	t, err := j.Inspector.Inspect(j.Target)
	if err != nil {
		return nil, err
	}
	if t.Name == j.Source.Disk {
		return nil, fmt.Errorf("flash: install: %s is the medium the firmware runs from", j.Target)
	}
	src, err := os.Open(j.Source.Device())
	if err != nil {
		return nil, fmt.Errorf("flash: install: %w", err)
	}
	defer src.Close()
	img, err := ReadImage(src, int64(j.Source.Sectors)*diskimage.SectorSize)
	if err != nil {
		return nil, fmt.Errorf("flash: install: the running medium: %w", err)
	}
	opts := j.Options
	opts.ImageSize = int64(diskimage.ImageSectors) * diskimage.SectorSize
	if err := t.Check(opts); err != nil {
		return nil, err
	}
	tmpl, err := img.stateTemplate()
	if err != nil {
		return nil, err
	}
	m, size, err := OpenTarget(t)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	pl, err := img.InstallPlan(size, tmpl)
	if err != nil {
		return nil, err
	}
	bufs, err := NewBuffers()
	if err != nil {
		return nil, err
	}
	res := &Result{Target: j.Target, Description: t.Describe(), Table: pl.Table}
	logf("installing to %s: %.1f MiB", res.Description, float64(pl.Total)/(1<<20))
	// Everything but the partition table first; then the state, through a
	// loop device; the partition table last: until it is written the new
	// medium has none, so a cut anywhere before leaves it unbootable rather
	// than booting a half-copied state.
	head, tail := pl.split()
	start := time.Now()
	if err := head.Write(ctx, img, m, false, bufs, nil); err != nil {
		return nil, err
	}
	if err := head.Verify(ctx, img, m, bufs, nil); err != nil {
		return nil, err
	}
	logf("partitions written and read back in %.1f s", time.Since(start).Seconds())
	st, _ := pl.Table.Find(diskimage.StateLabel)
	files, bytesCopied, err := copyState(j.StateDir, j.Target, int64(st.First)*diskimage.SectorSize, int64(st.Sectors())*diskimage.SectorSize)
	if err != nil {
		return nil, fmt.Errorf("flash: install: copying the state failed (the target has no partition table yet and will not boot): %w", err)
	}
	logf("state copied: %d files, %d KiB", files, bytesCopied/1024)
	if err := tail.Write(ctx, img, m, false, bufs, nil); err != nil {
		return nil, err
	}
	if err := tail.Verify(ctx, img, m, bufs, nil); err != nil {
		return nil, err
	}
	res.Write, res.Written = time.Since(start), pl.Total
	if err := m.Close(); err != nil {
		return nil, fmt.Errorf("flash: install: close %s: %w", j.Target, err)
	}
	if err := RereadPartitions(j.Target); err != nil {
		logf("note: %v", err)
	}
	return res, nil
}

// stateTemplate reads the empty state file system from the boot partition.
func (img *Image) stateTemplate() ([]byte, error) {
	gz, err := img.boot.ReadFile(diskimage.StateTemplateFile, 16<<20)
	if err != nil {
		return nil, fmt.Errorf("flash: install: %w", err)
	}
	z, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("flash: install: %s: %w", diskimage.StateTemplateFile, err)
	}
	b, err := io.ReadAll(io.LimitReader(z, diskimage.StateSectors*diskimage.SectorSize+1))
	if err != nil {
		return nil, fmt.Errorf("flash: install: %s: %w", diskimage.StateTemplateFile, err)
	}
	if len(b) != diskimage.StateSectors*diskimage.SectorSize {
		return nil, fmt.Errorf("flash: install: %s holds %d bytes, want %d", diskimage.StateTemplateFile, len(b), diskimage.StateSectors*diskimage.SectorSize)
	}
	return b, nil
}

// stateFile is one entry of a state snapshot.
type stateFile struct {
	rel  string
	mode fs.FileMode
	data []byte // nil for directories
	link string // symlink target
}

// snapshot reads the whole state tree into memory with the file system
// frozen, so the copy is consistent even while authd writes: its writes
// wait (they do not fail) for the moment the files are read.
func snapshot(dir string) ([]stateFile, int64, error) {
	if err := diskimage.Freeze(dir); err != nil {
		return nil, 0, err
	}
	var files []stateFile
	var total int64
	walkErr := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." || rel == "lost+found" {
			if d.IsDir() && rel == "lost+found" {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		f := stateFile{rel: rel, mode: info.Mode()}
		switch {
		case d.IsDir():
		case info.Mode()&fs.ModeSymlink != 0:
			if f.link, err = os.Readlink(p); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if total += info.Size(); total > maxState {
				return fmt.Errorf("the state holds more than %d MiB", maxState>>20)
			}
			if f.data, err = os.ReadFile(p); err != nil {
				return err
			}
		default:
			return nil // sockets, fifos: nothing to copy
		}
		files = append(files, f)
		return nil
	})
	thawErr := diskimage.Thaw(dir)
	if walkErr != nil {
		return nil, 0, fmt.Errorf("read %s: %w", dir, walkErr)
	}
	return files, total, thawErr
}

// copyState mounts the new medium's state partition (size bytes at off of
// the target disk, through a loop device), grows its file system to the
// partition and writes the snapshot of stateDir into it.
func copyState(stateDir, target string, off, size int64) (int, int64, error) {
	files, total, err := snapshot(stateDir)
	if err != nil {
		return 0, 0, err
	}
	dev, lf, err := attachLoop(target, off, size)
	if err != nil {
		return 0, 0, err
	}
	defer lf.Close()
	mnt, err := os.MkdirTemp("/run", "rknas-install-")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(mnt)
	if err := unix.Mount(dev, mnt, "ext4", unix.MS_NOATIME|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return 0, 0, fmt.Errorf("mount %s: %w", dev, err)
	}
	umounted := false
	defer func() {
		if !umounted {
			_ = unix.Unmount(mnt, 0)
		}
	}()
	if err := medium.ResizeFSTo(mnt, uint64(size)); err != nil {
		return 0, 0, err
	}
	for _, f := range files {
		p := filepath.Join(mnt, f.rel)
		switch {
		case f.mode.IsDir():
			err = os.MkdirAll(p, f.mode.Perm())
		case f.mode&fs.ModeSymlink != 0:
			err = os.Symlink(f.link, p)
		default:
			err = writeSynced(p, f.data, f.mode.Perm())
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return 0, 0, fmt.Errorf("write %s: %w", strings.TrimPrefix(p, mnt), err)
		}
		if f.mode.IsDir() {
			_ = os.Chmod(p, f.mode.Perm())
		}
	}
	unix.Sync()
	if err := unix.Unmount(mnt, 0); err != nil {
		return 0, 0, fmt.Errorf("unmount the new state: %w", err)
	}
	umounted = true
	return len(files), total, nil
}

// writeSynced writes a new file and flushes it.
func writeSynced(p string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
