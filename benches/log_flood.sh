#!/usr/bin/env bash
# Issue [M]: what a step that writes one endless line costs the machine that runs it, sealroom
# against the docker CLI running the same command in the same run.
#
#   One container runs `head -c $BENCH_FLOOD_BYTES /dev/zero | tr '\000' a` (300 MB without a
#   newline by default) in the busybox image (sandbox/busybox/build.sh), three ways:
#   - `sealroom build` of a one-step spec (the step's log printed to stderr, which goes to a file);
#   - `docker run --rm --network none IMAGE sh -c …` attached, stdout to a file (what a user would
#     run by hand; the docker CLI is the peer);
#   - `docker run -d …` then `docker logs -f`, stdout to a file (the json-file log on the engine's
#     disk, which sealroom's containers do not have).
#   Each is measured $BENCH_FLOOD_RUNS times with GNU `time -v`: peak RSS of the measured process
#   and the bytes it wrote; for the detached case also the size of the engine's log file.
#
# usage: bash benches/log_flood.sh     (or `just bench-flood`)
#
# Builds the release binary, imports the busybox image (nothing is pulled), works in one temp
# dir, prints a markdown table (also to $BENCH_RESULTS/log-flood.md). Installs `time` (Debian) when
# missing. Removes every container and temp dir it makes, Ctrl-C included. About a minute.
#
# Settings (environment):
#   BENCH_FLOOD_BYTES=300000000   length of the line
#   BENCH_FLOOD_RUNS=3            repetitions of each case
#   BENCH_RESULTS=benches/results/log-flood
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BYTES=${BENCH_FLOOD_BYTES:-300000000}
RUNS=${BENCH_FLOOD_RUNS:-3}
RESULTS=${BENCH_RESULTS:-benches/results/log-flood}

# shellcheck source=benches/lib.sh
source benches/lib.sh
say() { printf '[flood] %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

[ -x /usr/bin/time ] || bench_tools time
[ -x /usr/bin/time ] || die "GNU time (/usr/bin/time) is missing"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (try: bash scripts/ensure-docker.sh)"

say "building the release binary"
cargo build --release --locked >&2
SEALROOM=${CARGO_TARGET_DIR:-$ROOT/target}/release/sealroom

TOKEN=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
NAME="sealroom-bench-flood-$TOKEN" # the docker run containers
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sealroom-flood.XXXXXX")
cleanup() {
  local status=$?
  trap - INT TERM
  docker ps -aq --filter "name=$NAME" | xargs -r docker rm -f >/dev/null 2>&1 || true
  bash "$ROOT/benches/wipe.sh" "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bash benches/wipe.sh "$RESULTS"
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)

say "importing the busybox image"
REF=$(SEALROOM_STORE=$WORK/import-store bash sandbox/busybox/build.sh | tail -n 1)
[[ $REF =~ ^sealroom/busybox@(sha256:[0-9a-f]{64})$ ]] || die "sandbox/busybox/build.sh printed '$REF'"
IMAGE_ID=${BASH_REMATCH[1]}

FLOOD="head -c $BYTES /dev/zero | tr '\\000' a"
FLOOD_TOML=${FLOOD//\\/\\\\} # a TOML basic string: the backslash doubled
cat >"$WORK/sealroom.toml" <<EOF
version = 1
name = "bench-flood"

[sandbox]
image = "$REF"

[[step]]
name = "flood"
run = ["sh", "-c", "$FLOOD_TOML"]
EOF

rss() { sed -n 's/.*Maximum resident set size (kbytes): *\([0-9]*\).*/\1/p' "$1"; }
ROWS=()
# measure CASE COMMAND...: runs COMMAND under `time -v` $RUNS times, stdout and stderr to files;
# records the median peak RSS and bytes written.
measure() {
  local case=$1 i kib=() out=() extra=()
  shift
  for ((i = 1; i <= RUNS; i++)); do
    rm -rf "$WORK/store" "$WORK/out"
    /usr/bin/time -v -o "$WORK/time" "$@" >"$WORK/stdout" 2>"$WORK/stderr" || die "$case failed: $(tail -c 300 "$WORK/stderr")"
    kib+=("$(rss "$WORK/time")")
    out+=("$(( $(stat -c %s "$WORK/stdout") + $(stat -c %s "$WORK/stderr") ))")
    [ -s "$WORK/engine-log" ] && extra+=("$(cat "$WORK/engine-log")")
    rm -f "$WORK/engine-log"
  done
  local mid=$((RUNS / 2))
  local k o e=""
  k=$(printf '%s\n' "${kib[@]}" | sort -n | sed -n "$((mid + 1))p")
  o=$(printf '%s\n' "${out[@]}" | sort -n | sed -n "$((mid + 1))p")
  [ ${#extra[@]} -gt 0 ] && e=$(printf '%s\n' "${extra[@]}" | sort -n | sed -n "$((mid + 1))p")
  ROWS+=("| $case | $k | $(printf '%s ' "${kib[@]}")| $o | ${e:-none} |")
  say "$case: peak RSS $k KiB, wrote $o bytes"
}

# docker run -d, then follow its json-file log; also the size of that log on the engine's disk.
detached() {
  local id
  id=$(docker run -d --name "$NAME-$RANDOM" --network none "$IMAGE_ID" sh -c "$FLOOD")
  docker logs -f "$id"
  docker wait "$id" >/dev/null
  stat -c %s "$(docker inspect -f '{{.LogPath}}' "$id")" >"$WORK/engine-log" 2>/dev/null || true
  docker rm -f "$id" >/dev/null
}
export -f detached
export FLOOD IMAGE_ID NAME WORK

say "sealroom build ($RUNS runs)"
measure "sealroom build" "$SEALROOM" build "$WORK/sealroom.toml" --store "$WORK/store" --out "$WORK/out" --no-cache
say "docker run, attached ($RUNS runs)"
measure "docker run --rm (attached)" docker run --rm --name "$NAME" --network none "$IMAGE_ID" sh -c "$FLOOD"
say "docker run -d + docker logs -f ($RUNS runs)"
measure "docker run -d + docker logs -f" bash -c detached

{
  echo "Line: $BYTES bytes without a newline; $RUNS runs each; $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD); load $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| case | peak RSS, median (KiB) | each run (KiB) | bytes written to stdout+stderr (median) | engine log file (bytes) |"
  echo "|---|---:|---|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
} | tee "$RESULTS/log-flood.md"
