# Shared by the recipes in sandbox/: how to call sealroom, and small helpers. Source it.
# Everything here prints to stderr except what a recipe means as its result.

SANDBOX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SANDBOX_DIR/.." && pwd)

# Runs sealroom: the binary named by $SEALROOM, else the release build of this checkout.
run_sealroom() {
  if [ -n "${SEALROOM:-}" ]; then
    "$SEALROOM" "$@"
  else
    (cd "$REPO_ROOT" && cargo run --release --quiet -- "$@")
  fi
}

say() { echo "[$(basename "$(dirname "$0")")] $*" >&2; }

# Installs Debian packages when a command is missing: need COMMAND PACKAGE.
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  say "installing $2 (for $1)"
  apt-get install -y -qq "$2" >&2 || { apt-get update -qq >&2 && apt-get install -y -qq "$2" >&2; }
}
