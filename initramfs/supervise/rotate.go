package supervise

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// RotatingFile is an io.Writer that appends to Path and, when the file would
// grow past MaxBytes, renames it to Path.1 (dropping the older Path.1) and
// starts a new one, so a chatty daemon can never fill the state partition:
// at most 2*MaxBytes are kept. Writes are not fsynced; a log may lose its
// last lines at a power cut, which is acceptable for a log.
type RotatingFile struct {
	Path     string
	MaxBytes int64

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Write appends p, rotating first if needed. Use it behind Tee so that a
// failing log file does not stop the console copy.
func (r *RotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		if err := r.open(); err != nil {
			return 0, err
		}
	}
	if r.size > 0 && r.size+int64(len(p)) > r.MaxBytes {
		r.f.Close()
		r.f = nil
		if err := os.Rename(r.Path, r.Path+".1"); err != nil {
			return 0, fmt.Errorf("supervise: rotate %s: %w", r.Path, err)
		}
		if err := r.open(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("supervise: write %s: %w", r.Path, err)
	}
	return n, nil
}

func (r *RotatingFile) open() error {
	f, err := os.OpenFile(r.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("supervise: open %s: %w", r.Path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("supervise: stat %s: %w", r.Path, err)
	}
	r.f, r.size = f, st.Size()
	return nil
}

// Close closes the current file; a later Write reopens it.
func (r *RotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// Tee writes to every writer and reports success even when some fail, so a
// broken log file never silences the console (and vice versa).
type Tee []io.Writer

// Write implements io.Writer.
func (t Tee) Write(p []byte) (int, error) {
	for _, w := range t {
		if w != nil {
			_, _ = w.Write(p) // best effort by design
		}
	}
	return len(p), nil
}
