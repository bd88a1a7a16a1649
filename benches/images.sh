#!/usr/bin/env bash
# Times examples/hello-image built by classic `docker build` (DOCKER_BUILDKIT=0) and by
# `sealroom build --load`, on the same machine in the same run: a cold build, a rebuild with
# nothing changed, and a rebuild after a one-line change (greeting.txt). Prints a Markdown table
# of medians over RUNS runs (default 5). Needs the release binary and the sealroom/busybox image
# pinned in the example. Removes the images and temp dirs it makes.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
BIN=${BIN:-target/release/sealroom}
[ -x "$BIN" ] || cargo build --release --quiet
BASE_ID=$(grep -o 'sha256:[0-9a-f]\{64\}' examples/hello-image/Dockerfile | head -1)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; docker rmi -f bench/hello-image:docker bench/hello-image:sealroom >/dev/null 2>&1 || true' EXIT

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.3f}')" "$@"; }

fresh_copy() { rm -rf "$WORK/ctx"; cp -r examples/hello-image "$WORK/ctx"; rm -rf "$WORK/ctx/sealroom-out"; }
docker_build() { DOCKER_BUILDKIT=0 docker build -q "$@" --build-arg BASE="$BASE_ID" -t bench/hello-image:docker "$WORK/ctx" >/dev/null 2>&1; }
sealroom_build() { "$BIN" build "$WORK/ctx/sealroom.toml" --store "$WORK/store" --out "$WORK/out" --load --tag bench/hello-image:sealroom >/dev/null 2>&1; }
one_line_change() { echo "hello $1" > "$WORK/ctx/greeting.txt"; }

declare -A T
for run in $(seq 1 "$RUNS"); do
  # docker: cold = no cache (the base is in the engine for both), then unchanged, then a change.
  fresh_copy
  t0=$(now); docker_build --no-cache; t1=$(now); T[docker_cold]+=" $(elapsed "$t0" "$t1")"
  t0=$(now); docker_build; t1=$(now); T[docker_unchanged]+=" $(elapsed "$t0" "$t1")"
  one_line_change "docker-$run"
  t0=$(now); docker_build; t1=$(now); T[docker_change]+=" $(elapsed "$t0" "$t1")"
  [ "$(docker run --rm --network none bench/hello-image:docker)" = "hello docker-$run from sealroom in /app" ]

  # sealroom: cold = a fresh store (the base is exported from the engine into it).
  fresh_copy; rm -rf "$WORK/store" "$WORK/out"
  t0=$(now); sealroom_build; t1=$(now); T[sealroom_cold]+=" $(elapsed "$t0" "$t1")"
  t0=$(now); sealroom_build; t1=$(now); T[sealroom_unchanged]+=" $(elapsed "$t0" "$t1")"
  one_line_change "sealroom-$run"
  t0=$(now); sealroom_build; t1=$(now); T[sealroom_change]+=" $(elapsed "$t0" "$t1")"
  [ "$(docker run --rm --network none bench/hello-image:sealroom)" = "hello sealroom-$run from sealroom in /app" ]
done

echo "| case | docker build (s) | sealroom build --load (s) | ratio | goal |"
echo "|---|---|---|---|---|"
for case in cold unchanged change; do
  d=$(median ${T[docker_$case]}); s=$(median ${T[sealroom_$case]})
  ratio=$(python3 -c "print(f'{$d / $s:.1f}x faster' if $s < $d else f'{$s / $d:.2f}x of docker')")
  goal=$(case $case in cold) echo "≤ 1.2x of docker";; unchanged) echo "≥ 5x faster";; change) echo "≥ 2x faster";; esac)
  label=$(case $case in cold) echo "cold";; unchanged) echo "unchanged rebuild";; change) echo "one-line change";; esac)
  echo "| $label | $d | $s | $ratio | $goal |"
done
echo
echo "runs: $RUNS (medians); $(nproc) CPUs; $(docker version --format 'Docker {{.Server.Version}}'); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
