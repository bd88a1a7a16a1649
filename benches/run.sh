#!/usr/bin/env bash
# sealroom's benchmarks (issue [C]); BENCHMARKS.md records and explains the numbers.
#
#   (a) a fully cached rebuild of a 50-step spec (goal: under 50 ms wall);
#   (b) a cold 20-step busybox spec, sealroom's time per step against a bare
#       `docker run --rm --network none` of the same command (goal: at most 1.2x);
#   (c) how (a) and (b) grow from 10 to 200 steps.
#
# usage: bash benches/run.sh            (or `just bench`)
#
# Builds the release binary, imports the busybox image (sandbox/busybox/build.sh; nothing is
# pulled), generates specs, times them with hyperfine (installed with apt-get when missing) and
# prints markdown tables. Talks to nothing but the local Docker engine. Every container and temp
# dir it makes is removed on exit, also on Ctrl-C.
#
# Specs: `indep` has N independent steps `sh -c "echo i > /out/f"`; `chain` has N steps, each
# reading the previous one's output (mounted at /inputs/<prev>) and appending to it. The last
# step of each declares `f` as an artifact, so a build also writes one artifact and its
# provenance, as a real build does.
#
# Settings (environment):
#   BENCH_STEPS="10 50 100 200"  step counts for (c)
#   BENCH_COLD_STEPS=20          step count for (b)
#   BENCH_CACHED_RUNS=20         timed runs per cached benchmark (after BENCH_CACHED_WARMUP=3)
#   BENCH_COLD_RUNS=5            timed runs for (b) (after one warmup run)
#   BENCH_GROWTH_RUNS=3          timed runs per cold benchmark of (c) (no warmup: (b) warmed up)
#   BENCH_RESULTS=benches/results  where hyperfine's JSON and summary.md go (replaced each run)
#   BENCH_QUICK=1                a smoke test of the script: 10 steps, 3 runs, 1 cached warmup
# Takes about 12-15 minutes on a quiet 2-core machine with the defaults (about 20 under a load
# average of 8).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

STEPS=${BENCH_STEPS:-"10 50 100 200"}
COLD_N=${BENCH_COLD_STEPS:-20}
CACHED_RUNS=${BENCH_CACHED_RUNS:-20}
CACHED_WARMUP=${BENCH_CACHED_WARMUP:-3}
COLD_RUNS=${BENCH_COLD_RUNS:-5}
GROWTH_RUNS=${BENCH_GROWTH_RUNS:-3}
RESULTS=${BENCH_RESULTS:-benches/results}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  STEPS=10 COLD_N=10 CACHED_RUNS=3 CACHED_WARMUP=1 COLD_RUNS=3 GROWTH_RUNS=3
fi

# shellcheck source=benches/lib.sh
source benches/lib.sh
say() { printf '[bench] %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- tools ---------------------------------------------------------------------------------------
bench_tools hyperfine jq
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (try: bash scripts/ensure-docker.sh)"

say "building the release binary"
cargo build --release --locked >&2
SEALROOM=$ROOT/target/release/sealroom
export SEALROOM

say "importing the busybox image"
REF=$(bash sandbox/busybox/build.sh | tail -n 1)
[[ $REF =~ ^sealroom/busybox@(sha256:[0-9a-f]{64})$ ]] || die "sandbox/busybox/build.sh printed '$REF'"
IMAGE_ID=${BASH_REMATCH[1]}

# --- scratch space and cleanup ---------------------------------------------------------------------
TOKEN=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
PREFIX="bench-$TOKEN"            # every step name starts with it: sealroom labels its containers
BASE_LABEL="sealroom-bench=$TOKEN" # on the baseline's containers
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sealroom-bench.XXXXXX")
# hyperfine runs in the background (see `bench`) so that a signal reaches the trap at once;
# hyperfine itself carries on after Ctrl-C, so the trap stops it and everything under it.
CHILD=
stop_child() {
  [ -n "$CHILD" ] || return 0
  stop_tree "$CHILD"
  CHILD=
}
cleanup() {
  local status=$? ids
  stop_child
  ids=$(
    {
      docker ps -aq --filter "label=$BASE_LABEL"
      docker ps -a --filter label=dev.sealroom.step --format '{{.ID}} {{.Label "dev.sealroom.step"}}' |
        awk -v p="$PREFIX-" 'index($2, p) == 1 { print $1 }'
    } 2>/dev/null || true
  )
  if [ -n "$ids" ]; then
    say "removing leftover containers: $(echo $ids)"
    # shellcheck disable=SC2086 # one id per word
    docker rm -f $ids >/dev/null 2>&1 || true
  fi
  bash "$ROOT/benches/wipe.sh" "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash benches/wipe.sh "$RESULTS"
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)

HF=(hyperfine -N --style basic)
# bench ARGS...: hyperfine with ARGS, its report on stderr.
bench() {
  local status=0
  "${HF[@]}" "$@" >&2 &
  CHILD=$!
  wait "$CHILD" || status=$?
  CHILD=
  return "$status"
}

# --- (a) and (c): fully cached rebuilds ------------------------------------------------------------
cached_steps=$(printf '%s\n' $STEPS 50 | sort -nu | tr '\n' ' ')
for n in $cached_steps; do
  for kind in indep chain; do
    dir=$WORK/cached-$kind-$n
    mkdir -p "$dir"
    gen_spec "$kind" "$n" "$dir/sealroom.toml" "$REF" "$PREFIX"
    say "cached rebuild, $kind, $n steps: priming the store"
    "$SEALROOM" build "$dir/sealroom.toml" --store "$dir/store" --out "$dir/out" --format json \
      >"$dir/cold.json" 2>"$dir/cold.log" || { cat "$dir/cold.log" >&2; die "priming build failed"; }
    check_report "$dir/cold.json" "$n" false
    bench --warmup "$CACHED_WARMUP" --runs "$CACHED_RUNS" \
      --export-json "$RESULTS/cached-$kind-$n.json" \
      -n "cached $kind $n" \
      "$SEALROOM build $dir/sealroom.toml --store $dir/store --out $dir/out"
    "$SEALROOM" build "$dir/sealroom.toml" --store "$dir/store" --out "$dir/out" --format json \
      >"$dir/warm.json" 2>/dev/null
    check_report "$dir/warm.json" "$n" true
    bash benches/wipe.sh "$dir"
  done
done

# --- (b): a cold 20-step build against bare docker run ------------------------------------------
# cold_bench N RUNS WARMUP NAME: bare docker, sealroom --jobs 1 (the same sequential work), and for
# (b) also the engine API floor (benches/api-seq.sh, both network settings), sealroom's default
# --jobs and the chain spec. Every sealroom run gets a new store.
cold_bench() {
  local n=$1 runs=$2 warmup=$3 name=$4
  local dir=$WORK/cold-$n
  mkdir -p "$dir/docker-out"
  chmod 0777 "$dir/docker-out"
  gen_spec indep "$n" "$dir/indep.toml" "$REF" "$PREFIX"
  gen_spec chain "$n" "$dir/chain.toml" "$REF" "$PREFIX"
  local cmds=(
    -n "docker run x$n" --prepare true
    "bash $ROOT/benches/docker-seq.sh $IMAGE_ID $n $dir/docker-out $BASE_LABEL"
    -n "sealroom --jobs 1" --prepare "bash $ROOT/benches/wipe.sh $dir/store $dir/out"
    "$SEALROOM build $dir/indep.toml --store $dir/store --out $dir/out --no-cache --jobs 1"
  )
  if [ "$name" = b ]; then
    cmds+=(
      -n "engine API x$n, NetworkMode none" --prepare true
      "bash $ROOT/benches/api-seq.sh $IMAGE_ID $n $dir/docker-out $BASE_LABEL none"
      -n "engine API x$n, NetworkDisabled (as sealroom)" --prepare true
      "bash $ROOT/benches/api-seq.sh $IMAGE_ID $n $dir/docker-out $BASE_LABEL disabled"
      -n "sealroom (default --jobs = $(nproc))" --prepare "bash $ROOT/benches/wipe.sh $dir/store $dir/out"
      "$SEALROOM build $dir/indep.toml --store $dir/store --out $dir/out --no-cache"
      -n "sealroom chain" --prepare "bash $ROOT/benches/wipe.sh $dir/store $dir/out"
      "$SEALROOM build $dir/chain.toml --store $dir/store --out $dir/out --no-cache"
    )
  fi
  say "cold, $n steps ($runs runs)"
  bench --warmup "$warmup" --runs "$runs" --export-json "$RESULTS/cold-$n.json" "${cmds[@]}"
  # One more sealroom run, with its report: where inside a step the time goes.
  bash benches/wipe.sh "$dir/store" "$dir/out"
  local t0 t1
  t0=$(date +%s%N)
  "$SEALROOM" build "$dir/indep.toml" --store "$dir/store" --out "$dir/out" --no-cache --jobs 1 \
    --format json >"$RESULTS/report-$n.json" 2>/dev/null
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 )) >"$RESULTS/report-$n.wall-ms"
  check_report "$RESULTS/report-$n.json" "$n" false
  bash benches/wipe.sh "$dir"
}

cold_bench "$COLD_N" "$COLD_RUNS" 1 b

# --- (c): cold growth -------------------------------------------------------------------------
for n in $STEPS; do
  [ "$n" = "$COLD_N" ] || cold_bench "$n" "$GROWTH_RUNS" 0 c
done

# --- where a container's time goes: the engine's own cost, step by step ----------------------------
say "timing docker create / start / rm"
probe=$WORK/probe
mkdir -p "$probe"
chmod 0777 "$probe"
ms() { echo $(( ($2 - $1) / 1000000 )); }
: >"$RESULTS/phases.tsv"
for i in 1 2 3 4 5 6 7 8 9 10; do
  t0=$(date +%s%N)
  id=$(docker create --network none --label "$BASE_LABEL" -v "$probe:/out" "$IMAGE_ID" sh -c "echo $i > /out/f")
  t1=$(date +%s%N)
  docker start -a "$id" >/dev/null
  t2=$(date +%s%N)
  docker rm "$id" >/dev/null
  t3=$(date +%s%N)
  t4=$(date +%s%N)
  docker version --format '{{.Server.Version}}' >/dev/null
  t5=$(date +%s%N)
  printf '%s\t%s\t%s\t%s\n' "$(ms "$t0" "$t1")" "$(ms "$t1" "$t2")" "$(ms "$t2" "$t3")" "$(ms "$t4" "$t5")" \
    >>"$RESULTS/phases.tsv"
done

# --- summary ---------------------------------------------------------------------------------
summary() {
  local n f
  echo "## sealroom benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (+ local changes)')"
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(free -h | awk '/^Mem:/ { print $2 }') RAM, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- Docker engine $(docker version --format '{{.Server.Version}}'), storage driver $(docker info --format '{{.Driver}}'); hyperfine $(hyperfine --version | cut -d' ' -f2)"
  echo "- image: $REF"
  echo
  echo "### (a) fully cached rebuild (goal: 50 steps under 50 ms)"
  echo
  echo "| steps | spec | mean ± σ (ms) | min (ms) | max (ms) | per step (ms) | runs |"
  echo "|---:|---|---:|---:|---:|---:|---:|"
  for n in $cached_steps; do
    for kind in indep chain; do
      jq -r --arg n "$n" --arg k "$kind" '.results[0] |
        "| \($n) | \($k) | \(.mean*1000*10|round/10) ± \(.stddev*1000*10|round/10) | \(.min*1000*10|round/10) | \(.max*1000*10|round/10) | \(.mean*1000/($n|tonumber)*100|round/100) | \(.times|length) |"' \
        "$RESULTS/cached-$kind-$n.json"
    done
  done
  local lo hi
  lo=$(printf '%s\n' $cached_steps | head -n 1) hi=$(printf '%s\n' $cached_steps | tail -n 1)
  if [ "$lo" != "$hi" ]; then
    echo
    for kind in indep chain; do
      jq -rn --slurpfile a "$RESULTS/cached-$kind-$lo.json" --slurpfile b "$RESULTS/cached-$kind-$hi.json" \
        --arg k "$kind" --argjson lo "$lo" --argjson hi "$hi" \
        '"Marginal cost of a cached step (\($k), \($lo) to \($hi) steps): \((($b[0].results[0].mean - $a[0].results[0].mean) / ($hi - $lo) * 1000 * 1000 | round) / 1000) ms."'
    done
  fi
  echo
  echo "### (b) and (c) cold build against bare \`docker run --rm --network none\` (goal: at most 1.2x)"
  echo
  echo "| steps | command | mean ± σ (s) | per step (ms) | vs docker run | runs |"
  echo "|---:|---|---:|---:|---:|---:|"
  for n in $(printf '%s\n' "$COLD_N" $STEPS | sort -nu); do
    f=$RESULTS/cold-$n.json
    [ -f "$f" ] || continue
    jq -r --arg n "$n" '.results[0].mean as $base | .results[] |
      "| \($n) | \(.command) | \(.mean*100|round/100) ± \(.stddev*100|round/100) | \(.mean*1000/($n|tonumber)|round) | \(.mean/$base*100|round/100|tostring|if test("\\.") then . else . + ".0" end)x | \(.times|length) |"' "$f"
  done
  echo
  echo "### Inside a cold sealroom step (--jobs 1, from \`--format json\`)"
  echo
  echo "| steps | step time, mean (ms) | min (ms) | max (ms) | sum of steps (s) | wall of that build (s) |"
  echo "|---:|---:|---:|---:|---:|---:|"
  for f in "$RESULTS"/report-*.json; do
    n=$(jq '.steps | length' "$f")
    jq -r --arg n "$n" --argjson wall "$(cat "${f%.json}.wall-ms")" '[.steps[].seconds] as $s |
      "| \($n) | \(($s|add)/($s|length)*1000|round) | \($s|min*1000|round) | \($s|max*1000|round) | \($s|add*100|round/100) | \($wall/10|round/100) |"' "$f"
  done | sort -t'|' -k2,2n
  echo
  echo "### The Docker engine's own cost per container (docker CLI, 10 samples, ms)"
  echo
  echo "| phase | mean | min | max |"
  echo "|---|---:|---:|---:|"
  local col label
  for col in 1 2 3 4; do
    label=$(sed -n "${col}p" <<<$'docker create\ndocker start -a (run and wait)\ndocker rm\ndocker version (CLI round trip alone)')
    awk -F'\t' -v c="$col" -v l="$label" '{ s += $c; if (NR == 1 || $c < lo) lo = $c; if ($c > hi) hi = $c }
      END { printf "| %s | %.0f | %d | %d |\n", l, s / NR, lo, hi }' "$RESULTS/phases.tsv"
  done
}
summary | tee "$RESULTS/summary.md"
say "raw results: $RESULTS"
