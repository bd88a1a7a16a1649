#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use, when they are missing:
# busybox-static (the small test image), debootstrap (the C toolchain image), openssl,
# docker-registry (the registry the image push tests run on 127.0.0.1), apache2-utils (htpasswd:
# the bcrypt password file of the registry auth tests), golang-go (the go.sum
# layout test runs go build and go test against it), npm (the package-lock.json layout test runs
# npm ci against it; machines that have Node.js already keep theirs), iproute2 and util-linux (`ip`
# and `unshare`: the remote engine test gives a second dockerd its own bridge and mount namespace),
# openssh-client and openssh-server (that test reaches the engine over ssh too, through an sshd of
# its own on 127.0.0.1; the package's own service is not used), python3-venv (the venvs of
# scripts/ensure-python.sh and scripts/buildgrid.sh, the REAPI server of the remote cache tests),
# podman and uidmap (newuidmap/newgidmap: tests/podman_rootless.rs runs rootless Podman's
# Docker-compatible socket as a user with subordinate id ranges; the steps have no network, so
# neither slirp4netns nor passt is needed, and Podman's vfs storage needs no fuse-overlayfs).
set -euo pipefail

missing=()
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v podman >/dev/null 2>&1 || missing+=(podman)
[ -x /usr/bin/newuidmap ] && [ -x /usr/bin/newgidmap ] || missing+=(uidmap)
if [ ${#missing[@]} -gt 0 ]; then
  echo "ensure-packages: installing ${missing[*]}" >&2
  apt-get update -qq
  # No package's service is started by the install (openssh-server would start an sshd on port
  # 22): a policy-rc.d that refuses every start, unless the machine has its own.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  [ -z "$policy" ] || rm -f "$policy"
fi
