#!/usr/bin/env bash
# Measures the firmware image against a bare u-root core image: xz sizes, the
# cost of u-root's whole core command set, boot time to ready under the same
# QEMU flags (wall clock from QEMU's start to the console marker), and authd's
# static arm64 size. Builds what is missing (cached).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${RKNAS_OUT:-$root/out}
m=$out/vm/measure

rknas=$("$root/scripts/build-image.sh")
core=$("$root/scripts/build-image.sh" --core)
bare=$("$root/scripts/build-image.sh" --bare)

# boot_time IMAGE MARKER: seconds from QEMU's start to MARKER on the console.
boot_time() {
	local run=$m/run
	rm -rf "$m" && mkdir -p "$m"
	RKNAS_VM_DIR=$run RKNAS_VM_STATE=$m/state.img RKNAS_VM_IMAGE=$1 RKNAS_VM_NO_WAIT=1 \
		RKNAS_VM_PORT=${RKNAS_VM_PORT:-18090} "$root/scripts/vm" start 2>/dev/null
	local t0 deadline=$((SECONDS + 180)) t pid
	t0=$(cat "$run/started")
	until grep -aqF -- "$2" "$run/console.log" 2>/dev/null; do
		((SECONDS < deadline)) || { echo "vm-measure: no '$2' from $1" >&2; break; }
		sleep 0.05
	done
	t=$(date +%s.%N)
	pid=$(cat "$run/qemu.pid")
	echo quit | socat - "UNIX-CONNECT:$run/monitor.sock" >/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	echo "$t - $t0" | bc
}

size() { stat -c %s "$1"; }
printf 'image (xz)         firmware %8d B   with all of u-root core %8d B   bare u-root core %8d B\n' \
	"$(size "$rknas")" "$(size "$core")" "$(size "$bare")"
printf 'image (cpio)       firmware %8d B   with all of u-root core %8d B   bare u-root core %8d B\n' \
	"$(size "$out/image/rknas/initramfs.cpio")" "$(size "$out/image/core/initramfs.cpio")" "$(size "$out/image/bare/initramfs.cpio")"
printf 'authd              %d B static arm64, stripped\n' "$(size "$out/image/rknas/stage/bin/authd")"
for i in 1 2; do
	printf 'boot to ready #%d   firmware %6.2f s (authd ready)   bare u-root core %6.2f s (uinit runs)\n' "$i" \
		"$(boot_time "$rknas" "authd ready")" "$(boot_time "$bare" "rknas-bare-ready")"
done
