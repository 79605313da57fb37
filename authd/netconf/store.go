package netconf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rknas/firmware/authd/atomicfile"
)

// FileName is the name of the configuration file in the state directory.
const FileName = "network.json"

// ErrCorrupt is wrapped by Load when the stored file cannot be decoded or is
// not valid. The file is left as it is: only an explicit save replaces it.
var ErrCorrupt = errors.New("stored network configuration is corrupt")

// Path returns the path of the configuration file in the state directory dir.
func Path(dir string) string { return filepath.Join(dir, FileName) }

// Load reads the configuration stored at path. When there is no file it
// returns def, a copy of which is the configuration a fresh device runs. A
// file that cannot be decoded or validated gives an error wrapping
// ErrCorrupt.
func Load(path string, def Config) (Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return def.Clone(), nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("netconf: read %s: %w", path, err)
	}
	c, err := Decode(bytes.NewReader(data))
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		return Config{}, fmt.Errorf("netconf: load %s: %w (%w)", path, ErrCorrupt, err)
	}
	return c, nil
}

// Save validates c and writes it to path atomically and durably, readable by
// root only.
func Save(path string, c Config) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("netconf: save %s: %w", path, err)
	}
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return fmt.Errorf("netconf: write %s: %w", path, err)
	}
	return nil
}
