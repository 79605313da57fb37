#!/usr/bin/env bash
# Runs a command with a CPU hog on every core beside it, as CI's parallel
# packages and a shared machine load it: a test that only passes on an idle
# machine fails here. Used by make test-timing.
#
#   scripts/under-load.sh go test -count=20 ./rescue/console ...
set -euo pipefail

[[ $# -gt 0 ]] || { echo "usage: scripts/under-load.sh COMMAND..." >&2; exit 2; }
hogs=()
for _ in $(seq 1 "$(nproc)"); do
	(while :; do :; done) &
	hogs+=($!)
done
trap 'kill "${hogs[@]}" 2>/dev/null || true' EXIT
echo "under-load: ${#hogs[@]} CPU hogs beside: $*" >&2
"$@"
