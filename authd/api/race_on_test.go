//go:build race

package api

// raceDetector: the race detector is on; it allocates for its own
// bookkeeping and sync.Pool drops items at random under it.
const raceDetector = true
