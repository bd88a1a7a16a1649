# Shared by the run.sh of the lock-file examples (python-app, rust-app, node-app, go-app). Source
# it from a run.sh; then, in order:
#   serve_packages           starts serve-packages.py on a free loopback port: sets $base
#   prepare_example          the image from sandbox/debian-langs, a copy of the example pinned to it
#   build_check_reproduce ARTIFACT MIRROR...
#                            a signed build, `sealroom check`, `sealroom reproduce` of ARTIFACT
# Everything goes into a temporary directory ($work), removed on exit with the server.
# Progress goes to stderr; stdout gets what the example's README shows.

set -euo pipefail
example_dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$example_dir/../.." && pwd)
SEALROOM=${SEALROOM:-$root/target/release/sealroom}
work=$(mktemp -d)
server=""
# sealroom reads crates.io's source replacement from cargo's own configuration (as cargo does);
# an empty CARGO_HOME keeps a mirror configured on this machine out of the example.
export CARGO_HOME="$work/cargo-home"
trap '[ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

say() { echo "[$(basename "$example_dir")] $*" >&2; }

# The fixture packages of tests/fixtures/packages/ on 127.0.0.1 (see serve-packages.py); every
# request is logged to $work/requests.log.
serve_packages() {
  python3 "$root/examples/lib/serve-packages.py" --port-file "$work/port" --log "$work/requests.log" 2>/dev/null &
  server=$!
  for _ in $(seq 1 200); do [ -s "$work/port" ] && break; sleep 0.05; done
  [ -s "$work/port" ] || { echo "error: serve-packages.py did not start" >&2; exit 1; }
  base="http://127.0.0.1:$(cat "$work/port")"
  say "packages served on $base"
}

# Makes (or re-imports) sealroom/debian-langs and copies the example to $work/app with its spec
# pinned to that image (the committed spec names a placeholder digest). LANGS_IMAGE, when set,
# is the reference the recipe printed earlier (the tests pass theirs: a re-import hashes 1.5 GB).
prepare_example() {
  local image=${LANGS_IMAGE:-}
  [ -n "$image" ] || image=$(SEALROOM="$SEALROOM" bash "$root/sandbox/debian-langs/build.sh" | tail -n 1)
  cp -r "$example_dir" "$work/app"
  sed -i "s|^image = .*|image = \"$image\"|" "$work/app/sealroom.toml"
  "$SEALROOM" keygen --out "$work/key" >/dev/null
}

# A signed build into $work/out, then `sealroom check` (two more builds without the cache, in
# fresh stores, every output file compared) and `sealroom reproduce` of ARTIFACT from its
# provenance (a fresh store again). Each downloads the locked files anew, through the mirrors.
build_check_reproduce() {
  local artifact=$1
  shift
  say "build"
  "$SEALROOM" build "$work/app/sealroom.toml" --store "$work/store" --out "$work/out" \
    --key "$work/key.key" "$@" >&2
  say "check"
  "$SEALROOM" check "$work/app/sealroom.toml" --store "$work/check-store" \
    --report-dir "$work/check-report" "$@" >&2
  say "reproduce $artifact"
  "$SEALROOM" reproduce "$work/out/$artifact.intoto.jsonl" --source "$work/app" \
    --store "$work/reproduce-store" --key "$work/key.pub" "$@" >&2
}
