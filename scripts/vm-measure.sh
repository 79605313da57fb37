#!/usr/bin/env bash
# make bench-vm: measures the firmware's VM figures against their floors, in one run, and
# ends with one table (figure, floor, now, goal, pass or short), also written to
# out/bench/vm.md: the initramfs (zstd -19, as shipped) against u-root's core commands alone; the boot to
# "authd ready" against the bare u-root image's boot, both through QEMU's -kernel; the disk's
# boot through U-Boot against -kernel; the RESET's release to the reset on disk against one
# fsync. The benchmarks are initramfs/vmtest/bench_test.go; RKNAS_BENCH_ROUNDS sets their
# alternating rounds (default 5). Builds what is missing (cached).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${RKNAS_OUT:-$root/out}
cd "$root"
go test -tags vmtest -run '^$' -bench . -benchtime 1x -timeout 60m ./initramfs/vmtest 2>&1 |
	go run ./scripts/benchtable -set vm -o "$out/bench/vm.md"
