package flash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// chunk is the size of one write: large enough that a TF card or eMMC runs
// at its sequential speed, as dd bs=4M does.
const chunk = 4 << 20

// Medium is an opened target: a block device (opened with O_DIRECT and
// O_EXCL, so the kernel refuses one that is mounted or in use) or an image
// file.
type Medium interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Close() error
}

// Progress is called with the bytes done so far, out of total.
type Progress func(done, total int64)

// Write writes the plan to m. sparse skips chunks of zeros (for a new
// image file, which reads as zeros where nothing was written). buffers is
// scratch memory: two chunk-sized buffers, aligned for O_DIRECT
// (NewBuffers).
func (pl *Plan) Write(ctx context.Context, img *Image, m Medium, sparse bool, buffers [2][]byte, progress Progress) error {
	var done int64
	type block struct {
		buf []byte
		off int64
		err error
	}
	for _, pc := range pl.Pieces {
		if pc.Data != nil {
			if _, err := m.WriteAt(pc.Data, pc.Off); err != nil {
				return fmt.Errorf("flash: write %s: %w", pc.What, err)
			}
			done += pc.Len
		} else {
			// A reader fills one buffer from the image (which is in the
			// page cache) while the other is written to the medium (which
			// is not): the medium never waits for the image.
			blocks := make(chan block, 1)
			free := make(chan []byte, 2)
			free <- buffers[0]
			free <- buffers[1]
			rctx, cancel := context.WithCancel(ctx)
			go func() {
				defer close(blocks)
				for off := int64(0); off < pc.Len; off += chunk {
					var buf []byte
					select {
					case buf = <-free:
					case <-rctx.Done():
						return
					}
					n := min(int64(chunk), pc.Len-off)
					err := pl.fill(img, buf[:n], pc.Src+off)
					select {
					case blocks <- block{buf[:n], off, err}:
					case <-rctx.Done():
						return
					}
					if err != nil {
						return
					}
				}
			}()
			var err error
			for b := range blocks {
				if err = b.err; err == nil {
					err = ctx.Err()
				}
				if err == nil && !(sparse && allZero(b.buf)) {
					if _, werr := m.WriteAt(b.buf, pc.Off+b.off); werr != nil {
						err = fmt.Errorf("flash: write %s at byte %d: %w", pc.What, pc.Off+b.off, werr)
					}
				}
				if err != nil {
					break
				}
				done += int64(len(b.buf))
				if progress != nil {
					progress(done, pl.Total)
				}
				free <- b.buf[:cap(b.buf)]
			}
			cancel()
			for range blocks { // let the reader finish
			}
			if err != nil {
				return err
			}
		}
		if progress != nil {
			progress(done, pl.Total)
		}
		if pc.Sync {
			if err := m.Sync(); err != nil {
				return fmt.Errorf("flash: flush after %s: %w", pc.What, err)
			}
		}
	}
	return nil
}

// Verify reads back everything the plan wrote (wipes left out: later pieces
// overwrite them) and compares it byte for byte with what was meant to be
// written, taken again from the plan and the image. m should bypass the page
// cache (O_DIRECT), so the medium itself is read, not what the kernel
// remembers writing. Comparing, rather than hashing both sides, costs next
// to nothing beside the read and names the first byte that differs.
func (pl *Plan) Verify(ctx context.Context, img *Image, m Medium, buffers [2][]byte, progress Progress) error {
	var done int64
	for _, pc := range pl.Pieces {
		if pc.Wipe {
			done += pc.Len
			continue
		}
		got, want := buffers[0], buffers[1]
		for off := int64(0); off < pc.Len; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(int64(len(got)), pc.Len-off)
			if _, err := m.ReadAt(got[:n], pc.Off+off); err != nil {
				return fmt.Errorf("flash: read back %s at byte %d: %w", pc.What, pc.Off+off, err)
			}
			var expect []byte
			if pc.Data != nil {
				expect = pc.Data[off : off+n]
			} else {
				if err := pl.fill(img, want[:n], pc.Src+off); err != nil {
					return err
				}
				expect = want[:n]
			}
			if !bytes.Equal(got[:n], expect) {
				at := pc.Off + off + int64(firstDifference(got[:n], expect))
				return fmt.Errorf("flash: %w: %s differs at byte %d", ErrVerify, pc.What, at)
			}
			off += n
			done += n
			if progress != nil {
				progress(done, pl.Total)
			}
		}
	}
	return nil
}

// ErrVerify says the medium did not return what was written to it.
var ErrVerify = errors.New("the medium does not hold what was written (a failing or fake card?)")

// firstDifference is the index of the first byte where a and b differ.
func firstDifference(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// rate formats a progress line: "96.0 MiB of 192.0 MiB, 24.1 MiB/s, 4 s left".
func rate(done, total int64, elapsed time.Duration) string {
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	s := fmt.Sprintf("%.1f MiB of %.1f MiB", mib(done), mib(total))
	if secs := elapsed.Seconds(); secs > 0.2 && done > 0 {
		r := float64(done) / secs
		s += fmt.Sprintf(", %.1f MiB/s", r/(1<<20))
		if left := float64(total-done) / r; total > done {
			s += fmt.Sprintf(", %.0f s left", left+0.5)
		}
	}
	return s
}

// NewProgress returns a Progress that rewrites one line on w (a terminal)
// at most every 200 ms, labelled with what.
func NewProgress(w io.Writer, what string) Progress {
	start := time.Now()
	var last time.Time
	return func(done, total int64) {
		now := time.Now()
		if done < total && now.Sub(last) < 200*time.Millisecond {
			return
		}
		last = now
		fmt.Fprintf(w, "\r%s: %s\x1b[K", what, rate(done, total, now.Sub(start)))
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}

// openFile opens an image-file target for writing; the caller made sure it
// is not the source image. The file gets the device's default password and
// later, once a VM ran on it, its accounts: it is the owner's alone (0600,
// an existing file too). A symbolic link is refused, not followed: one
// planted in a shared directory must not send the write elsewhere.
func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is a symbolic link: give the image file's own path", path)
	}
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
