#!/usr/bin/env bash
# Fetches Debian's arm64 kernel for the QEMU rig and builds gpio-sim.ko for it
# out of tree (Debian does not enable gpio-sim). Everything is cached under
# out/vm/kernel/<abi>; a second run only resolves the ABI and prints the paths.
# Output (stdout): the kernel directory, which holds Image, modules/ (the
# unpacked lib/modules/<abi>), gpio-sim.ko and abi.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${RKNAS_OUT:-$root/out}/vm

log() { echo "vm-kernel: $*" >&2; }

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	log "adding the arm64 architecture to dpkg"
	dpkg --add-architecture arm64
	apt-get update -qq
fi
abi=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null |
	sed -n 's/.*Depends: linux-image-\(.*-arm64\):arm64$/\1/p' | head -n1)
if [[ -z $abi ]]; then
	log "apt knows no arm64 kernel yet; running apt-get update"
	apt-get update -qq
	abi=$(apt-cache depends linux-image-arm64:arm64 |
		sed -n 's/.*Depends: linux-image-\(.*-arm64\):arm64$/\1/p' | head -n1)
fi
[[ -n $abi ]] || { log "cannot resolve the kernel ABI from linux-image-arm64:arm64"; exit 1; }
kdir=$out/kernel/$abi
if [[ -f $kdir/done ]]; then
	echo "$kdir"
	exit 0
fi

start=$SECONDS
ver=$(apt-cache show "linux-image-$abi-unsigned:arm64" | sed -n 's/^Version: //p' | head -n1)
series=${abi%%-*}                     # 6.1.0 -> kernel series 6.1
series=${series%.*}
common=${abi%-arm64}-common           # 6.1.0-56-common
debs=$out/debs
mkdir -p "$debs"
rm -rf "$kdir.tmp"
mkdir -p "$kdir.tmp"
(
	cd "$debs"
	for p in "linux-image-$abi-unsigned:arm64" "linux-headers-$abi:arm64" \
		"linux-headers-$common:all" "linux-kbuild-$series:amd64" "linux-source-$series:all"; do
		name=${p%%:*}
		[[ -f ${name}_${ver}_${p##*:}.deb ]] && continue
		log "downloading $p=$ver"
		apt-get -o APT::Sandbox::User=root download -qq "$p=$ver"
	done
)
t=$kdir.tmp
log "unpacking"
for d in "$debs"/linux-image-"$abi"-unsigned_"$ver"_arm64.deb "$debs"/linux-headers-"$abi"_"$ver"_arm64.deb \
	"$debs"/linux-headers-"$common"_"$ver"_all.deb "$debs"/linux-kbuild-"$series"_"$ver"_amd64.deb; do
	dpkg -x "$d" "$t/root"
done
cp "$t/root/boot/vmlinuz-$abi" "$t/Image"
mv "$t/root/lib/modules/$abi" "$t/modules"
log "fetched in $((SECONDS - start)) s"

# gpio-sim: gpio-sim.c, gpiolib.h and irq_sim.c from the source, one module.
start=$SECONDS
src=$t/gpio-sim
mkdir -p "$src"
dpkg-deb --fsys-tarfile "$debs"/linux-source-"$series"_"$ver"_all.deb |
	tar -xO "./usr/src/linux-source-$series.tar.xz" |
	tar -xJ -C "$src" --strip-components=1 \
		"linux-source-$series/drivers/gpio/gpio-sim.c" \
		"linux-source-$series/drivers/gpio/gpiolib.h" \
		"linux-source-$series/kernel/irq/irq_sim.c"
mv "$src"/drivers/gpio/* "$src/"
mv "$src"/kernel/irq/irq_sim.c "$src/"
# Snag 1: irq_to_desc() is not exported to modules; generic_handle_irq() does
# the same job from the irq number.
sed -i 's/handle_simple_irq(irq_to_desc(irqnum))/generic_handle_irq(irqnum)/' "$src/irq_sim.c"
grep -q 'generic_handle_irq(irqnum)' "$src/irq_sim.c" || { log "irq_sim.c patch did not apply"; exit 1; }
printf 'obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-main.o irq_sim.o\n' >"$src/Makefile"
mv "$src/gpio-sim.c" "$src/gpio-sim-main.c"
# Snag 2: the headers' Makefile includes the -common tree and kbuild by
# absolute /usr/src paths; point them at the unpacked copies.
hdr=$t/root/usr/src/linux-headers-$abi
sed -i "s|/usr/src/linux-headers-$common|$t/root/usr/src/linux-headers-$common|g" "$hdr/Makefile"
make -s -C "$hdr" M="$src" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- -j2 modules >&2
aarch64-linux-gnu-strip --strip-debug -o "$t/gpio-sim.ko" "$src/gpio-sim.ko"
log "gpio-sim.ko built in $((SECONDS - start)) s ($(stat -c %s "$t/gpio-sim.ko") bytes)"

echo "$abi" >"$t/abi"
rm -rf "$t/root" "$src"
touch "$t/done"
rm -rf "$kdir"
mv "$t" "$kdir"
echo "$kdir"
