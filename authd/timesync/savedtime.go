package timesync

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rknas/firmware/authd/atomicfile"
)

// SavedTimeFile is the name of the file in the state directory that holds the
// last known time, for boards without a battery-backed RTC. This package owns
// it.
const SavedTimeFile = "timesync-time.json"

// BuildTime is the firmware's build time, set at link time:
//
//	go build -ldflags "-X github.com/rknas/firmware/authd/timesync.BuildTime=$(date -u +%s)"
//
// as Unix seconds or RFC 3339. The real time is never earlier, so a clock
// behind it is moved forward to it at start. When empty or unparsable,
// fallbackBuildTime is used.
var BuildTime = ""

// fallbackBuildTime is a date this source tree certainly postdates, for
// builds that do not set BuildTime.
const fallbackBuildTime = "2026-11-01T00:00:00Z"

// DefaultBuildTime returns BuildTime parsed, or the fallback constant.
func DefaultBuildTime() time.Time {
	if t, err := parseBuildTime(BuildTime); err == nil {
		return t
	}
	t, _ := time.Parse(time.RFC3339, fallbackBuildTime)
	return t
}

func parseBuildTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("empty")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 {
			return time.Time{}, errors.New("not after 1970")
		}
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Parse(time.RFC3339, s)
}

// savedTime is the content of SavedTimeFile: the time and how far it was
// trusted when saved.
type savedTime struct {
	Time  time.Time `json:"time"`
	State State     `json:"state,omitempty"`
}

// loadSavedTime reads the saved time from dir; a missing file gives the
// zero time and no error.
func loadSavedTime(dir string) (savedTime, error) {
	path := filepath.Join(dir, SavedTimeFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return savedTime{}, nil
	}
	if err != nil {
		return savedTime{}, fmt.Errorf("timesync: load saved time: %w", err)
	}
	var st savedTime
	if err := json.Unmarshal(data, &st); err != nil {
		return savedTime{}, fmt.Errorf("timesync: load saved time %s: %w", path, err)
	}
	return st, nil
}

func writeSavedTime(dir string, st savedTime) error {
	st.Time = st.Time.UTC().Round(0)
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("timesync: save time: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, SavedTimeFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("timesync: save time: %w", err)
	}
	return nil
}
