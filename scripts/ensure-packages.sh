#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use, when they are missing:
# busybox-static (the small test image), debootstrap (the C toolchain image), openssl,
# docker-registry (the registry the image push tests run on 127.0.0.1), apache2-utils (htpasswd:
# the bcrypt password file of the registry auth tests), golang-go (the go.sum
# layout test runs go build and go test against it), npm (the package-lock.json layout test runs
# npm ci against it; machines that have Node.js already keep theirs), python3-venv (the venvs of
# scripts/ensure-python.sh and scripts/buildgrid.sh, the REAPI server of the remote cache tests).
set -euo pipefail

missing=()
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
command -v npm >/dev/null 2>&1 || missing+=(npm)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "ensure-packages: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
