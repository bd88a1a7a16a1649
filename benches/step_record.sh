#!/usr/bin/env bash
# The step record of issue [I], measured side by side in one run; BENCHMARKS.md records the numbers.
#
#   (a) a fully cached rebuild of a spec whose one source is a tree of 10 000 files, 100 MB
#       (100 dirs x 100 files x 10 KiB of random bytes), against `git status` in a git repository
#       of the same files (goal: at most 2x `git status`, and under 50 ms);
#   (b) the fully cached rebuild of 50 steps, benches/run.sh's `indep` and `chain` specs
#       (benches/lib.sh makes them; goal: under 20 ms);
#   (c) an unchanged rebuild of examples/hello-image: `sealroom build --load` against classic
#       `docker build` (goal: at least 10x faster) and against `buildah bud --layers`;
#   (d) SIGINT with 8 running steps (8 independent `sleep 60`, --jobs 8): the time from the signal
#       to sealroom's exit, and that no container is left afterwards.
#
# usage: bash benches/step_record.sh     (or `just bench-record`)
#
# Builds the release binary, imports the busybox image (sandbox/busybox/build.sh; nothing is
# pulled), makes every tree, repository, spec and store in one temp dir, times (a) to (c) with
# hyperfine (-N, warm-up runs first) and (d) with a loop, checks that every build did what it
# claims (a cached rebuild starts no container and writes the right artifact; an unchanged image
# rebuild gives the same image id and the image prints its line) and prints markdown tables; also
# written to $BENCH_RESULTS/step-record.md next to hyperfine's JSON. Installs hyperfine, jq, git
# and buildah (Debian packages) when missing. Talks to nothing but the local Docker engine.
# Every container, image and temp dir it makes is removed on exit, Ctrl-C included (the busybox
# image only if this run imported it). About 3 minutes on a quiet 2-core machine.
#
# Settings (environment):
#   BENCH_RUNS=30          timed runs of each cached rebuild, (a) and (b)
#   BENCH_WARMUP=5         untimed runs before them
#   BENCH_IMAGE_RUNS=10    timed runs of each unchanged image rebuild (c), after 2 untimed ones
#   BENCH_SIGINT_RUNS=5    repetitions of (d)
#   BENCH_BUILDAH_DRIVER   buildah's storage driver (default: overlay, or vfs where overlay fails)
#   BENCH_RESULTS=benches/results/step-record  hyperfine's JSON and step-record.md (replaced)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RUNS=${BENCH_RUNS:-30}
WARMUP=${BENCH_WARMUP:-5}
IMAGE_RUNS=${BENCH_IMAGE_RUNS:-10}
SIGINT_RUNS=${BENCH_SIGINT_RUNS:-5}
RESULTS=${BENCH_RESULTS:-benches/results/step-record}

# shellcheck source=benches/lib.sh
source benches/lib.sh
say() { printf '[record] %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------------
bench_tools hyperfine jq git buildah
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (try: bash scripts/ensure-docker.sh)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M')

say "building the release binary"
cargo build --release --locked >&2
SEALROOM=${CARGO_TARGET_DIR:-$ROOT/target}/release/sealroom
export SEALROOM

# --- scratch space and cleanup -------------------------------------------------------------------
TOKEN=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
PREFIX="rec-$TOKEN"                          # every generated step's name starts with it
IMAGE_REPO="sealroom-bench-$TOKEN/hello-image" # the tags of (c): :docker, :sealroom, :buildah
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sealroom-record.XXXXXX")
A=$WORK/a B=$WORK/b C=$WORK/c D=$WORK/d # the work of (a) to (d)
BUSYBOX_IMPORTED=0   # 1: the busybox image was not in the engine before this run
BUILDAH=()           # buildah with its storage in $WORK, set in (c)
CHILD=               # hyperfine, or the sealroom of (d), while it runs in the background
DOCKER_BUILD=        # the first classic docker build of (c), while it runs

# our_containers [ALL]: ids of the containers of this run's steps (running ones; ALL: any state).
our_containers() {
  docker ps ${1:+-a} --filter label=dev.sealroom.step --format '{{.ID}} {{.Label "dev.sealroom.step"}}' |
    awk -v p="$PREFIX-" 'index($2, p) == 1 { print $1 }'
}
cleanup() {
  local status=$? ids
  trap - INT TERM
  if [ -n "$CHILD" ]; then stop_tree "$CHILD"; CHILD=; fi
  ids=$(our_containers all 2>/dev/null || true)
  if [ -n "$ids" ]; then
    say "removing leftover containers: $(tr '\n' ' ' <<<"$ids")"
    # shellcheck disable=SC2086 # one id per word
    docker rm -f $ids >/dev/null 2>&1 || true
  fi
  docker rmi "$IMAGE_REPO:docker" "$IMAGE_REPO:sealroom" "$IMAGE_REPO:buildah" >/dev/null 2>&1 || true
  if [ -n "$DOCKER_BUILD" ]; then
    say "waiting for docker build to finish, to remove its images"
    wait "$DOCKER_BUILD" 2>/dev/null || true
  fi
  # Classic docker build keeps an image per instruction: every id its log names that was not in
  # the engine before, newest first so that parents go last.
  if [ -f "$C/docker-cold.log" ]; then
    sed -n 's/^ ---> \([0-9a-f]\{12\}\)$/\1/p' "$C/docker-cold.log" | tac | while read -r id; do
      grep -q "^sha256:$id" "$C/images-before" || docker rmi "$id" >/dev/null 2>&1 || true
    done
  fi
  [ "$BUSYBOX_IMPORTED" = 0 ] || docker rmi "sealroom/busybox:latest" >/dev/null 2>&1 || true
  if [ ${#BUILDAH[@]} -gt 0 ]; then
    "${BUILDAH[@]}" rm --all >/dev/null 2>&1 || true
  fi
  # Whatever buildah's storage driver left mounted under the temp dir.
  awk -v w="$WORK" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo 2>/dev/null | sort -r |
    while read -r mount; do umount -l "$mount" 2>/dev/null || true; done
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
PINNED=$(grep -o 'sealroom/busybox@sha256:[0-9a-f]\{64\}' examples/hello-image/sealroom.toml | head -n 1)
docker image inspect "${PINNED#*@}" >/dev/null 2>&1 || BUSYBOX_IMPORTED=1
REF=$(SEALROOM_STORE=$WORK/import-store bash sandbox/busybox/build.sh | tail -n 1)
[[ $REF =~ ^sealroom/busybox@(sha256:[0-9a-f]{64})$ ]] || die "sandbox/busybox/build.sh printed '$REF'"
IMAGE_ID=${BASH_REMATCH[1]}
[ "$REF" = "$PINNED" ] || die "the busybox image is $REF, but examples/hello-image pins $PINNED"

HF=(hyperfine -N --style basic)
# bench ARGS...: hyperfine with ARGS in the background (so that Ctrl-C reaches the trap at once),
# its report on stderr. The page cache is written back first (`sync`), so that the 100 MB an
# earlier case wrote is not flushed during the next one's timings (it slowed every fsync there).
bench() {
  local status=0
  sync
  "${HF[@]}" "$@" >&2 &
  CHILD=$!
  wait "$CHILD" || status=$?
  CHILD=
  return "$status"
}
now() { date +%s.%N; }
# created_between SINCE UNTIL PATTERN: how many containers whose dev.sealroom.step label matches
# the regular expression PATTERN the engine created in that time.
created_between() {
  docker events --since "$1" --until "$2" --filter type=container --filter event=create \
    --format '{{index .Actor.Attributes "dev.sealroom.step"}}' | grep -cE "$3" || true
}
# report_build NAME SPEC STORE OUT [ARGS...]: one sealroom build, outside the timed runs (the
# first, which fills the store, and one after them), its `--format json` report in $WORK/NAME.json.
report_build() {
  local name=$1 spec=$2 store=$3 out=$4
  shift 4
  "$SEALROOM" build "$spec" --store "$store" --out "$out" --format json "$@" \
    >"$WORK/$name.json" 2>"$WORK/$name.log" || { cat "$WORK/$name.log" >&2; die "$name: the build failed"; }
}
# show PATH: the path as the tables print it, with the temp dir as $W and the binary as $S.
show() { local s=${1//"$SEALROOM"/\$S}; echo "${s//"$WORK"/\$W}"; }

# --- (a) a cached rebuild of 10 000 files / 100 MB against git status ----------------------------
say "(a) making the tree: 100 dirs x 100 files x 10 KiB of random bytes"
mkdir -p "$A/tree"
for d in $(seq -w 0 99); do
  mkdir "$A/tree/d$d"
  head -c $((100 * 10240)) /dev/urandom | split -b 10240 -a 2 -d - "$A/tree/d$d/f"
done
# Written an hour ago, as a real checkout's files were: git and sealroom's stat cache both read a
# file again while its mtime is too recent to trust ("racy"), which no real tree is for long.
find "$A/tree" -exec touch -h -d "@$(($(date +%s) - 3600))" {} +
[ "$(find "$A/tree" -type f | wc -l)" = 10000 ] || die "(a): the tree does not hold 10 000 files"
say "(a) the same files in a git repository"
cp -a "$A/tree" "$A/git"
git -C "$A/git" init -q
git -C "$A/git" add -A
git -C "$A/git" -c user.name=bench -c user.email=bench@localhost commit -q -m "10 000 files"
cat >"$A/sealroom.toml" <<EOF
version = 1
name = "bench-10k"

[sandbox]
image = "$REF"

[[source]]
name = "big"
path = "tree"

[[step]]
name = "$PREFIX-scan"
inputs = ["big"]
run = ["sh", "-c", "find /inputs/big -type f | wc -l > /out/count"]
artifacts = ["count"]
EOF
say "(a) priming the store"
report_build a-cold "$A/sealroom.toml" "$A/store" "$A/out"
check_report "$WORK/a-cold.json" 1 false
[ "$(tr -d ' ' <"$A/out/count")" = 10000 ] || die "(a): the step counted $(cat "$A/out/count") files, not 10000"
A_SEALROOM="$SEALROOM build $A/sealroom.toml --store $A/store --out $A/out"
A_GIT="git -C $A/git status"
say "(a) $WARMUP warm-up and $RUNS timed runs each"
t0=$(now)
bench --warmup "$WARMUP" --runs "$RUNS" --export-json "$RESULTS/a-10k.json" \
  -n "sealroom build (cached, 10 000 files)" "$A_SEALROOM" \
  -n "git status" "$A_GIT"
t1=$(now)
A_CREATED=$(created_between "$t0" "$t1" "^$PREFIX-")
[ "$A_CREATED" = 0 ] || die "(a): the cached rebuilds created $A_CREATED containers"
rm -f "$A/out/count"
report_build a-warm "$A/sealroom.toml" "$A/store" "$A/out"
check_report "$WORK/a-warm.json" 1 true
[ "$(tr -d ' ' <"$A/out/count")" = 10000 ] || die "(a): the cached rebuild wrote a wrong count"
[ -z "$(git -C "$A/git" status --porcelain)" ] || die "(a): git status found changes in the repository"

# --- (b) the 50-step cached rebuild --------------------------------------------------------------
mkdir -p "$B"
B_CMDS=()
for kind in indep chain; do
  gen_spec "$kind" 50 "$B/$kind.toml" "$REF" "$PREFIX-$kind"
  say "(b) priming the store: 50 steps, $kind"
  report_build "b-$kind-cold" "$B/$kind.toml" "$B/store-$kind" "$B/out-$kind"
  check_report "$WORK/b-$kind-cold.json" 50 false
  B_CMDS+=(-n "sealroom build (cached, 50 steps, $kind)" "$SEALROOM build $B/$kind.toml --store $B/store-$kind --out $B/out-$kind")
done
say "(b) $WARMUP warm-up and $RUNS timed runs each"
t0=$(now)
bench --warmup "$WARMUP" --runs "$RUNS" --export-json "$RESULTS/b-50.json" "${B_CMDS[@]}"
t1=$(now)
B_CREATED=$(created_between "$t0" "$t1" "^$PREFIX-")
[ "$B_CREATED" = 0 ] || die "(b): the cached rebuilds created $B_CREATED containers"
for kind in indep chain; do
  rm -f "$B/out-$kind/f"
  report_build "b-$kind-warm" "$B/$kind.toml" "$B/store-$kind" "$B/out-$kind"
  check_report "$WORK/b-$kind-warm.json" 50 true
  want=$(if [ "$kind" = indep ]; then echo 50; else seq 1 50; fi)
  [ "$(cat "$B/out-$kind/f")" = "$want" ] || die "(b): the $kind artifact is wrong"
done

# --- (c) the unchanged rebuild of examples/hello-image ---------------------------------------------
CTX=$C/ctx
mkdir -p "$C"
cp -r examples/hello-image "$CTX"
rm -rf "$CTX/sealroom-out"
EXPECTED="$(cat "$CTX/greeting.txt") from sealroom in /app"

say "(c) classic docker build, first build"
docker images -aq --no-trunc >"$C/images-before" # so that the cleanup removes only what the build made
# In a session of its own, where Ctrl-C does not reach it: the engine would go on building after
# the client died, making images that its log does not name; the cleanup waits for it instead.
DOCKER_BUILDKIT=0 setsid -w docker build --build-arg BASE="$IMAGE_ID" -t "$IMAGE_REPO:docker" "$CTX" >"$C/docker-cold.log" 2>&1 &
DOCKER_BUILD=$!
status=0
wait "$DOCKER_BUILD" || status=$?
DOCKER_BUILD=
[ "$status" = 0 ] || { cat "$C/docker-cold.log" >&2; die "(c): docker build failed"; }

say "(c) sealroom build --load, first build"
report_build c-cold "$CTX/sealroom.toml" "$C/store" "$C/out" --load --tag "$IMAGE_REPO:sealroom"
check_report "$WORK/c-cold.json" 2 false

# buildah: its own storage in the temp dir, the base from the engine through `docker save`.
# buildah 1.28 (Debian 12) cannot build on an image that has layers but no `history` in its
# config, as `sealroom image import` makes them ("committing container for step ... internal error:
# history lists 1 non-empty layers, but we have 2 layers on disk"; fixed upstream by buildah
# PR #5276). So the saved archive gets one history entry for its one layer; the layer, the
# environment and everything else are the same bytes.
say "(c) buildah bud --layers, first build"
mkdir -p "$C/base"
docker save "$IMAGE_ID" -o "$C/base.tar"
tar -C "$C/base" -xf "$C/base.tar"
config=$(jq -r '.[0].Config' "$C/base/manifest.json")
jq -c '.history = [{"created": "1970-01-01T00:00:00Z", "created_by": "sealroom image import (sandbox/busybox/build.sh)"}]' \
  "$C/base/$config" >"$C/base/config.json"
rm "$C/base/$config"
BUILDAH_BASE=$(sha256sum "$C/base/config.json" | cut -c1-64)
mv "$C/base/config.json" "$C/base/$BUILDAH_BASE.json"
jq -c --arg c "$BUILDAH_BASE.json" '.[0].Config = $c | .[0].RepoTags = null' "$C/base/manifest.json" >"$C/base/m.json"
mv "$C/base/m.json" "$C/base/manifest.json"
rm -f "$C/base/repositories"
tar -C "$C/base" -cf "$C/base-history.tar" .
buildah_first_build() {
  BUILDAH=(buildah --root "$C/buildah/root" --runroot "$C/buildah/run" --storage-driver "$1")
  "${BUILDAH[@]}" pull -q "docker-archive:$C/base-history.tar" >"$C/buildah-pull.log" 2>&1 &&
    [ "$(tail -n 1 "$C/buildah-pull.log")" = "$BUILDAH_BASE" ] &&
    "${BUILDAH[@]}" bud --layers --pull=never --build-arg BASE="$BUILDAH_BASE" -t "$IMAGE_REPO:buildah" "$CTX" \
      >"$C/buildah-cold-$1.log" 2>&1
}
BUILDAH_DRIVER=${BENCH_BUILDAH_DRIVER:-overlay}
if ! buildah_first_build "$BUILDAH_DRIVER"; then
  cat "$C/buildah-pull.log" "$C/buildah-cold-$BUILDAH_DRIVER.log" >&2 2>/dev/null || true
  [ -z "${BENCH_BUILDAH_DRIVER:-}" ] || die "(c): buildah failed with the storage driver $BUILDAH_DRIVER"
  say "(c) buildah failed with the overlay driver; again with vfs"
  "${BUILDAH[@]}" rm --all >/dev/null 2>&1 || true
  bash benches/wipe.sh "$C/buildah"
  BUILDAH_DRIVER=vfs
  buildah_first_build vfs || { cat "$C/buildah-pull.log" "$C/buildah-cold-vfs.log" >&2; die "(c): buildah failed with vfs too"; }
fi

docker_id() { docker image inspect -f '{{.Id}}' "$1"; }
buildah_id() { "${BUILDAH[@]}" images --no-trunc --format '{{.ID}}' "localhost/$IMAGE_REPO:buildah"; }
ids_before="$(docker_id "$IMAGE_REPO:docker") $(docker_id "$IMAGE_REPO:sealroom") $(buildah_id)"
C_DOCKER="env DOCKER_BUILDKIT=0 docker build -q --build-arg BASE=$IMAGE_ID -t $IMAGE_REPO:docker $CTX"
C_BUILDAH="${BUILDAH[*]} bud --layers --pull=never -q --build-arg BASE=$BUILDAH_BASE -t $IMAGE_REPO:buildah $CTX"
C_SEALROOM="$SEALROOM build $CTX/sealroom.toml --store $C/store --out $C/out --load --tag $IMAGE_REPO:sealroom"
say "(c) 2 warm-up and $IMAGE_RUNS timed runs each"
t0=$(now)
# buildah last: its rebuilds write (and sync) enough that whatever runs right after them is slowed.
bench --warmup 2 --runs "$IMAGE_RUNS" --export-json "$RESULTS/c-image.json" \
  -n "docker build (classic), unchanged" "$C_DOCKER" \
  -n "sealroom build --load, unchanged" "$C_SEALROOM" \
  -n "buildah bud --layers, unchanged" "$C_BUILDAH"
t1=$(now)
C_CREATED=$(created_between "$t0" "$t1" '^(build-1|final-1)$')
[ "$C_CREATED" = 0 ] || die "(c): the unchanged sealroom rebuilds created $C_CREATED containers"
ids_after="$(docker_id "$IMAGE_REPO:docker") $(docker_id "$IMAGE_REPO:sealroom") $(buildah_id)"
[ "$ids_before" = "$ids_after" ] || die "(c): an unchanged rebuild changed an image id: $ids_before -> $ids_after"
report_build c-warm "$CTX/sealroom.toml" "$C/store" "$C/out" --load --tag "$IMAGE_REPO:sealroom"
check_report "$WORK/c-warm.json" 2 true
"${BUILDAH[@]}" push -q "localhost/$IMAGE_REPO:buildah" "docker-daemon:$IMAGE_REPO:buildah" >/dev/null 2>&1 ||
  die "(c): buildah push to the engine failed"
for tool in docker sealroom buildah; do
  said=$(docker run --rm --pull never --network none "$IMAGE_REPO:$tool")
  [ "$said" = "$EXPECTED" ] || die "(c): the $tool image says '$said', not '$EXPECTED'"
done

# --- (d) SIGINT with 8 running steps ---------------------------------------------------------------
mkdir -p "$D"
{
  printf 'version = 1\nname = "bench-sigint"\n\n[sandbox]\nimage = "%s"\n' "$REF"
  for i in 1 2 3 4 5 6 7 8; do printf '\n[[step]]\nname = "%s-sleep%d"\nrun = ["sleep", "60"]\n' "$PREFIX" "$i"; done
} >"$D/sealroom.toml"
D_CMD="$SEALROOM build $D/sealroom.toml --store $D/store --out $D/out --jobs 8 --no-cache"
: >"$RESULTS/d-sigint.tsv"
for run in $(seq 1 "$SIGINT_RUNS"); do
  say "(d) run $run of $SIGINT_RUNS: 8 steps of sleep 60, SIGINT once all 8 run"
  t_start=$(date +%s%N)
  # shellcheck disable=SC2086 # the command's words
  $D_CMD >"$D/run-$run.log" 2>&1 &
  CHILD=$!
  running=0
  for _ in $(seq 600); do
    running=$(our_containers | wc -l)
    [ "$running" -lt 8 ] || break
    kill -0 "$CHILD" 2>/dev/null || { cat "$D/run-$run.log" >&2; die "(d): sealroom exited before its 8 steps ran"; }
    sleep 0.05
  done
  [ "$running" = 8 ] || die "(d): only $running of the 8 steps were running after 30 s"
  t_running=$(date +%s%N)
  kill -INT "$CHILD"
  status=0
  wait "$CHILD" || status=$?
  t_exit=$(date +%s%N)
  CHILD=
  left=$(our_containers all | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$(((t_running - t_start) / 1000000))" "$(((t_exit - t_running) / 1000000))" \
    "$status" "$left" >>"$RESULTS/d-sigint.tsv"
  [ "$left" = 0 ] || { say "(d) $left containers were left; removing them"; our_containers all | xargs -r docker rm -f >/dev/null; }
done

# --- tables ------------------------------------------------------------------------------------
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
# ms FILE INDEX FIELD: a field of one of hyperfine's results, in ms with one decimal.
ms() { jq -r --argjson i "$2" ".results[\$i].$3 * 10000 | round / 10" "$1"; }
ratio() { jq -rn --argjson a "$1" --argjson b "$2" '$a / $b * 100 | round / 100'; }
yes_no() { if jq -en "$1" >/dev/null; then echo "**yes**"; else echo "**no**"; fi; }
# hf_rows FILE: one table row per command of one hyperfine run.
hf_rows() {
  jq -r '.results[] | "| \(.command) | \(.median * 10000 | round / 10) | \(.mean * 10000 | round / 10) ± \(.stddev * 10000 | round / 10) | \(.min * 10000 | round / 10) | \(.max * 10000 | round / 10) | \(.times | length) |"' "$1"
}
HF_HEAD='| command | median (ms) | mean ± σ (ms) | min (ms) | max (ms) | runs |
|---|---:|---:|---:|---:|---:|'

a_s=$(ms "$RESULTS/a-10k.json" 0 median) a_g=$(ms "$RESULTS/a-10k.json" 1 median)
a_ratio=$(ratio "$a_s" "$a_g")
b_i=$(ms "$RESULTS/b-50.json" 0 median) b_c=$(ms "$RESULTS/b-50.json" 1 median)
c_d=$(ms "$RESULTS/c-image.json" 0 median) c_s=$(ms "$RESULTS/c-image.json" 1 median) c_b=$(ms "$RESULTS/c-image.json" 2 median)
c_vs_d=$(ratio "$c_d" "$c_s") c_vs_b=$(ratio "$c_b" "$c_s")
d_med=$(cut -f3 "$RESULTS/d-sigint.tsv" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
d_max=$(cut -f3 "$RESULTS/d-sigint.tsv" | sort -n | tail -n 1)
d_left=$(awk -F'\t' '{ s += $5 } END { print s }' "$RESULTS/d-sigint.tsv")
d_codes=$(cut -f4 "$RESULTS/d-sigint.tsv" | sort -u | paste -sd, -)

summary() {
  local commit
  commit="$(git rev-parse --short HEAD) (\`$(git rev-parse --abbrev-ref HEAD)\`)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ', + local changes')"
  echo "## Step record (issue [I]), $STARTED UTC"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| date | $STARTED to $(date -u '+%H:%M') UTC |"
  echo "| commit | \`${commit%% *}\` ${commit#* } |"
  echo "| CPU | $(nproc) (\`nproc\`), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') |"
  echo "| memory | $(free -h | awk '/^Mem:/ { print $2 }') (\`free -h\`), swap $(free -h | awk '/^Swap:/ { print $2 }') |"
  echo "| load average | $LOAD_BEFORE before, $LOAD_AFTER after |"
  echo "| Docker | engine $(docker version --format '{{.Server.Version}}'), storage driver $(docker info --format '{{.Driver}}') |"
  echo "| hyperfine | $(hyperfine --version | cut -d' ' -f2) |"
  echo "| git | $(git --version | cut -d' ' -f3) |"
  echo "| buildah | $(buildah --version | cut -d' ' -f3), storage driver $BUILDAH_DRIVER |"
  echo
  echo "### Results against the goals (medians)"
  echo
  echo "| goal | result | met? |"
  echo "|---|---|---|"
  echo "| (a) cached rebuild, 10 000 files / 100 MB: at most 2x \`git status\` on the same tree, and under 50 ms | $a_s ms against $a_g ms: **${a_ratio}x** | $(yes_no "$a_ratio <= 2 and $a_s < 50") |"
  echo "| (b) cached rebuild of 50 steps under 20 ms | $b_i ms (indep), $b_c ms (chain) | $(yes_no "$b_i < 20 and $b_c < 20") |"
  echo "| (c) unchanged rebuild of examples/hello-image at least 10x faster than classic \`docker build\` | $c_s ms against $c_d ms: **${c_vs_d}x faster**; against \`buildah bud --layers\` ($c_b ms): ${c_vs_b}x faster | $(yes_no "$c_vs_d >= 10") |"
  echo "| (d) SIGINT with 8 running steps: exit, no container left | $d_med ms median, $d_max ms max ($SIGINT_RUNS runs); exit codes $d_codes; containers left: $d_left | $(if [ "$d_left" = 0 ]; then echo "no container left"; else echo "**no**: $d_left left"; fi) |"
  echo
  echo "### (a) fully cached rebuild of 10 000 files / 100 MB against \`git status\`"
  echo
  echo "$HF_HEAD"
  hf_rows "$RESULTS/a-10k.json"
  echo
  echo "Containers created during the timed runs: $A_CREATED. Commands:"
  echo "\`$(show "$A_SEALROOM")\`, \`$(show "$A_GIT")\` (hyperfine -N --warmup $WARMUP --runs $RUNS)."
  echo
  echo "### (b) fully cached rebuild of 50 steps"
  echo
  echo "$HF_HEAD"
  hf_rows "$RESULTS/b-50.json"
  echo
  echo "Containers created during the timed runs: $B_CREATED. Command: \`$(show "$SEALROOM build $B/indep.toml --store $B/store-indep --out $B/out-indep")\` (and chain)."
  echo
  echo "### (c) unchanged rebuild of examples/hello-image"
  echo
  echo "$HF_HEAD"
  hf_rows "$RESULTS/c-image.json"
  echo
  echo "sealroom against docker build: ${c_vs_d}x faster; against buildah: ${c_vs_b}x faster. Image ids unchanged by the rebuilds; each image prints \`$EXPECTED\`. Commands:"
  echo
  echo "- \`$(show "$C_DOCKER")\`"
  echo "- \`$(show "$C_BUILDAH")\`"
  echo "- \`$(show "$C_SEALROOM")\`"
  echo
  echo "### (d) SIGINT with 8 running steps (\`sleep 60\` each, --jobs 8)"
  echo
  echo "| run | start to 8 running (ms) | SIGINT to exit (ms) | exit code | containers left |"
  echo "|---:|---:|---:|---:|---:|"
  awk -F'\t' '{ printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }' "$RESULTS/d-sigint.tsv"
  echo
  echo "SIGINT to exit: median $d_med ms, max $d_max ms. Command: \`$(show "$D_CMD")\`, SIGINT once \`docker ps\` lists 8 running containers of its steps."
}
summary | tee "$RESULTS/step-record.md"
say "raw results: $RESULTS"
