#!/usr/bin/env bash
# Removes directories even where sealroom made them read-only (the store's checkouts, blobs).
# usage: benches/wipe.sh DIR...
set -euo pipefail
for dir in "$@"; do
  [ -e "$dir" ] || continue
  chmod -R u+w "$dir" 2>/dev/null || true
  rm -rf "$dir"
done
