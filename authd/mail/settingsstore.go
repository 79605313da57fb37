package mail

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/rknas/firmware/authd/atomicfile"
)

// SettingsFileName is the file in the state directory holding the SMTP
// settings, password included, mode 0600.
const SettingsFileName = "smtp.json"

// ErrNotConfigured is returned when no SMTP settings are stored.
var ErrNotConfigured = errors.New("mail: SMTP is not configured")

// SettingsSource hands out the current SMTP settings; *SettingsStore is the
// real one. Current returns ErrNotConfigured when there are none.
type SettingsSource interface {
	Current() (Settings, error)
}

var _ SettingsSource = (*SettingsStore)(nil)

// SettingsStore owns the SMTP settings file and keeps the settings in
// memory. It is safe for concurrent use.
type SettingsStore struct {
	path string

	mu  sync.Mutex
	cur *Settings
}

// OpenSettings loads the settings from SettingsFileName in stateDir. A
// missing file means "not configured", not an error; a file that does not
// parse or validate is an error, so the daemon does not silently lose the
// admin's configuration.
func OpenSettings(stateDir string) (*SettingsStore, error) {
	s := &SettingsStore{path: filepath.Join(stateDir, SettingsFileName)}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mail: read settings %s: %w", s.path, err)
	}
	var st Settings
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("mail: parse settings %s: %w", s.path, err)
	}
	st = st.Resolved()
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("mail: settings %s: %w", s.path, err)
	}
	s.cur = &st
	return s, nil
}

// Current returns the stored settings or ErrNotConfigured.
func (s *SettingsStore) Current() (Settings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return Settings{}, ErrNotConfigured
	}
	return *s.cur, nil
}

// Redacted returns the settings for the API and whether any are stored.
func (s *SettingsStore) Redacted() (RedactedSettings, bool) {
	st, err := s.Current()
	if err != nil {
		return RedactedSettings{}, false
	}
	return st.Redacted(), true
}

// Update applies a PUT: update is merged with the stored settings (an empty
// password keeps the stored one), resolved, validated and written
// atomically. On a validation error (a *FieldError) nothing changes.
func (s *SettingsStore) Update(update Settings) (RedactedSettings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var old Settings
	if s.cur != nil {
		old = *s.cur
	}
	next := old.Merge(update)
	if err := next.Validate(); err != nil {
		return RedactedSettings{}, err
	}
	data, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return RedactedSettings{}, fmt.Errorf("mail: encode settings: %w", err)
	}
	if err := atomicfile.Write(s.path, append(data, '\n'), 0o600); err != nil {
		return RedactedSettings{}, fmt.Errorf("mail: write settings: %w", err)
	}
	s.cur = &next
	return next.Redacted(), nil
}

// Clear removes the stored settings: mail is off until configured again.
func (s *SettingsStore) Clear() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("mail: remove settings: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("mail: remove settings: %w", err)
	}
	s.cur = nil
	return nil
}
