#!/usr/bin/env bash
# The remote cache of issue [N]: a runner with an empty store served by a shared REAPI cache
# (runner B) against the runner that built and uploaded the same spec (runner A, cold: its own
# empty store and nothing in the cache for it). BENCHMARKS.md records the numbers.
#
# usage: bash benches/remote_cache.sh     (or `just bench-remote`)
#
# The spec has six busybox steps: a chain gen -> c1 -> c2, a fan-out gen -> fan, a fan-in
# {c1, fan} -> c2, a step writing 6 MiB (above BuildGrid's batch limit: ByteStream both ways) and
# an independent one. Each round gives every step an env value of its own, so runner A is cold
# in the cache too; A signs with a key, B trusts it. Builds the release binary, imports the
# busybox image (sandbox/busybox/build.sh), installs BuildGrid 0.4.4 (scripts/buildgrid.sh) and
# runs it on a free 127.0.0.1 port with a disk CAS in a temp dir, checks each report (A ran the
# six steps, B none), prints a markdown table. Talks to nothing but the local Docker engine and
# that server; everything it makes is removed on exit.
#
# Settings (environment):
#   BENCH_ROUNDS=5    rounds of (A, B)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ROUNDS=${BENCH_ROUNDS:-5}
say() { printf '[remote] %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

command -v jq >/dev/null || { apt-get install -y -qq jq >&2 || die "jq is missing"; }
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (try: bash scripts/ensure-docker.sh)"
say "building the release binary"
cargo build --release --locked >&2
SEALROOM=${CARGO_TARGET_DIR:-$ROOT/target}/release/sealroom
BGD=$(bash scripts/buildgrid.sh)
IMAGE=$(bash sandbox/busybox/build.sh | tail -1)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sealroom-remote.XXXXXX")
BG_PID=
cleanup() {
  local status=$?
  if [ -n "$BG_PID" ]; then kill "$BG_PID" 2>/dev/null || true; wait "$BG_PID" 2>/dev/null || true; fi
  bash "$ROOT/benches/wipe.sh" "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
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
"$SEALROOM" keygen --algorithm ecdsa-p256 --out "$WORK/key" >/dev/null 2>&1
printf 'alpha\nbeta\n' > "$WORK/src/a"
REMOTE=(--remote-cache "grpc://127.0.0.1:$PORT" --remote-instance bench)

spec() { # spec ROUND FILE
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

# runner NAME ROUND CACHED ARGS...: one build with a fresh store and --out; prints its seconds.
runner() {
  local name=$1 round=$2 cached=$3 t0 t1; shift 3
  t0=$(date +%s.%N)
  "$SEALROOM" build "$WORK/spec-$round.toml" --store "$WORK/store-$name-$round" --out "$WORK/out-$name-$round" \
    --format json "${REMOTE[@]}" "$@" >"$WORK/$name-$round.json" 2>"$WORK/$name-$round.err" ||
    die "runner $name, round $round: $(tail -c 300 "$WORK/$name-$round.err")"
  t1=$(date +%s.%N)
  [ "$(jq "[.steps[] | select(.cached == $cached)] | length" "$WORK/$name-$round.json")" = 6 ] ||
    die "runner $name, round $round: not every step has cached == $cached"
  python3 -c "print(f'{$t1 - $t0:.3f}')"
}

A=() B=()
for round in $(seq 1 "$ROUNDS"); do
  spec "$round" "$WORK/spec-$round.toml"
  A+=("$(runner a "$round" false --key "$WORK/key.key")")
  B+=("$(runner b "$round" true --trust-key "$WORK/key.pub")")
  cmp -s "$WORK/out-a-$round/big.bin" "$WORK/out-b-$round/big.bin" || die "round $round: big.bin differs"
  say "round $round: A ${A[-1]} s, B ${B[-1]} s"
done

python3 - "${A[*]}" "${B[*]}" <<'EOF'
import statistics, sys
a, b = ([float(x) for x in s.split()] for s in sys.argv[1:])
row = lambda name, xs: f"| {name} | {statistics.mean(xs):.2f} ± {statistics.pstdev(xs):.2f} | {min(xs):.2f} | {max(xs):.2f} | {len(xs)} |"
print("| runner | mean ± σ (s) | min (s) | max (s) | runs |")
print("|---|---|---|---|---|")
print(row("A: cold, 6 steps run and uploaded", a))
print(row("B: empty store, all 6 from the remote cache", b))
print(f"\nB/A: {statistics.mean(b) / statistics.mean(a):.2f}x")
EOF
