package flash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
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

// Write writes the plan to m and returns the SHA-256 of everything written,
// in plan order, wipes left out (later pieces overwrite them). sparse skips chunks of zeros (for a new image file, which
// reads as zeros where nothing was written). buffers is scratch memory: two
// chunk-sized buffers, aligned for O_DIRECT (NewBuffers).
func (pl *Plan) Write(ctx context.Context, img *Image, m Medium, sparse bool, buffers [2][]byte, progress Progress) ([]byte, error) {
	h := sha256.New()
	var done int64
	type block struct {
		buf []byte
		off int64
		err error
	}
	for _, pc := range pl.Pieces {
		if pc.Data != nil {
			if _, err := m.WriteAt(pc.Data, pc.Off); err != nil {
				return nil, fmt.Errorf("flash: write %s: %w", pc.What, err)
			}
			if !pc.Wipe {
				h.Write(pc.Data)
			}
			done += pc.Len
		} else {
			// A reader fills and hashes one buffer from the image (which is
			// in the page cache) while the other is written to the medium
			// (which is not): the medium never waits for either.
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
					if err == nil {
						h.Write(buf[:n])
					}
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
				return nil, err
			}
		}
		if progress != nil {
			progress(done, pl.Total)
		}
		if pc.Sync {
			if err := m.Sync(); err != nil {
				return nil, fmt.Errorf("flash: flush after %s: %w", pc.What, err)
			}
		}
	}
	return h.Sum(nil), nil
}

// Verify reads back everything the plan wrote and compares its SHA-256 with
// want. m should bypass the page cache (O_DIRECT), so the medium itself is
// read, not what the kernel remembers writing.
func (pl *Plan) Verify(ctx context.Context, m Medium, want []byte, buf []byte, progress Progress) error {
	h := sha256.New()
	var done int64
	for _, pc := range pl.Pieces {
		if pc.Wipe {
			done += pc.Len
			continue
		}
		if err := readRange(ctx, m, pc.Off, pc.Len, buf, h); err != nil {
			return fmt.Errorf("flash: read back %s: %w", pc.What, err)
		}
		done += pc.Len
		if progress != nil {
			progress(done, pl.Total)
		}
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return fmt.Errorf("flash: %w: read back SHA-256 %x, wrote %x", ErrVerify, got, want)
	}
	return nil
}

// ErrVerify says the medium did not return what was written to it.
var ErrVerify = errors.New("the medium does not hold what was written (a failing or fake card?)")

func readRange(ctx context.Context, r io.ReaderAt, off, n int64, buf []byte, h hash.Hash) error {
	for done := int64(0); done < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(int64(len(buf)), n-done)
		if _, err := r.ReadAt(buf[:k], off+done); err != nil {
			return err
		}
		h.Write(buf[:k])
		done += k
	}
	return nil
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
// is not the source image.
func openFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
}
