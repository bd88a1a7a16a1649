#!/usr/bin/env bash
# Makes `sealroom/debian-gcc`: a Debian minbase root filesystem (the host's suite) with gcc,
# libc6-dev and make, built with debootstrap from the mirror the host's apt already uses, cleaned
# of files that differ from run to run, and imported with `sealroom image import`.
#
# usage: sandbox/debian-gcc/build.sh [--rebuild]
# The last line on stdout is the pinned reference, `sealroom/debian-gcc@sha256:<64 hex>`.
# The root filesystem is kept under ${SEALROOM_IMAGE_CACHE:-/var/cache/sealroom-images}, so a
# second run re-imports the same tree (same digest) without running debootstrap again.
#
# A wrapper of sandbox/debian/build.sh that keeps this recipe's name, flag and cache directory
# (debian-gcc/rootfs), so a tree cached by earlier versions is imported as before.
set -euo pipefail

flags=()
for arg in "$@"; do
  case $arg in
    --rebuild) flags+=(--rebuild) ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument \`$arg\` (expected --rebuild)" >&2; exit 2 ;;
  esac
done

exec bash "$(dirname "${BASH_SOURCE[0]}")/../debian/build.sh" --name sealroom/debian-gcc \
  --cache "${SEALROOM_IMAGE_CACHE:-/var/cache/sealroom-images}/debian-gcc" --use-existing \
  "${flags[@]}" gcc libc6-dev make
