#!/usr/bin/env bash
# Installs the Debian packages that the tests and the image build need. It only
# calls apt-get when a package is missing, so a second run costs a second.
set -euo pipefail

packages=(
	# Cross-checks against independent implementations: TOTP, QR decoding, argon2.
	oathtool zbar-tools argon2
	# Reads the device certificate as an owner would check it.
	openssl
	# Real network peers for integration tests.
	chrony python3-aiosmtpd dnsmasq iproute2
	# An independent mDNS/DNS-SD client.
	python3-zeroconf
	# Browser tests (curl fetches axe-core for them, scripts/axe.sh).
	chromium curl
	# Serial line tests.
	socat
	# The arm64 VM rig and the images: QEMU and U-Boot for it, what building
	# gpio-sim.ko needs, and the file system and partition tools the image
	# builder and the layout tests use (mkfs.vfat, mtools, mkfs.ext4,
	# sfdisk, sgdisk, fdtget).
	qemu-system-arm qemu-utils u-boot-qemu gcc-aarch64-linux-gnu make bc flex bison libelf-dev libssl-dev
	kmod cpio xz-utils zstd e2fsprogs fdisk gdisk dosfstools mtools device-tree-compiler shellcheck ca-certificates
	# Writing a board's eMMC over USB (exercised as far as no board allows).
	rkdeveloptool
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done
if ((${#missing[@]} == 0)); then
	# The accessibility checker for the browser tests (from the npm registry).
	"$(dirname "$0")/axe.sh" >/dev/null
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "deps: missing packages (${missing[*]}); run as root: sudo $0" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
"$(dirname "$0")/axe.sh" >/dev/null
