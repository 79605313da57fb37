//go:build !race

package api

// raceDetector: the race detector is off.
const raceDetector = false
