#!/usr/bin/env bash
# Copies the kernel modules the VM needs, with their dependencies, from an
# unpacked kernel (scripts/vm-kernel.sh) into DEST and writes DEST/modules.load:
# one path per line, dependencies first, the order uinit loads them in.
#   scripts/image-modules.sh KERNEL_DIR DEST
set -euo pipefail

kdir=$1 dest=$2
# What the qemu-virt machine needs: gpio-sim (configfs), the virtio disk and
# ext4 (crc32c for its checksums is a module too), the NIC, the control
# channel (virtio-serial), entropy, input devices and GPIO LEDs.
wanted=(configfs gpio_sim virtio_pci virtio_blk crc32c_generic ext4 virtio_net virtio_console
	virtio_rng evdev uinput leds_gpio)

declare -A path
while IFS= read -r f; do
	n=$(basename "$f" .ko)
	path[${n//-/_}]=$f
done < <(find "$kdir/modules/kernel" -name '*.ko')
path[gpio_sim]=$kdir/gpio-sim.ko

order=()
declare -A seen
add() {
	local m=${1//-/_} d
	[[ -n ${seen[$m]:-} ]] && return
	seen[$m]=1
	[[ -n ${path[$m]:-} ]] || { echo "image-modules: no module $m in $kdir" >&2; exit 1; }
	for d in $(modinfo -F depends "${path[$m]}" | tr ',' ' '); do add "$d"; done
	order+=("$m")
}
for m in "${wanted[@]}"; do add "$m"; done

rm -rf "$dest"
mkdir -p "$dest"
for m in "${order[@]}"; do
	cp "${path[$m]}" "$dest/$m.ko"
	echo "$m.ko" >>"$dest/modules.load"
done
echo "image-modules: ${#order[@]} modules, $(du -sk "$dest" | cut -f1) KiB: ${order[*]}" >&2
