#!/usr/bin/env bash
# Makes a Debian build image from a list of packages: a Debian minbase root filesystem (the
# host's suite) with PKG... installed by debootstrap from the mirror the host's apt already uses,
# cleaned of files that differ from run to run, and imported with `sealroom image import`.
#
# usage: sandbox/debian/build.sh [--name NAME] [--rebuild] [--cache DIR] [--use-existing] PKG...
#   e.g. sandbox/debian/build.sh --name sealroom/debian-cmake gcc libc6-dev make cmake
# --name NAME     the image's repository name (default sealroom/debian)
# --rebuild       run debootstrap again even if the root filesystem is cached
# --cache DIR     where the tree is kept (default: a directory keyed by NAME and the sorted
#                 package list, under ${SEALROOM_IMAGE_CACHE:-/var/cache/sealroom-images}/debian)
# --use-existing  if the tree is not cached but an image NAME exists, print its id instead
# The last line on stdout is the pinned reference, `NAME@sha256:<64 hex>`. A second run with the
# same name and packages (in any order) re-imports the cached tree: same digest, no debootstrap.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
name=sealroom/debian rebuild=0 use_existing=0 cache=""
packages=()
while [ $# -gt 0 ]; do
  case $1 in
    --name) [ $# -ge 2 ] || { echo "error: --name needs a value" >&2; exit 2; }; name=$2; shift ;;
    --name=*) name=${1#--name=} ;;
    --cache) [ $# -ge 2 ] || { echo "error: --cache needs a value" >&2; exit 2; }; cache=$2; shift ;;
    --cache=*) cache=${1#--cache=} ;;
    --rebuild) rebuild=1 ;;
    --use-existing) use_existing=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "error: unknown option \`$1\` (expected --name, --rebuild, --cache or --use-existing)" >&2; exit 2 ;;
    *) packages+=("$1") ;;
  esac
  shift
done
[ ${#packages[@]} -gt 0 ] || { echo "error: expected at least one Debian package name, e.g. \`gcc libc6-dev make\`" >&2; usage >&2; exit 2; }

# Debian policy's package names: lower-case letters, digits, `+`, `-`, `.`, at least two long.
for package in "${packages[@]}"; do
  [[ $package =~ ^[a-z0-9][a-z0-9+.-]+$ ]] ||
    { echo "error: \`$package\` is not a Debian package name (expected lower-case letters, digits, + - .)" >&2; exit 2; }
done
# A Docker repository name, as `sealroom image import` takes it (it checks it again).
[[ $name =~ ^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$ ]] ||
  { echo "error: \`$name\` is not an image name (expected lower-case components like sealroom/debian-cmake)" >&2; exit 2; }

# The same set of packages, whatever order or repetition they were given in.
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | LC_ALL=C sort -u)
if [ -z "$cache" ]; then
  key=$(printf '%s\n' "${packages[@]}" | sha256sum | cut -c1-16)
  cache=${SEALROOM_IMAGE_CACHE:-/var/cache/sealroom-images}/debian/${name//\//_}-$key
fi
mkdir -p "$cache"
printf '%s\n' "${packages[@]}" >"$cache/packages"

debian_image "$name" "$cache" "$rebuild" "$use_existing" "${packages[@]}"
