#!/usr/bin/env bash
# Makes `sealroom/busybox`: a tiny image from the host's static busybox (/bin/busybox, from the
# Debian package busybox-static), one symlink per applet, /tmp, /out, /inputs, and an
# /etc/passwd with root and `builder` (uid 1000), imported with `sealroom image import`.
#
# usage: sandbox/busybox/build.sh [OUT_ROOTFS_DIR]
# OUT_ROOTFS_DIR (default: a temp dir, removed afterwards) receives the root filesystem; it is
# rebuilt from scratch on every run. The last line on stdout is the pinned reference,
# `sealroom/busybox@sha256:<64 hex>`; the same busybox binary always gives the same digest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

NAME=sealroom/busybox
case ${1:-} in -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -le 1 ] || { echo "error: expected at most one argument, OUT_ROOTFS_DIR; found $#" >&2; exit 2; }

if [ ! -x /bin/busybox ]; then
  say "installing busybox-static (no /bin/busybox)"
  apt-get install -y -qq busybox-static >&2 || { apt-get update -qq >&2 && apt-get install -y -qq busybox-static >&2; }
fi
/bin/busybox --list >/dev/null 2>&1 || { echo "error: /bin/busybox does not run (\`busybox --list\` failed)" >&2; exit 1; }

if [ -n "${1:-}" ]; then
  root=$(realpath -m "$1")
else
  root=$(mktemp -d "${TMPDIR:-/tmp}/sealroom-busybox.XXXXXX")
  trap 'rm -rf "$root"' EXIT
fi
rm -rf "$root"
mkdir -p "$root"/bin "$root"/etc "$root"/out "$root"/inputs "$root"/tmp
chmod 0755 "$root" "$root"/bin "$root"/etc "$root"/out "$root"/inputs
chmod 1777 "$root"/tmp
install -m 0755 /bin/busybox "$root"/bin/busybox
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1000:builder:/tmp:/bin/sh\n' >"$root"/etc/passwd
printf 'root:x:0:\nbuilder:x:1000:\n' >"$root"/etc/group
chmod 0644 "$root"/etc/passwd "$root"/etc/group

say "importing $root as $NAME"
run_sealroom image import "$root" --name "$NAME"
