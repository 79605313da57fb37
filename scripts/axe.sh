#!/usr/bin/env bash
# Fetches axe-core, the accessibility checker the browser tests inject into
# the pages, from the npm registry into out/axe-core (once), checks it
# against the pinned hash and prints the path of axe.min.js.
set -euo pipefail

version=4.10.3
sha256=0f2b4d7dcdf7d1219df8d1959ad68e565f51d14c3f0d88bb71cd59abeb956292
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/out/axe-core/$version
js=$dir/axe.min.js

if [[ -s $js ]]; then
	echo "$js"
	exit 0
fi
mkdir -p "$dir"
tgz=$dir/axe-core.tgz
curl -fsSL --retry 3 -o "$tgz.part" "https://registry.npmjs.org/axe-core/-/axe-core-$version.tgz"
got=$(sha256sum "$tgz.part" | cut -d' ' -f1)
if [[ $got != "$sha256" ]]; then
	rm -f "$tgz.part"
	echo "axe: axe-core-$version.tgz has SHA-256 $got, want $sha256" >&2
	exit 1
fi
mv "$tgz.part" "$tgz"
tar -xzf "$tgz" -C "$dir" --strip-components=1 package/axe.min.js
rm -f "$tgz"
echo "$js"
