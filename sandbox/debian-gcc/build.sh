#!/usr/bin/env bash
# Makes `sealroom/debian-gcc`: a Debian minbase root filesystem (the host's suite) with gcc,
# libc6-dev and make, built with debootstrap from the mirror the host's apt already uses, cleaned
# of files that differ from run to run, and imported with `sealroom image import`.
#
# usage: sandbox/debian-gcc/build.sh [--rebuild]
# The last line on stdout is the pinned reference, `sealroom/debian-gcc@sha256:<64 hex>`.
# The root filesystem is kept under ${SEALROOM_IMAGE_CACHE:-/var/cache/sealroom-images}, so a
# second run re-imports the same tree (same digest) without running debootstrap again.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

NAME=sealroom/debian-gcc
rebuild=0
for arg in "$@"; do
  case $arg in
    --rebuild) rebuild=1 ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument \`$arg\` (expected --rebuild)" >&2; exit 2 ;;
  esac
done

cache=${SEALROOM_IMAGE_CACHE:-/var/cache/sealroom-images}/debian-gcc
rootfs=$cache/rootfs

# The suite of the host, e.g. bookworm.
suite() {
  local codename
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || { echo "error: /etc/os-release has no VERSION_CODENAME" >&2; return 1; }
  echo "$codename"
}

# The mirror the host's apt uses for SUITE: the first `URIs:` of a deb822 stanza listing the suite
# in /etc/apt/sources.list.d/*.sources, else the first `deb` line for it in /etc/apt/sources.list.
mirror() {
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
# provides at run time, and adds what steps rely on.
normalize() {
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

image_exists=0
docker image inspect "$NAME" >/dev/null 2>&1 && image_exists=1

if [ "$rebuild" = 1 ] || { [ ! -f "$cache/complete" ] && [ "$image_exists" = 0 ]; }; then
  need debootstrap debootstrap
  suite=$(suite)
  mirror=$(mirror "$suite")
  say "debootstrap $suite from $mirror into $rootfs"
  mkdir -p "$cache"
  rm -rf "$cache/rootfs.new" "$cache/complete"
  start=$(date +%s)
  debootstrap --variant=minbase --include=gcc,libc6-dev,make "$suite" "$cache/rootfs.new" "$mirror" >&2
  normalize "$cache/rootfs.new"
  rm -rf "$rootfs"
  mv "$cache/rootfs.new" "$rootfs"
  echo "$suite $mirror" >"$cache/complete"
  say "debootstrap and clean-up took $(($(date +%s) - start))s"
fi

if [ -f "$cache/complete" ]; then
  say "importing $rootfs as $NAME"
  run_sealroom image import "$rootfs" --name "$NAME"
else
  # The image exists but its root filesystem is not cached here: report what the engine holds.
  say "$NAME exists and $rootfs is not cached; pass --rebuild to make it again"
  echo "$NAME@$(docker image inspect -f '{{.Id}}' "$NAME")"
fi
