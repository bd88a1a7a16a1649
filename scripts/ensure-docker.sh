#!/usr/bin/env bash
# Makes sure a Docker engine answers: installs Debian's docker.io when there is no dockerd, and
# starts the daemon when `docker info` fails. Waits up to 30 s for it.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-docker: installing docker.io" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
echo "ensure-docker: starting dockerd" >&2
log=${TMPDIR:-/tmp}/sealroom-dockerd.log
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.5
done
echo "ensure-docker: dockerd did not come up; its log ($log) ends with:" >&2
tail -n 20 "$log" >&2
exit 1
