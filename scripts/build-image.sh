#!/usr/bin/env bash
# Builds the firmware's base u-root initramfs for arm64 and prints its size.
# It holds no kernel modules: rknas-image adds each board's (scripts/image.sh).
#
#   scripts/build-image.sh           the firmware image: one u-root busybox binary holding our
#                                    u-root command set, uinit, authd and rescue
#                                                                          -> out/image/rknas.cpio.zst
#   scripts/build-image.sh --bare    u-root's core set alone, no firmware (the baseline the
#                                    firmware's size is measured against) -> out/image/bare.cpio.zst
#
# authd and rescue are commands of the busybox (/bbin/authd, /bbin/rescue) rather than
# binaries of their own, so the Go runtime and the libraries they share are in the image once.
# Output (stdout): the image path. Cached: the image is rebuilt only when its inputs (Go
# sources, go.mod/go.sum, this script, the ca-certificates package) change.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
outdir=${RKNAS_OUT:-$root/out}
variant=${1:---rknas}
variant=${variant#--}
case $variant in rknas | bare) ;; *) echo "usage: $0 [--bare]" >&2; exit 2 ;; esac
log() { echo "build-image: $*" >&2; }
cd "$root"

# One build at a time (image builds may ask at once); a cached answer takes
# a moment.
mkdir -p "$outdir"
exec 9>"$outdir/.build-image.lock"
flock 9

# The u-root commands the firmware carries: init and its shell, dhclient (uinit
# runs DHCP once), and the tools worth having on a rescue shell.
ours=(init gosh dhclient ls cat cp mv rm mkdir ln mount umount dmesg ps kill ip df free
	uptime date hwclock grep tail sync poweroff shutdown insmod lsmod)
cmds=()
if [[ $variant == rknas ]]; then
	for c in "${ours[@]}"; do cmds+=("github.com/u-root/u-root/cmds/core/$c"); done
	cmds+=(github.com/rknas/firmware/initramfs/uinit github.com/rknas/firmware/authd github.com/rknas/firmware/rescue)
else
	# go list -m names no directory for a module not yet in the module cache:
	# download it first, or the set below would be empty.
	go mod download github.com/u-root/u-root
	modroot=$(go list -m -f '{{.Dir}}' github.com/u-root/u-root)
	if [[ ! -d $modroot/cmds/core ]]; then
		echo "build-image: u-root's source is not in the module cache (dir: '$modroot')" >&2
		exit 1
	fi
	for d in "$modroot"/cmds/core/*/; do
		c=$(basename "$d")
		[[ $c == sluinit ]] && continue # a uinit of its own
		cmds+=("github.com/u-root/u-root/cmds/core/$c")
	done
fi

uroot=$outdir/bin/u-root
if [[ ! -x $uroot ]]; then
	log "installing u-root v0.16.0"
	GOBIN=$outdir/bin go install github.com/u-root/u-root@v0.16.0
fi

# The root certificates SMTP over TLS (Gmail, Outlook) verifies servers with:
# Debian's ca-certificates, at the version scripts/kernel.sh pins, fetched and
# checked by apt. Never the build host's /etc/ssl, which may hold local CAs.
cadeb=
if [[ $variant == rknas ]]; then
	cadeb=$("$root/scripts/kernel.sh" --deb ca-certificates:all)
fi

work=$outdir/image/$variant
img=$outdir/image/$variant.cpio.zst
sum=$( (
	echo "$variant ${cmds[*]}"
	if [[ $variant != bare ]]; then
		find authd board rescue initramfs -type f -name '*.go' ! -name '*_test.go' -print0 | sort -z | xargs -0 sha256sum
		(cd "$(dirname "$cadeb")" && sha256sum "$(basename "$cadeb")")
	fi
	sha256sum go.mod go.sum scripts/build-image.sh
) | sha256sum | cut -d' ' -f1)
if [[ -f $img && $(cat "$work/inputs.sha256" 2>/dev/null) == "$sum" ]]; then
	log "up to date: $img ($(stat -c %s "$img") bytes zstd)"
	echo "$img"
	exit 0
fi

start=$SECONDS
rm -rf "$work"
mkdir -p "$work/_tmp"
export GOARCH=arm64 CGO_ENABLED=0
files=()
uinit=()
if [[ $variant == bare ]]; then
	# Its uinit prints the marker the boot is timed to and stays a second.
	# u-root's init copies a command's output to the console itself, and a
	# command that ends at once hangs the console up (it leads the console's
	# session) before that copy is written: a lone "echo" lost its line on
	# one boot in ten.
	uinit=(-uinitcmd "gosh -c 'echo rknas-bare-ready; sleep 1'")
	# u-root's whole core set needs modules the firmware does not use, so it is
	# built inside u-root's own module, whose go.mod has them all.
	buildin=$modroot
	export GOFLAGS=-mod=mod
else
	# The bundle as Debian's update-ca-certificates makes it with the default
	# /etc/ca-certificates.conf, which enables every certificate the package
	# ships: mozilla/*.crt in sorted order, each ending in a newline.
	mkdir "$work/_tmp/ca"
	dpkg-deb -x "$cadeb" "$work/_tmp/ca"
	crts=()
	while IFS= read -r -d '' c; do crts+=("$c"); done < <(find "$work/_tmp/ca/usr/share/ca-certificates/mozilla" \
		-maxdepth 1 -type f -name '*.crt' -print0 | LC_ALL=C sort -z)
	((${#crts[@]} > 0)) || { echo "build-image: $cadeb holds no certificates" >&2; exit 1; }
	awk 1 "${crts[@]}" >"$work/ca-certificates.crt"
	log "root certificates: ${#crts[@]} from $(basename "$cadeb")"
	files+=(-files "$work/ca-certificates.crt:etc/ssl/certs/ca-certificates.crt")
	uinit=(-uinitcmd uinit)
	buildin=$root
	# u-root builds the busybox in GOPATH mode, where Go takes the defaults of
	# Go 1.20 for every GODEBUG setting: TLS 1.0 and RSA key exchange on, the
	# old ServeMux patterns, no parsed leaf in tls.X509KeyPair. authd and
	# rescue get the defaults of this module's Go version (what
	# `go list -f '{{.DefaultGODEBUG}}'` prints for them), set the way the go
	# command sets them, by the linker.
	godebug=$(go list -f '{{.DefaultGODEBUG}}' ./authd)
	if [[ $(go list -f '{{.DefaultGODEBUG}}' ./rescue ./initramfs/uinit | sort -u) != "$godebug" ]]; then
		echo "build-image: authd, rescue and uinit have different GODEBUG defaults" >&2
		exit 1
	fi
	# u-root also turns inlining off everywhere, for size (inlining everywhere
	# costs 0.7 MB of xz). The cryptography keeps it: the TLS handshake's
	# field arithmetic and ML-KEM are made of small functions.
	files+=(-go-extra-args "-ldflags=-s -w -buildid= -X=runtime.godebugDefault=$godebug"
		-go-extra-args "-gcflags=crypto/...=" -go-extra-args "-gcflags=golang.org/x/crypto/...=")
fi
# The build's temporary Go tree goes where the go tool does not look ("_"),
# so `go vet ./...` beside a running build does not trip over it.
(cd "$buildin" && "$uroot" -o "$work/initramfs.cpio" -tmp-dir "$work/_tmp" -go-build-tags goshsmall \
	-defaultsh gosh "${uinit[@]}" "${files[@]}" "${cmds[@]}" >&2)
# zstd: the kernel unpacks it four times as fast as xz (in the VM 0.65 s
# against 2.6 s for the qemu-virt image), for 12 % more bytes.
zstd -q -19 -T2 -c "$work/initramfs.cpio" >"$img.tmp"
mv "$img.tmp" "$img"
echo "$sum" >"$work/inputs.sha256"
rm -rf "$work/_tmp"
log "$variant: cpio $(stat -c %s "$work/initramfs.cpio") bytes, zstd $(stat -c %s "$img") bytes, built in $((SECONDS - start)) s"
echo "$img"
