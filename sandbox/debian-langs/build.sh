#!/usr/bin/env bash
# Makes `sealroom/debian-langs`: a Debian minbase root filesystem (the host's suite) with the
# toolchains of the lock-file examples from Debian's own packages: python3 and python3-pip (pip),
# cargo (with rustc) and libc6-dev (the linker's C library), npm (with nodejs), golang-go. Built
# with debootstrap from the mirror the host's apt already uses, cleaned of files that differ from
# run to run, and imported with `sealroom image import`.
#
# usage: sandbox/debian-langs/build.sh [--rebuild]
# The last line on stdout is the pinned reference, `sealroom/debian-langs@sha256:<64 hex>`.
# The root filesystem is kept under ${SEALROOM_IMAGE_CACHE:-/var/cache/sealroom-images}, so a
# second run re-imports the same tree (same digest) without running debootstrap again.
#
# A wrapper of sandbox/debian/build.sh, like debian-gcc (cache directory debian-langs/rootfs).
set -euo pipefail

flags=()
for arg in "$@"; do
  case $arg in
    --rebuild) flags+=(--rebuild) ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument \`$arg\` (expected --rebuild)" >&2; exit 2 ;;
  esac
done

# debootstrap resolves no virtual packages: Debian's npm needs some that only these provide
# (node-cssesc, node-has, node-cli-table3, node-color-support, node-postcss-selector-parser, and
# what their providers need in turn), so they are named here, as apt would have chosen them.
# Without them debootstrap leaves npm unconfigured ("Failure while configuring base packages").
npm_providers=(node-cli-table node-fancy-log node-css-selector-tokenizer node-function-bind
  node-css-loader node-tape node-jest-debbundle node-ampproject-remapping eslint node-babel7
  node-npm-run-path node-n3 node-read-pkg node-json-schema)

exec bash "$(dirname "${BASH_SOURCE[0]}")/../debian/build.sh" --name sealroom/debian-langs \
  --cache "${SEALROOM_IMAGE_CACHE:-/var/cache/sealroom-images}/debian-langs" --use-existing \
  "${flags[@]}" python3 python3-pip cargo libc6-dev npm golang-go "${npm_providers[@]}"
