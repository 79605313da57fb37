#!/usr/bin/env bash
# Builds the firmware's base u-root initramfs for arm64 and prints its size.
# It holds no kernel modules: rknas-image adds each board's (scripts/image.sh).
#
#   scripts/build-image.sh           the firmware image: our u-root command set, uinit, authd,
#                                    rescue                                -> out/image/rknas.cpio.xz
#   scripts/build-image.sh --core    the same with u-root's whole core set (to measure its cost)
#   scripts/build-image.sh --bare    u-root's core set alone, no firmware    -> out/image/bare.cpio.xz
#
# RKNAS_AUTHD=stub puts initramfs/authdstub in place of authd (automatic while
# authd has no package main). Output (stdout): the image path. Cached: the
# image is rebuilt only when its inputs (Go sources, go.mod/go.sum, this
# script) change.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
outdir=${RKNAS_OUT:-$root/out}
variant=${1:---rknas}
variant=${variant#--}
case $variant in rknas | core | bare) ;; *) echo "usage: $0 [--core|--bare]" >&2; exit 2 ;; esac
log() { echo "build-image: $*" >&2; }
cd "$root"

# The u-root commands the firmware carries: init and its shell, dhclient (uinit
# runs DHCP once), and the tools worth having on a rescue shell.
ours=(init gosh dhclient ls cat cp mv rm mkdir ln mount umount dmesg ps kill ip df free
	uptime date hwclock grep tail sync poweroff shutdown insmod lsmod)
cmds=()
if [[ $variant == rknas ]]; then
	for c in "${ours[@]}"; do cmds+=("github.com/u-root/u-root/cmds/core/$c"); done
else
	modroot=$(go list -m -f '{{.Dir}}' github.com/u-root/u-root)
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

authd_src=./authd
if [[ ${RKNAS_AUTHD:-} == stub || $(go list -f '{{.Name}}' ./authd 2>/dev/null) != main ]]; then
	log "authd has no package main yet (or RKNAS_AUTHD=stub): using the placeholder initramfs/authdstub"
	authd_src=./initramfs/authdstub
fi

work=$outdir/image/$variant
img=$outdir/image/$variant.cpio.xz
sum=$( (
	echo "$variant $authd_src ${cmds[*]}"
	if [[ $variant != bare ]]; then
		find authd board rescue initramfs -type f -name '*.go' ! -name '*_test.go' -print0 | sort -z | xargs -0 sha256sum
	fi
	sha256sum go.mod go.sum scripts/build-image.sh
) | sha256sum | cut -d' ' -f1)
if [[ -f $img && $(cat "$work/inputs.sha256" 2>/dev/null) == "$sum" ]]; then
	log "up to date: $img ($(stat -c %s "$img") bytes xz)"
	echo "$img"
	exit 0
fi

start=$SECONDS
rm -rf "$work"
mkdir -p "$work/stage/bin" "$work/_tmp"
export GOARCH=arm64 CGO_ENABLED=0
files=()
uinit=()
if [[ $variant == bare ]]; then
	uinit=(-uinitcmd "echo rknas-bare-ready")
else
	go build -trimpath -ldflags='-s -w' -o "$work/stage/bin/authd" "$authd_src"
	log "authd ($authd_src): $(stat -c %s "$work/stage/bin/authd") bytes static arm64, stripped"
	files+=(-files "$work/stage/bin/authd:bin/authd")
	go build -trimpath -ldflags='-s -w' -o "$work/stage/bin/rescue" ./rescue
	files+=(-files "$work/stage/bin/rescue:bin/rescue")
	# Root certificates, so SMTP over TLS (Gmail, Outlook) verifies servers.
	files+=(-files "/etc/ssl/certs/ca-certificates.crt:etc/ssl/certs/ca-certificates.crt")
	cmds+=(github.com/rknas/firmware/initramfs/uinit)
	uinit=(-uinitcmd uinit)
fi
# The build's temporary Go tree goes where the go tool does not look ("_"),
# so `go vet ./...` beside a running build does not trip over it.
"$uroot" -o "$work/initramfs.cpio" -tmp-dir "$work/_tmp" -go-build-tags goshsmall \
	-defaultsh gosh "${uinit[@]}" "${files[@]}" "${cmds[@]}" >&2
xz --check=crc32 -T2 -9 -c "$work/initramfs.cpio" >"$img.tmp"
mv "$img.tmp" "$img"
echo "$sum" >"$work/inputs.sha256"
rm -rf "$work/_tmp"
log "$variant: cpio $(stat -c %s "$work/initramfs.cpio") bytes, xz $(stat -c %s "$img") bytes, built in $((SECONDS - start)) s"
echo "$img"
