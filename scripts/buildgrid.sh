#!/usr/bin/env bash
# Makes (or reuses) a Python venv with BuildGrid 0.4.4, the REAPI server the remote cache tests
# (tests/remote_cache.rs) run on 127.0.0.1: 0.4.4 is the newest BuildGrid that runs on Debian 12's
# Python 3.11. Idempotent: when the venv already has that version it returns at once. Prints the
# path of `bgd` on stdout; progress and errors go to stderr.
#
# The venv is ${SEALROOM_BUILDGRID_VENV:-<repo>/target/buildgrid-venv}. BuildGrid comes from
# PyPI through pip.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${SEALROOM_BUILDGRID_VENV:-$root/target/buildgrid-venv}
version=0.4.4
python=$venv/bin/python
bgd=$venv/bin/bgd

installed() {
  [ -x "$bgd" ] && [ "$("$python" -c 'import importlib.metadata as m; print(m.version("buildgrid"))' 2>/dev/null)" = "$version" ]
}

if installed; then
  echo "$bgd"
  exit 0
fi
host_python=${PYTHON:-python3}
if ! command -v "$host_python" >/dev/null; then
  echo "buildgrid: expected a python3 on PATH (or \$PYTHON), found none" >&2
  exit 1
fi
# Two test processes may install at once: one does, the other waits for it.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if installed; then
  echo "$bgd"
  exit 0
fi
if [ ! -x "$python" ]; then
  echo "buildgrid: creating $venv" >&2
  if ! "$host_python" -m venv "$venv" >&2; then
    echo "buildgrid: cannot create a venv at $venv (hint: install python3-venv)" >&2
    exit 1
  fi
fi
echo "buildgrid: installing buildgrid==$version from PyPI" >&2
if ! "$python" -m pip install --quiet "buildgrid==$version" >&2; then
  echo "buildgrid: pip install buildgrid==$version failed" >&2
  exit 1
fi
if ! installed; then
  echo "buildgrid: buildgrid==$version installed but $bgd does not report that version" >&2
  exit 1
fi
echo "$bgd"
