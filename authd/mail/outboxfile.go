package mail

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rknas/firmware/authd/atomicfile"
)

// OutboxFileName is the file in the state directory holding the outbox.
const OutboxFileName = "mail-outbox.json"

// FileOutboxStore keeps the outbox in one JSON file, written atomically
// with mode 0600 (it holds recipients' addresses).
type FileOutboxStore struct {
	path string
}

var _ OutboxStore = (*FileOutboxStore)(nil)

// NewFileOutboxStore returns the store at OutboxFileName in stateDir.
func NewFileOutboxStore(stateDir string) *FileOutboxStore {
	return &FileOutboxStore{path: filepath.Join(stateDir, OutboxFileName)}
}

// Path returns the file's path.
func (s *FileOutboxStore) Path() string { return s.path }

type outboxFile struct {
	Version int     `json:"version"`
	Entries []Entry `json:"entries"`
}

// Load reads the entries; a missing file is an empty outbox.
func (s *FileOutboxStore) Load() ([]Entry, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mail: read outbox %s: %w", s.path, err)
	}
	var f outboxFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("mail: parse outbox %s: %w", s.path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("mail: outbox %s: unknown version %d", s.path, f.Version)
	}
	return f.Entries, nil
}

// Save replaces the file with entries.
func (s *FileOutboxStore) Save(entries []Entry) error {
	data, err := json.Marshal(outboxFile{Version: 1, Entries: entries})
	if err != nil {
		return fmt.Errorf("mail: encode outbox: %w", err)
	}
	if err := atomicfile.Write(s.path, data, 0o600); err != nil {
		return fmt.Errorf("mail: save outbox: %w", err)
	}
	return nil
}
