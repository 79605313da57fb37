// Package imagetest checks every board's disk image with independent tools.
// Its test carries the build tag imagetest, so a plain `go test ./...` does
// not build images: run `make test-images` (part of `make test`).
package imagetest
