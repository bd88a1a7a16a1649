#!/usr/bin/env bash
# The remote cache of issue [N]: a runner with an empty store served by a shared REAPI cache
# (runner B) against the runner that built and uploaded the same spec (runner A, cold: its own
# empty store and nothing in the cache for it), and against a local cached rebuild (runner A's
# store again, no remote cache), same run. BENCHMARKS.md records the numbers.
#
# usage: bash benches/remote_cache.sh     (or `just bench-remote`)
#
# Three specs; each round runs A, B and the local rebuild of each:
#   six      six busybox steps: a chain gen -> c1 -> c2, a fan-out gen -> fan, a fan-in
#            {c1, fan} -> c2, a step writing 6 MiB (above BuildGrid's batch limit: ByteStream
#            both ways) and an independent one;
#   chain50  the 50-step chain of benches/run.sh (issue [C]; benches/lib.sh `gen_spec chain 50`);
#   bzip2    build-specs/bzip2 (the cheapest spec of build-specs/), its archive served from
#            tests/fixtures/upstream/ by a loopback HTTP server and its image made by
#            sandbox/debian-gcc/build.sh, as benches/corpus.sh does it.
# Each round gives every step an env value of its own, so runner A is cold in the cache too; A
# signs with a key, B trusts it. Builds the release binary, imports the images, installs
# BuildGrid 0.4.4 (scripts/buildgrid.sh) and runs it on a free 127.0.0.1 port with a disk CAS in
# a temp dir. Checks each report and the engine's events: A ran every step and the engine
# created a container for each; B took every step from the remote cache and the engine created
# no container for B's build id; the local rebuild took every step from A's store, none from the
# remote, no container; B and the local rebuild wrote A's artifacts byte for byte. Prints a
# markdown table. Talks to nothing but the local Docker engine, that server and the loopback
# HTTP server; everything it makes is removed on exit.
#
# Settings (environment):
#   BENCH_ROUNDS=5                    rounds of (A, B, local) per spec
#   BENCH_SPECS="six chain50 bzip2"   which specs, in that order
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ROUNDS=${BENCH_ROUNDS:-5}
SPECS=${BENCH_SPECS:-"six chain50 bzip2"}
say() { printf '[remote] %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
for kind in $SPECS; do
  case $kind in
    six | chain50 | bzip2) ;;
    *) printf 'error: unknown spec `%s` in BENCH_SPECS (expected six, chain50, bzip2)\n' "$kind" >&2; exit 2 ;;
  esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { printf 'error: BENCH_ROUNDS=%s is not a positive number\n' "$ROUNDS" >&2; exit 2; }

# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_tools jq curl
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (try: bash scripts/ensure-docker.sh)"
say "building the release binary"
cargo build --release --locked >&2
SEALROOM=${CARGO_TARGET_DIR:-$ROOT/target}/release/sealroom
BGD=$(bash scripts/buildgrid.sh)
IMAGE=$(bash sandbox/busybox/build.sh | tail -1)
GCC_IMAGE=
case " $SPECS " in
  *" bzip2 "*)
    GCC_IMAGE=$(bash sandbox/debian-gcc/build.sh | tail -1)
    [[ $GCC_IMAGE =~ ^sealroom/debian-gcc@sha256:[0-9a-f]{64}$ ]] || die "sandbox/debian-gcc/build.sh printed '$GCC_IMAGE'"
    ;;
esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sealroom-remote.XXXXXX")
BG_PID= HTTP_PID= EV_PID=
cleanup() {
  local status=$? pid
  for pid in $BG_PID $HTTP_PID $EV_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  bash "$ROOT/benches/wipe.sh" "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
mkdir -p "$WORK/cas" "$WORK/src"
cat > "$WORK/bgd.yml" <<EOF
server:
  - !channel { address: "127.0.0.1:$PORT", insecure-mode: true }
authorization: { method: none }
monitoring: { enabled: false }
storages:
  - !disk-storage &cas { path: $WORK/cas }
caches:
  - !lru-action-cache &ac { storage: *cas, max-cached-refs: 10000, allow-updates: true, cache-failed-actions: false }
instances:
  - name: "bench"
    services:
      - !action-cache { cache: *ac }
      - !cas { storage: *cas }
      - !bytestream { storage: *cas }
EOF
"$BGD" server start "$WORK/bgd.yml" >"$WORK/bgd.log" 2>&1 &
BG_PID=$!
for _ in $(seq 1 150); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2).close()" 2>/dev/null && break
  kill -0 "$BG_PID" 2>/dev/null || die "bgd exited: $(tail -c 300 "$WORK/bgd.log")"
  sleep 0.2
done
# bzip2's archive, from loopback only.
HTTP_PORT=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory tests/fixtures/upstream "$HTTP_PORT" >"$WORK/http.log" 2>&1 &
HTTP_PID=$!
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/README.md" && break; sleep 0.1; done
"$SEALROOM" keygen --algorithm ecdsa-p256 --out "$WORK/key" >/dev/null 2>&1
printf 'alpha\nbeta\n' > "$WORK/src/a"
REMOTE=(--remote-cache "grpc://127.0.0.1:$PORT" --remote-instance bench)

# round_env ROUND: the spec on stdin with `env = { BENCH_ROUND = "ROUND" }` after every `run`.
round_env() { sed "/^run = /a env = { BENCH_ROUND = \"$1\" }"; }

spec_chain50() { # spec_chain50 ROUND FILE
  gen_spec chain 50 "$2.gen" "$IMAGE" bench-remote
  round_env "$1" <"$2.gen" >"$2"
  rm "$2.gen"
}

spec_bzip2() { # spec_bzip2 ROUND FILE: with this machine's image and the loopback URL
  sed -e "s|^image = .*|image = \"$GCC_IMAGE\"|" \
    -e "s|^url = .*|url = \"http://127.0.0.1:$HTTP_PORT/bzip2-1.0.8.tar.gz\"|" build-specs/bzip2/sealroom.toml |
    round_env "$1" >"$2"
}

spec_six() { # spec_six ROUND FILE
  local env="env = { BENCH_ROUND = \"$1\" }"
  cat > "$2" <<EOF
version = 1
name = "bench-remote"

[sandbox]
image = "$IMAGE"

[[source]]
name = "src"
path = "src"

[[step]]
name = "gen"
inputs = ["src"]
run = ["sh", "-c", "sed 's/^/gen: /' /inputs/src/a > /out/g"]
$env

[[step]]
name = "c1"
inputs = ["gen"]
run = ["sh", "-c", "cat /inputs/gen/g > /out/c"]
$env

[[step]]
name = "fan"
inputs = ["gen"]
run = ["sh", "-c", "{ echo 'fan of'; cat /inputs/gen/g; } > /out/fan.txt"]
artifacts = ["fan.txt"]
$env

[[step]]
name = "c2"
inputs = ["c1", "fan"]
run = ["sh", "-c", "cat /inputs/c1/c /inputs/fan/fan.txt > /out/chain.txt"]
artifacts = ["chain.txt"]
$env

[[step]]
name = "big"
run = ["sh", "-c", "seq 1 400000 | sed 's/\$/ a line of the big output/' | head -c 6291456 > /out/big.bin"]
artifacts = ["big.bin"]
$env

[[step]]
name = "ind"
run = ["sh", "-c", "echo independent > /out/ind.txt"]
artifacts = ["ind.txt"]
$env
EOF
}


# steps KIND: how many steps the spec has.
steps() { case $1 in six) echo 6 ;; chain50) echo 50 ;; bzip2) echo 1 ;; esac; }

# watch FILE: follows the engine's container-create events of sealroom's steps from now on, the
# build id of each a line in FILE, in the background (EV_PID). Followed live: the engine keeps
# only its last 256 events, fewer than a 50-step build and the machine's other work make.
watch() {
  docker events --since "$(date +%s.%N)" --filter type=container --filter event=create \
    --filter label=dev.sealroom.build --format '{{index .Actor.Attributes "dev.sealroom.build"}}' >"$1" &
  EV_PID=$!
}

# created FILE BUILD_ID: stops the watch; how many containers the engine created for that build.
created() {
  sleep 0.5 # the last events on their way
  kill "$EV_PID" 2>/dev/null || true
  wait "$EV_PID" 2>/dev/null || true
  EV_PID=
  grep -cxF "$2" "$1" || true
}

# runner KIND WHO ROUND STORE ARGS...: one build of spec KIND, round ROUND, with the store STORE
# and a fresh --out; checks its report and the engine's events (WHO: a ran every step, one
# container each; b took every step from the remote cache, no container; l took every step from
# the local store, no container); prints its seconds.
runner() {
  local kind=$1 who=$2 round=$3 store=$4 t0 t1 n json err ran remote made want
  shift 4
  n=$(steps "$kind") json=$WORK/$kind-$who-$round.json err=$WORK/$kind-$who-$round.err
  watch "$WORK/events"
  t0=$(date +%s.%N)
  "$SEALROOM" build "$WORK/$kind-$round.toml" --store "$store" --out "$WORK/out-$kind-$who-$round" \
    --format json "$@" >"$json" 2>"$err" || die "$kind, runner $who, round $round: $(tail -c 300 "$err")"
  t1=$(date +%s.%N)
  [ "$(jq '.steps | length' "$json")" = "$n" ] || die "$kind, runner $who, round $round: expected $n steps"
  ran=$(jq '[.steps[] | select(.cached == false)] | length' "$json")
  remote=$(jq '[.steps[] | select(.remote != null)] | length' "$json")
  made=$(created "$WORK/events" "$(jq -r .build_id "$json")")
  case $who in
    a) want="$n.0.$n" ;;
    b) want="0.$n.0" ;;
    l) want="0.0.0" ;;
  esac
  [ "$ran.$remote.$made" = "$want" ] ||
    die "$kind, runner $who, round $round: of $n steps $ran ran and $remote came from the remote cache; $made containers (expected $want)"
  python3 -c "print(f'{$t1 - $t0:.3f}')"
}

# same KIND ROUND: runner B and the local rebuild wrote runner A's artifacts, byte for byte.
same() {
  local f
  while read -r f; do
    cmp -s "$WORK/out-$1-a-$2/$f" "$WORK/out-$1-b-$2/$f" || die "$1, round $2: runner B's $f differs"
    cmp -s "$WORK/out-$1-a-$2/$f" "$WORK/out-$1-l-$2/$f" || die "$1, round $2: the local rebuild's $f differs"
  done < <(jq -r '.artifacts[].name' "$WORK/$1-a-$2.json")
}

rows=()
for kind in $SPECS; do
  A=() B=() L=()
  for round in $(seq 1 "$ROUNDS"); do
    "spec_$kind" "$round" "$WORK/$kind-$round.toml"
    A+=("$(runner "$kind" a "$round" "$WORK/store-$kind-a-$round" "${REMOTE[@]}" --key "$WORK/key.key")")
    B+=("$(runner "$kind" b "$round" "$WORK/store-$kind-b-$round" "${REMOTE[@]}" --trust-key "$WORK/key.pub")")
    L+=("$(runner "$kind" l "$round" "$WORK/store-$kind-a-$round")")
    same "$kind" "$round"
    say "$kind, round $round: A ${A[-1]} s, B ${B[-1]} s, local ${L[-1]} s"
    bash benches/wipe.sh "$WORK/store-$kind-a-$round" "$WORK/store-$kind-b-$round" \
      "$WORK/out-$kind-a-$round" "$WORK/out-$kind-b-$round" "$WORK/out-$kind-l-$round"
  done
  rows+=("$(python3 - "$kind" "$(steps "$kind")" "${A[*]}" "${B[*]}" "${L[*]}" <<'EOF'
import statistics, sys
kind, n = sys.argv[1], int(sys.argv[2])
a, b, l = ([float(x) for x in s.split()] for s in sys.argv[3:])
spec = {"six": "six busybox steps", "chain50": "50-step chain", "bzip2": "`build-specs/bzip2`"}[kind]
what = "the step" if n == 1 else f"all {n} steps"
def row(name, xs):
    return f"| {spec} | {name} | {statistics.mean(xs):.2f} ± {statistics.pstdev(xs):.2f} | {min(xs):.2f} | {max(xs):.2f} | {len(xs)} |"
print(row(f"A: cold, {what} run and uploaded", a))
print(row(f"B: empty store, {what} from the remote cache, 0 containers", b))
print(row("local cached rebuild: A's store, no remote", l))
print(f"| {spec} | B / A, B / local | {statistics.mean(b) / statistics.mean(a):.2f}x, {statistics.mean(b) / statistics.mean(l):.2f}x | | | |")
EOF
)")
done

echo "| spec | runner | mean ± σ (s) | min (s) | max (s) | runs |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "rounds: $ROUNDS; $(nproc) CPUs; $(docker version --format 'Docker {{.Server.Version}}'); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC')"
