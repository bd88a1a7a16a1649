#!/usr/bin/env bash
# The corpus benchmark (issue [H]): each spec of build-specs/ built by sealroom, cold (a fresh
# store and `--no-cache`), against the same commands in a plain
# `docker run --rm --network none -u 1000:1000` of the same image, with the release unpacked by
# `tar` and mounted read-only at the same path (/inputs/src). Same machine, same run.
# Goal: sealroom within 1.1x of the plain docker run.
#
# usage: bash benches/corpus.sh [SPEC...]     (default: every spec in build-specs/)
#
# Settings (environment):
#   BENCH_RUNS=3                 timed runs per command (hyperfine --runs), no warm-up
#   BENCH_RESULTS=benches/results  where hyperfine's JSON and corpus.md go
#
# What each side does, timed from start to end:
#   sealroom  `sealroom build SPEC --no-cache --store FRESH --out FRESH`: the archive is fetched
#             from a loopback HTTP server (python3 -m http.server on 127.0.0.1 serving
#             tests/fixtures/upstream/), verified, unpacked, hashed and materialized; the step
#             runs; /out is hashed and stored; artifacts and provenance are written.
#   docker    `tar -xf ARCHIVE --strip-components=1` into a fresh dir, then `docker run` with
#             that dir at /inputs/src (read-only), a fresh host dir at /out, a tmpfs /build
#             (exec, as sealroom's scratch directory) as the working directory, and the same
#             environment variables sealroom sets (SOURCE_DATE_EPOCH, TZ, LC_ALL, LANG, HOME).
# The step's command is the spec's own `run`, read from the TOML. Afterwards the script checks
# that both sides wrote the spec's artifacts and says whether their bytes are the same.
#
# Builds the release binary, makes the images with the recipes in sandbox/ (nothing is pulled),
# talks to nothing but the local Docker engine and 127.0.0.1. Every container, server and temp
# dir it makes is removed on exit, also on Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RUNS=${BENCH_RUNS:-3}
RESULTS=${BENCH_RESULTS:-benches/results}

say() { printf '[corpus] %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

for tool in hyperfine jq python3; do
  if ! command -v "$tool" >/dev/null; then
    say "installing $tool (Debian package)"
    [ "$(id -u)" = 0 ] || die "$tool is missing; install it: sudo apt-get install -y $tool"
    apt-get install -y -qq "$tool" >&2 || { apt-get update -qq >&2 && apt-get install -y -qq "$tool" >&2; }
  fi
done
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (try: bash scripts/ensure-docker.sh)"

if [ $# -gt 0 ]; then specs=("$@"); else
  specs=()
  for dir in build-specs/*/; do specs+=("$(basename "$dir")"); done
fi
for name in "${specs[@]}"; do [ -f "build-specs/$name/sealroom.toml" ] || die "no build-specs/$name/sealroom.toml"; done

say "building the release binary"
cargo build --release --locked >&2
SEALROOM=${CARGO_TARGET_DIR:-$ROOT/target}/release/sealroom
export SEALROOM

# The images the specs name, made (or re-imported) by their recipes: one per repository name.
declare -A IMAGES
image_for() { # image_for REPOSITORY: the pinned reference this machine's recipe prints
  local repo=$1 ref
  if [ -z "${IMAGES[$repo]:-}" ]; then
    case $repo in
      sealroom/debian-gcc) ref=$(bash sandbox/debian-gcc/build.sh | tail -n 1) ;;
      sealroom/debian-cmake) ref=$(bash sandbox/debian/build.sh --name sealroom/debian-cmake gcc libc6-dev make cmake | tail -n 1) ;;
      *) die "no recipe known for the image $repo" ;;
    esac
    [[ $ref =~ ^$repo@sha256:[0-9a-f]{64}$ ]] || die "the recipe for $repo printed '$ref'"
    IMAGES[$repo]=$ref
  fi
  echo "${IMAGES[$repo]}"
}

TOKEN=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sealroom-corpus.XXXXXX")
LABEL="sealroom-bench=$TOKEN"
SERVER_PID=
cleanup() {
  [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true
  local ids
  ids=$(docker ps -aq --filter "label=$LABEL" 2>/dev/null || true)
  [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
  bash benches/wipe.sh "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The archives, from loopback only.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory tests/fixtures/upstream "$port" >"$WORK/http.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/README.md" && break; sleep 0.1; done

mkdir -p "$RESULTS"
rows=()
for name in "${specs[@]}"; do
  w=$WORK/$name
  mkdir -p "$w"
  # The spec's shape: one fetch, one step reading it as /inputs/<fetch>; its run and artifacts.
  python3 - "build-specs/$name/sealroom.toml" "$w" <<'PY'
import hashlib, json, os, sys, tomllib
spec_path, out = sys.argv[1:]
spec = tomllib.load(open(spec_path, "rb"))
fetches, steps = spec.get("fetch", []), spec.get("step", [])
if len(fetches) != 1 or len(steps) != 1 or steps[0].get("inputs") != [fetches[0]["name"]]:
    sys.exit(f"{spec_path}: the corpus benchmark expects one fetch and one step that reads it")
archive = None
for f in sorted(os.listdir("tests/fixtures/upstream")):
    p = os.path.join("tests/fixtures/upstream", f)
    if hashlib.sha256(open(p, "rb").read()).hexdigest() == fetches[0]["sha256"]:
        archive = f
if archive is None:
    sys.exit(f"{spec_path}: no file in tests/fixtures/upstream/ has the sha256 {fetches[0]['sha256']}")
json.dump({
    "image": spec["sandbox"]["image"].split("@")[0],
    "input": fetches[0]["name"],
    "archive": archive,
    "strip": fetches[0].get("strip_components", 0),
    "run": steps[0]["run"],
    "artifacts": steps[0].get("artifacts", []),
    "sde": str(spec.get("source_date_epoch", 0)),
}, open(os.path.join(out, "shape.json"), "w"))
PY
  shape() { jq -r "$1" "$w/shape.json"; }
  ref=$(image_for "$(shape .image)")
  archive=$(shape .archive)
  # The spec with this machine's image and the loopback URL, as the tests make it.
  sed -e "s|^image = .*|image = \"$ref\"|" -e "s|^url = .*|url = \"http://127.0.0.1:$port/$archive\"|" \
    "build-specs/$name/sealroom.toml" >"$w/sealroom.toml"
  mapfile -t run < <(jq -r '.run[]' "$w/shape.json")
  printf -v run_words '%q ' "${run[@]}"
  docker_cmd="tar -C $w/plain/src --strip-components=$(shape .strip) -xf tests/fixtures/upstream/$archive &&"
  docker_cmd+=" docker run --rm --pull never --network none -u 1000:1000 --label $LABEL"
  docker_cmd+=" --tmpfs /build:rw,exec,nosuid,nodev,uid=1000,gid=1000 -w /build"
  docker_cmd+=" -e SOURCE_DATE_EPOCH=$(shape .sde) -e TZ=UTC -e LC_ALL=C -e LANG=C -e HOME=/tmp"
  docker_cmd+=" -v $w/plain/src:/inputs/$(shape .input):ro -v $w/plain/out:/out sha256:${ref##*sha256:} $run_words"
  sealroom_cmd="$SEALROOM build $w/sealroom.toml --no-cache --store $w/store --out $w/out"

  say "$name: $RUNS runs each (image $ref)"
  hyperfine --runs "$RUNS" --style basic --export-json "$RESULTS/corpus-$name.json" \
    -n "sealroom $name" --prepare "bash benches/wipe.sh $w/store $w/out" "$sealroom_cmd" \
    -n "docker run $name" --prepare "bash benches/wipe.sh $w/plain && mkdir -p $w/plain/src $w/plain/out && chmod 0777 $w/plain/out" "$docker_cmd" \
    >&2

  same=yes
  while read -r artifact; do
    [ -f "$w/out/$artifact" ] || die "$name: sealroom wrote no $artifact"
    [ -f "$w/plain/out/$artifact" ] || die "$name: the docker run wrote no $artifact"
    cmp -s "$w/out/$artifact" "$w/plain/out/$artifact" || same=no
  done < <(jq -r '.artifacts[]' "$w/shape.json")
  read -r s_mean s_sd d_mean d_sd < <(jq -r '[.results[0].mean, .results[0].stddev, .results[1].mean, .results[1].stddev] | map((. // 0) * 100 | round / 100) | @tsv' "$RESULTS/corpus-$name.json")
  ratio=$(python3 -c "print(f'{$s_mean / $d_mean:.2f}x')")
  rows+=("| \`build-specs/$name\` | $s_mean ± $s_sd | $d_mean ± $d_sd | $ratio | $same |")
done

{
  echo "| spec | sealroom build --no-cache, fresh store (s) | tar + docker run (s) | sealroom / docker | artifacts byte-identical |"
  echo "|---|---:|---:|---:|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "runs: $RUNS each; $(nproc) CPUs; $(docker version --format 'Docker {{.Server.Version}}'); $(hyperfine --version); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC')"
} | tee "$RESULTS/corpus.md"
