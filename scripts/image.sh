#!/usr/bin/env bash
# Builds a board's bootable disk image: out/images/rknas-BOARD.img and its .sha256,
# with the board's initramfs beside it (rknas-BOARD.initramfs.cpio.zst).
#
#   scripts/image.sh BOARD                      one board (rknas-image boards lists them)
#   scripts/image.sh --all                      every board the kernel has a device tree for
#   BOOTLOADER=u-boot-rockchip.bin scripts/image.sh BOARD
#                                               put this U-Boot at sector 64 (boards whose
#                                               bootloader lives on the eMMC or TF card)
#
# It fetches the kernel (scripts/kernel.sh), builds the base initramfs
# (scripts/build-image.sh) and, for boards Debian has a U-Boot for, Debian's
# u-boot-rockchip; all cached under out/. Output (stdout): the image paths.
# Exit status 4: the kernel has no device tree for the board yet (qnap-ts233);
# --all skips such boards, says so, and fails only on real errors.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${RKNAS_OUT:-$root/out}
log() { echo "image: $*" >&2; }
[[ $# -eq 1 ]] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
cd "$root"

kdir=$("$root/scripts/kernel.sh")
base=$("$root/scripts/build-image.sh")
mkdir -p "$out/bin" "$out/images"
version=$(git describe --always --dirty 2>/dev/null || echo dev)
# Built aside and renamed into place: another image.sh may be running it.
go build -trimpath -ldflags "-X main.version=$version" -o "$out/bin/rknas-image.$$" ./board/cmd/rknas-image
mv -f "$out/bin/rknas-image.$$" "$out/bin/rknas-image"

boards=("$1")
if [[ $1 == --all ]]; then
	mapfile -t boards < <("$out/bin/rknas-image" boards | awk 'NR > 1 { print $1 }')
fi
failed=() skipped=()
for b in "${boards[@]}"; do
	args=(build --board "$b" --kernel "$kdir" --base "$base" --version "$version"
		--out "$out/images/rknas-$b.img" --initramfs-out "$out/images/rknas-$b.initramfs.cpio.zst")
	if [[ -n ${BOOTLOADER:-} ]]; then
		args+=(--bootloader "$BOOTLOADER")
	elif "$out/bin/rknas-image" boards | awk -v b="$b" '$1 == b && /Debian/ { found = 1 } END { exit !found }'; then
		args+=(--uboot-deb "$("$root/scripts/kernel.sh" --deb u-boot-rockchip:arm64)")
	fi
	rc=0
	"$out/bin/rknas-image" "${args[@]}" >&2 || rc=$?
	case $rc in
	0) echo "$out/images/rknas-$b.img" ;;
	4) skipped+=("$b") ;; # the kernel has no device tree for it yet (said above)
	*) failed+=("$b") ;;
	esac
done
((${#boards[@]} == 1 && ${#skipped[@]} == 1)) && exit 4
log "built $((${#boards[@]} - ${#failed[@]} - ${#skipped[@]})) of ${#boards[@]} boards${skipped[*]:+; the kernel has no device tree yet for: ${skipped[*]}}"
if ((${#failed[@]} > 0)); then
	log "FAILED: ${failed[*]}"
	exit 1
fi
