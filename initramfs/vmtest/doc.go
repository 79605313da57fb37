// Package vmtest is the end-to-end test of the firmware image in the arm64
// QEMU VM. Its tests carry the build tag vmtest, so a plain `go test ./...`
// does not run them: run `make test-vm` (go test -tags vmtest ./initramfs/vmtest).
package vmtest
