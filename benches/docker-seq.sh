#!/usr/bin/env bash
# The bare-Docker baseline of benchmark (b): the same command as each sealroom step, run N times
# one after the other, each in a fresh `docker run --rm --network none` container with a host
# directory bind-mounted at /out. No sealroom, no store, no hashing.
#
# usage: benches/docker-seq.sh IMAGE_ID N OUT_DIR LABEL
# LABEL (`key=value`) is put on every container so that benches/run.sh can remove leftovers of an
# interrupted run, and only its own.
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 IMAGE_ID N OUT_DIR LABEL" >&2; exit 2; }
image=$1 n=$2 out=$3 label=$4
for ((i = 1; i <= n; i++)); do
  docker run --rm --network none --label "$label" -v "$out:/out" "$image" sh -c "echo $i > /out/f"
done
# The last container must have written its number, or the baseline did not do the work.
[ "$(cat "$out/f")" = "$n" ] || { echo "error: $out/f does not hold $n" >&2; exit 1; }
