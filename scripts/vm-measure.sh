#!/usr/bin/env bash
# Measures the firmware against its floors, in one run: each board's initramfs (xz) against
# the bare u-root core image, and the qemu-virt disk's boot to "authd ready" through U-Boot
# against QEMU's -kernel boot of the same initramfs and disk (wall clock from QEMU's start to
# the console marker, same flags). Builds what is missing (cached).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${RKNAS_OUT:-$root/out}
m=$out/vm/measure

bare=$("$root/scripts/build-image.sh" --bare)
rknas=$("$root/scripts/build-image.sh")
mapfile -t images < <("$root/scripts/image.sh" --all)
size() { stat -c %s "$1"; }

printf '%-26s %10s %10s %8s\n' "initramfs (xz)" bytes "/ bare" modules
printf '%-26s %10d %10s\n' "bare u-root core" "$(size "$bare")" 1.00
printf '%-26s %10d %10.2f %8s\n' "firmware base" "$(size "$rknas")" "$(echo "$(size "$rknas") / $(size "$bare")" | bc -l)" 0
for img in "${images[@]}"; do
	b=$(basename "$img" .img)
	ird=${img%.img}.initramfs.cpio.xz
	printf '%-26s %10d %10.2f\n' "${b#rknas-}" "$(size "$ird")" "$(echo "$(size "$ird") / $(size "$bare")" | bc -l)"
done

# boot_time MODE: seconds from QEMU's start to "authd ready" on a fresh copy of the disk.
boot_time() {
	local run=$m/run disk=$m/disk.img
	rm -rf "$m" && mkdir -p "$m"
	"$out/bin/rknas-flash" --yes --size 1G --label "$m/label.txt" "$out/images/rknas-qemu-virt.img" "$disk" >/dev/null 2>&1
	local kernel=()
	[[ $1 == kernel ]] && kernel=(RKNAS_VM_KERNEL=1)
	env "${kernel[@]}" RKNAS_VM_DIR="$run" RKNAS_VM_DISK="$disk" RKNAS_VM_EMMC=none RKNAS_VM_NO_WAIT=1 \
		RKNAS_VM_PORT="${RKNAS_VM_PORT:-18090}" "$root/scripts/vm" start 2>/dev/null
	local t0 deadline=$((SECONDS + 180)) t
	t0=$(cat "$run/started")
	until grep -aqF -- "authd ready" "$run/console.log" 2>/dev/null; do
		((SECONDS < deadline)) || { echo "vm-measure: no 'authd ready' ($1)" >&2; break; }
		sleep 0.05
	done
	t=$(date +%s.%N)
	RKNAS_VM_DIR=$run "$root/scripts/vm" stop >/dev/null 2>&1 || true
	echo "$t - $t0" | bc
}

(cd "$root" && go build -o "$out/bin/rknas-flash" ./board/cmd/rknas-flash)
for i in 1 2; do
	u=$(boot_time uboot)
	k=$(boot_time kernel)
	printf 'boot to "authd ready" #%d: U-Boot + extlinux %6.2f s, -kernel %6.2f s: ratio %.2f\n' "$i" "$u" "$k" "$(echo "$u / $k" | bc -l)"
done
