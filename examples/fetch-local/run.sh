#!/usr/bin/env bash
# Serves mirror/ on 127.0.0.1:8765, pins this example's fetches and builds it. The artifact, its
# provenance and SBOM go to $SEALROOM_EXAMPLE_OUT when set (else a temp dir, removed after).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SEALROOM=${SEALROOM:-$root/target/release/sealroom}
work=$(mktemp -d)
out=${SEALROOM_EXAMPLE_OUT:-$work/out}
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
(cd "$here/mirror" && exec python3 -m http.server --bind 127.0.0.1 8765 >/dev/null 2>&1) &
server=$!
for _ in $(seq 1 50); do python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8765/")' 2>/dev/null && break; sleep 0.1; done

image=$(SEALROOM="$SEALROOM" bash "$root/sandbox/busybox/build.sh" | tail -n 1)
cp "$here/sealroom.toml" "$work/sealroom.toml"
sed -i "s|^image = .*|image = \"$image\"|" "$work/sealroom.toml"
# `mirrored` reaches the mirror on the host's loopback, so it needs the host's network: a spec
# alone cannot ask for that, the person running sealroom must (--allow-host-network).
"$SEALROOM" pin "$work/sealroom.toml" --store "$work/store" --allow-host-network
"$SEALROOM" build "$work/sealroom.toml" --store "$work/store" --out "$out" --allow-host-network
cat "$out/shout.txt"
