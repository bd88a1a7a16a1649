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

# --- Debian images (sandbox/debian, and the recipes that wrap it) ------------------------------

# The suite of the host, e.g. bookworm.
debian_suite() {
  local codename
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || { echo "error: /etc/os-release has no VERSION_CODENAME" >&2; return 1; }
  echo "$codename"
}

# The mirror the host's apt uses for SUITE: the first `URIs:` of a deb822 stanza listing the suite
# in /etc/apt/sources.list.d/*.sources, else the first `deb` line for it in /etc/apt/sources.list.
# No host name is written in the recipes: it always comes from the machine's apt configuration.
debian_mirror() {
  local suite=$1 uri=""
  local sources=(/etc/apt/sources.list.d/*.sources)
  if [ -e "${sources[0]}" ]; then
    uri=$(awk -v suite="$suite" '
      function flush() { if (is_deb && has_suite && uri != "" && !found) { print uri; found = 1 } is_deb = has_suite = 0; uri = "" }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { flush(); next }
      tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") is_deb = 1 }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
      END { flush() }' "${sources[@]}")
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk -v suite="$suite" '
      $1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == suite) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { echo "error: no apt source for suite \`$suite\` in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list" >&2; return 1; }
  echo "$uri"
}

# Removes what differs between two debootstraps of the same packages, or what the engine
# provides at run time, and adds what steps rely on (the `builder` user, /out, /inputs, /tmp).
debian_normalize() {
  local root=$1
  rm -rf "$root"/dev/* "$root"/proc/* "$root"/sys/* "$root"/run/*
  rm -rf "$root"/var/log/* "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/*
  rm -f "$root"/var/cache/ldconfig/aux-cache "$root"/var/cache/debconf/*-old
  rm -f "$root"/var/lib/dpkg/*-old "$root"/etc/*- "$root"/etc/machine-id
  rm -f "$root"/etc/hostname "$root"/etc/resolv.conf "$root"/etc/hosts
  rm -rf "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.cache
  find "$root" -xdev -name '*.pyc' -delete
  find "$root" -xdev -name __pycache__ -type d -empty -delete
  # /etc/shadow's third field is the day the password last changed: the day of the build.
  touch "$root"/etc/shadow
  sed -i -E 's/^([^:]*:[^:]*:)[0-9]*:/\1:/' "$root"/etc/shadow
  grep -q '^builder:' "$root"/etc/passwd || echo 'builder:x:1000:1000:builder:/tmp:/bin/sh' >>"$root"/etc/passwd
  grep -q '^builder:' "$root"/etc/group || echo 'builder:x:1000:' >>"$root"/etc/group
  grep -q '^builder:' "$root"/etc/shadow || echo 'builder:*::0:99999:7:::' >>"$root"/etc/shadow
  mkdir -p "$root"/out "$root"/inputs "$root"/tmp
  chmod 0755 "$root"/out "$root"/inputs
  chmod 1777 "$root"/tmp
  # Anything that is not a file, directory or symlink would be refused by the import.
  local odd
  odd=$(find "$root" -xdev ! -type f ! -type d ! -type l | head -5)
  [ -z "$odd" ] || { echo "error: special files left in the root filesystem: $odd" >&2; return 1; }
}

# debian_image NAME CACHE REBUILD USE_EXISTING PACKAGE...: makes the Debian minbase image NAME
# with PACKAGE... and prints `NAME@sha256:<id>` on stdout. The cleaned root filesystem is kept in
# CACHE/rootfs (CACHE/complete marks it finished); a later call imports it again, which gives the
# same id, without running debootstrap. REBUILD=1 runs debootstrap again. USE_EXISTING=1: when
# the tree is not cached but an image NAME exists, print the engine's id for it instead of
# running debootstrap (only right when NAME alone says which packages it holds).
debian_image() {
  local name=$1 cache=$2 rebuild=$3 use_existing=$4
  shift 4
  local rootfs=$cache/rootfs packages
  packages=$(IFS=,; echo "$*")
  local image_exists=0
  [ "$use_existing" = 1 ] && docker image inspect "$name" >/dev/null 2>&1 && image_exists=1

  if [ "$rebuild" = 1 ] || { [ ! -f "$cache/complete" ] && [ "$image_exists" = 0 ]; }; then
    need debootstrap debootstrap
    local suite mirror start
    suite=$(debian_suite)
    mirror=$(debian_mirror "$suite")
    say "debootstrap $suite with $packages from $mirror into $rootfs"
    mkdir -p "$cache"
    rm -rf "$cache/rootfs.new" "$cache/complete"
    start=$(date +%s)
    debootstrap --variant=minbase --include="$packages" "$suite" "$cache/rootfs.new" "$mirror" >&2
    debian_normalize "$cache/rootfs.new"
    rm -rf "$rootfs"
    mv "$cache/rootfs.new" "$rootfs"
    echo "$suite $mirror" >"$cache/complete"
    say "debootstrap and clean-up took $(($(date +%s) - start))s"
  fi

  if [ -f "$cache/complete" ]; then
    say "importing $rootfs as $name"
    run_sealroom image import "$rootfs" --name "$name"
  else
    # The image exists but its root filesystem is not cached here: report what the engine holds.
    say "$name exists and $rootfs is not cached; pass --rebuild to make it again"
    echo "$name@$(docker image inspect -f '{{.Id}}' "$name")"
  fi
}
