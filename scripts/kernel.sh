#!/usr/bin/env bash
# Fetches the one kernel the firmware runs on the boards and in the VM:
# Debian 13 (trixie)'s linux-image-<abi>-arm64, with its device trees and
# modules, and builds gpio-sim.ko for it out of tree (trixie does not enable
# gpio-sim; the VM rig needs it). The packages come through apt with a private
# configuration under out/debian (the machine's own sources stay untouched);
# apt checks the archive's signature against the machine's Debian keyring and
# every file's SHA-256 against the signed index. The version is pinned below.
#
#   scripts/kernel.sh            fetch and unpack (cached); prints the kernel directory
#   scripts/kernel.sh --deb PKG  download one more trixie package (e.g. u-boot-rockchip:arm64)
#                                into the cache and print the .deb's path: the version pinned
#                                below for it, else PKG=VERSION's, else the newest
#   scripts/kernel.sh --newer-dtbs
#                                fetch the device trees of a newer Debian kernel (trixie-backports,
#                                pinned below) and print their directory: the profiles of boards
#                                whose trees came after 6.12 are checked against them
#
# The kernel directory holds: Image, config, abi, version, dtbs/ (vendor/board.dtb),
# root/lib/modules/<abi>/ (the modules as Debian ships them, .ko.xz, with depmod's
# modules.dep and modules.alias) and gpio-sim.ko.
set -euo pipefail

# The pinned kernel. Debian drops superseded point releases from the mirror;
# when apt no longer offers this version the script says which one it has.
KERNEL_ABI=${RKNAS_KERNEL_ABI:-6.12.117+deb13}
KERNEL_VERSION=${RKNAS_KERNEL_VERSION:-6.12.117-1}
# The newer kernel whose device trees hold the boards the firmware's kernel
# has no tree for. Only its .dtb files are used.
NEWER_ABI=${RKNAS_NEWER_KERNEL_ABI:-7.3.4+deb13}
NEWER_VERSION=${RKNAS_NEWER_KERNEL_VERSION:-7.3.4-1~bpo13+1}
# Packages --deb fetches at a pinned version, so an image is built from
# known parts: the image's root certificates (scripts/build-image.sh) come
# from this ca-certificates, and the boards that carry Debian's U-Boot
# (scripts/image.sh) get this u-boot-rockchip.
declare -A PINNED=(
	[ca-certificates:all]=${RKNAS_CA_CERTIFICATES_VERSION:-20250419+deb13u1}
	[u-boot-rockchip:arm64]=${RKNAS_UBOOT_ROCKCHIP_VERSION:-2025.01-3+deb13u1}
)

root=$(cd "$(dirname "$0")/.." && pwd)
out=${RKNAS_OUT:-$root/out}
deb=$out/debian
log() { echo "kernel: $*" >&2; }
die() { log "$*"; exit 1; }

# One run at a time: the image and VM tests may ask at once, and two apt runs
# must not fill one cache together. A cached answer takes a moment.
mkdir -p "$out"
exec 9>"$out/.kernel.lock"
flock 9

# suite is the Debian suite apt_private reads: trixie, or trixie-backports
# (--newer-dtbs). Each suite keeps its own list and index directory.
suite=trixie
aptdir=$deb

# apt_private CMD ARGS: apt-get/apt-cache against $suite only, state kept in out/debian.
apt_private() {
	local cmd=$1
	shift
	"$cmd" -o Dir::Etc::sourcelist="$aptdir/sources.list" -o Dir::Etc::sourceparts=- \
		-o Dir::State::Lists="$aptdir/lists" -o Dir::Cache="$deb/cache" -o Dir::State::status=/dev/null \
		-o APT::Architectures::=amd64 -o APT::Architectures::=arm64 -o APT::Sandbox::User=root \
		-o Acquire::Languages=none -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false "$@"
}

apt_setup() {
	mkdir -p "$aptdir/lists/partial" "$deb/cache/archives/partial" "$deb/debs"
	if [[ ! -f $aptdir/sources.list ]]; then
		# The machine's own Debian mirror, so no host name is written into the project.
		local uri
		uri=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1 || true)
		[[ -n $uri ]] || uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list 2>/dev/null || true)
		[[ -n $uri ]] || die "cannot find the machine's Debian mirror in /etc/apt"
		echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" >"$aptdir/sources.list"
	fi
	# The index is refreshed once a day (or when a package is not found).
	if [[ -z $(find "$aptdir/lists" -maxdepth 1 -name "*${suite}_main*Packages*" -mmin -1440 2>/dev/null) ]]; then
		log "apt-get update ($suite, private configuration in $aptdir)"
		apt_private apt-get update -qq >&2 || die "apt-get update for $suite failed (signature or network)"
	fi
}

# debpath NAME:ARCH VERSION: where fetch keeps that package.
debpath() { echo "$deb/debs/${1%%:*}_${2//:/%3a}_${1##*:}.deb"; }

# fetch NAME:ARCH VERSION: download one package into out/debian/debs, print its path.
fetch() {
	local pkg=$1 ver=$2 f
	f=$(debpath "$pkg" "$ver")
	if [[ ! -f $f ]]; then
		if ! apt_private apt-cache show "$pkg=$ver" >/dev/null 2>&1; then
			apt_private apt-get update -qq >&2 || true
			if ! apt_private apt-cache show "$pkg=$ver" >/dev/null 2>&1; then
				local have
				have=$(apt_private apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^  Candidate: //p')
				die "$suite no longer offers $pkg=$ver (it offers ${have:-nothing}); update the pin in scripts/kernel.sh"
			fi
		fi
		log "downloading $pkg=$ver"
		(cd "$deb/debs" && apt_private apt-get download -qq "$pkg=$ver" >&2)
		[[ -f $f ]] || die "apt-get download $pkg=$ver did not produce $f"
	fi
	echo "$f"
}

if [[ ${1:-} == --deb ]]; then
	[[ -n ${2:-} ]] || die "usage: scripts/kernel.sh --deb NAME:ARCH[=VERSION]"
	pkg=${2%%=*} ver=${2#*=}
	[[ $ver != "$2" ]] || ver=${PINNED[$pkg]:-}
	# A package whose version is known and already in the cache needs no index.
	if [[ -z $ver || ! -f $(debpath "$pkg" "$ver") ]]; then
		apt_setup
	fi
	if [[ -z $ver ]]; then
		ver=$(apt_private apt-cache show "$pkg" | sed -n 's/^Version: //p' | head -n1)
		[[ -n $ver ]] || die "trixie has no package $pkg"
	fi
	fetch "$pkg" "$ver"
	exit 0
fi

if [[ ${1:-} == --newer-dtbs ]]; then
	suite=trixie-backports aptdir=$deb/backports
	abi=$NEWER_ABI-arm64
	ddir=$out/kernel/newer/$abi
	if [[ ! -f $ddir/done ]]; then
		apt_setup
		# Since 6.17 Debian ships the device trees in linux-base-<abi> (4.7 MB).
		image=$(fetch "linux-base-$abi:arm64" "$NEWER_VERSION")
		t=$ddir.tmp
		rm -rf "$t"
		mkdir -p "$t/x"
		# Only the device trees, from usr/lib/modules/<abi>/dtb.
		dpkg-deb --fsys-tarfile "$image" | tar -x -C "$t/x" --wildcards "./usr/lib/modules/$abi/dtb/*"
		mv "$t/x/usr/lib/modules/$abi/dtb" "$t/dtbs"
		rm -rf "$t/x"
		echo "$abi" >"$t/abi"
		echo "$NEWER_VERSION" >"$t/version"
		log "newer kernel $NEWER_VERSION: $(find "$t/dtbs" -name '*.dtb' | wc -l) device trees"
		touch "$t/done"
		rm -rf "$ddir"
		mv "$t" "$ddir"
	fi
	echo "$ddir"
	exit 0
fi

abi=$KERNEL_ABI-arm64
kdir=$out/kernel/$abi
if [[ -f $kdir/done ]]; then
	echo "$kdir"
	exit 0
fi

start=$SECONDS
apt_setup
image=$(fetch "linux-image-$abi:arm64" "$KERNEL_VERSION")
headers=$(fetch "linux-headers-$abi:arm64" "$KERNEL_VERSION")
common=$(fetch "linux-headers-$KERNEL_ABI-common:all" "$KERNEL_VERSION")
kbuild=$(fetch "linux-kbuild-$KERNEL_ABI:amd64" "$KERNEL_VERSION")
series=${KERNEL_ABI%%.*}.$(cut -d. -f2 <<<"$KERNEL_ABI") # 6.12.117+deb13 -> 6.12
source=$(fetch "linux-source-$series:all" "$KERNEL_VERSION")
log "fetched in $((SECONDS - start)) s"

start=$SECONDS
t=$kdir.tmp
rm -rf "$t"
mkdir -p "$t/root/lib/modules" "$t/x"
dpkg -x "$image" "$t/x"
mv "$t/x/boot/vmlinuz-$abi" "$t/Image"
mv "$t/x/boot/config-$abi" "$t/config"
mv "$t/x/usr/lib/linux-image-$abi" "$t/dtbs"
mv "$t/x/usr/lib/modules/$abi" "$t/root/lib/modules/$abi"
# depmod reads the arm64 modules on this host; System.map lets it check symbols.
depmod -b "$t/root" -F "$t/x/boot/System.map-$abi" "$abi"
rm -rf "$t/x"
echo "$abi" >"$t/abi"
echo "$KERNEL_VERSION" >"$t/version"
log "unpacked in $((SECONDS - start)) s: $(find "$t/root" -name '*.ko*' | wc -l) modules, $(find "$t/dtbs" -name '*.dtb' | wc -l) device trees"

# gpio-sim: gpio-sim.c, gpiolib.h and irq_sim.c from the source, one module.
start=$SECONDS
b=$t/build
mkdir -p "$b/h" "$b/src" "$b/mod"
for d in "$headers" "$common" "$kbuild"; do dpkg -x "$d" "$b/h"; done
dpkg-deb --fsys-tarfile "$source" | tar -xO "./usr/src/linux-source-$series.tar.xz" |
	tar -xJ -C "$b/src" --strip-components=1 \
		"linux-source-$series/drivers/gpio/gpio-sim.c" "linux-source-$series/drivers/gpio/gpiolib.h" \
		"linux-source-$series/kernel/irq/irq_sim.c" "linux-source-$series/scripts/mod" \
		"linux-source-$series/scripts/include" "linux-source-$series/include/linux/license.h" \
		"linux-source-$series/include/linux/module_symbol.h" "linux-source-$series/include/linux/mod_devicetable.h"
cp "$b/src/drivers/gpio/gpio-sim.c" "$b/mod/gpio-sim-main.c"
cp "$b/src/drivers/gpio/gpiolib.h" "$b/src/kernel/irq/irq_sim.c" "$b/mod/"
# irq_to_desc() is not exported to modules; generic_handle_irq() does the
# same job from the irq number.
sed -i 's/handle_simple_irq(irq_to_desc(irqnum))/generic_handle_irq(irqnum)/' "$b/mod/irq_sim.c"
grep -q 'generic_handle_irq(irqnum)' "$b/mod/irq_sim.c" || die "irq_sim.c patch did not apply"
printf 'obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-main.o irq_sim.o\n' >"$b/mod/Makefile"

hdr=$b/h/usr/src/linux-headers-$abi
kb=$b/h/usr/lib/linux-kbuild-$KERNEL_ABI
# The headers' Makefile includes the -common tree by an absolute /usr/src path.
sed -i "s|/usr/src/linux-headers-$KERNEL_ABI-common|$b/h/usr/src/linux-headers-$KERNEL_ABI-common|g" "$hdr/Makefile"
# trixie builds with gcc-14; this machine's cross compiler is gcc-12. Two
# options of the kernel's configuration need the newer compiler and do not
# matter for a test module: -fmin-function-alignment (gcc-12 gets
# -falign-functions with the same alignment instead) and BTF for modules
# (needs pahole).
sed -i -e '/^CONFIG_CC_HAS_MIN_FUNCTION_ALIGNMENT=/d' -e '/^CONFIG_DEBUG_INFO_BTF_MODULES=/d' "$hdr/include/config/auto.conf"
# trixie's modpost is linked against glibc 2.38; build it from the same
# kernel's source for this machine, with the arm64 device-table offsets.
mp=$b/modpost
mkdir -p "$mp"
cp "$b/src/scripts/mod/devicetable-offsets.c" "$mp/"
echo 'obj-m := none.o' >"$mp/Makefile"
make -s -C "$hdr" M="$mp" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- CC=aarch64-linux-gnu-gcc devicetable-offsets.s >&2
{
	echo "#ifndef __DEVICETABLE_OFFSETS_H__"
	echo "#define __DEVICETABLE_OFFSETS_H__"
	sed -ne 's:^[[:space:]]*\.ascii[[:space:]]*"\(.*\)".*:\1:; /^->/{s:->#\(.*\):/* \1 */:; s:^->\([^ ]*\) [\$#]*\([^ ]*\) \(.*\):#define \1 \2 /* \3 */:; s:->::; p;}' \
		<"$mp/devicetable-offsets.s"
	echo "#endif"
} >"$mp/devicetable-offsets.h"
gcc -o "$mp/mk_elfconfig" "$b/src/scripts/mod/mk_elfconfig.c"
aarch64-linux-gnu-gcc -c -o "$mp/empty.o" "$b/src/scripts/mod/empty.c"
"$mp/mk_elfconfig" <"$mp/empty.o" >"$mp/elfconfig.h"
gcc -O2 -I"$mp" -I"$b/src/scripts/include" -I"$b/src/scripts/mod" -o "$mp/modpost" \
	"$b/src/scripts/mod/modpost.c" "$b/src/scripts/mod/file2alias.c" \
	"$b/src/scripts/mod/sumversion.c" "$b/src/scripts/mod/symsearch.c"
rm -f "$kb/scripts/mod/modpost"
cp "$mp/modpost" "$kb/scripts/mod/modpost"
make -s -C "$hdr" M="$b/mod" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- CC=aarch64-linux-gnu-gcc -j2 modules >&2
aarch64-linux-gnu-strip --strip-debug -o "$t/gpio-sim.ko" "$b/mod/gpio-sim.ko"
[[ $(modinfo -F vermagic "$t/gpio-sim.ko") == "$abi "* ]] || die "gpio-sim.ko has the wrong vermagic: $(modinfo -F vermagic "$t/gpio-sim.ko")"
log "gpio-sim.ko built in $((SECONDS - start)) s ($(stat -c %s "$t/gpio-sim.ko") bytes)"

rm -rf "$b"
touch "$t/done"
rm -rf "$kdir"
mv "$t" "$kdir"
echo "$kdir"
