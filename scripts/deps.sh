#!/usr/bin/env bash
# Installs the Debian packages that the tests and the image build need. It only
# calls apt-get when a package is missing, so a second run costs a second.
set -euo pipefail

packages=(
	# Cross-checks against independent implementations: TOTP, QR decoding, argon2.
	oathtool zbar-tools argon2
	# Real network peers for integration tests.
	chrony python3-aiosmtpd dnsmasq iproute2
	# Browser tests.
	chromium
	# Serial line tests.
	socat
	# The arm64 VM rig and the image: QEMU, and what building gpio-sim.ko and
	# the state disk needs.
	qemu-system-arm qemu-utils gcc-aarch64-linux-gnu make bc flex bison libelf-dev libssl-dev
	kmod cpio xz-utils e2fsprogs fdisk gdisk dosfstools shellcheck ca-certificates
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done
if ((${#missing[@]} == 0)); then
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
