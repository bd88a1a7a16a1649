#!/usr/bin/env bash
# The engine's floor for benchmark (b): the same N containers as docker-seq.sh, made through the
# Engine API directly (curl on the local socket: create, start, wait, delete), without the docker
# CLI's own start-up, attach and polling. sealroom talks to the same API.
#
# usage: benches/api-seq.sh IMAGE_ID N OUT_DIR LABEL [none|disabled]
#   none      (default) `"NetworkMode": "none"`, what `docker run --network none` asks for: the
#             engine still sets up a network namespace with only `lo` in it.
#   disabled  also `"NetworkDisabled": true`, as sealroom's containers have: the engine skips the
#             network set-up altogether (the container still has no network).
set -euo pipefail
[ $# -eq 4 ] || [ $# -eq 5 ] || { echo "usage: $0 IMAGE_ID N OUT_DIR LABEL [none|disabled]" >&2; exit 2; }
image=$1 n=$2 out=$3 label=$4 mode=${5:-none}
case $mode in
  none) extra= ;;
  disabled) extra='"NetworkDisabled":true,' ;;
  *) echo "error: mode must be none or disabled, not '$mode'" >&2; exit 2 ;;
esac
sock=/var/run/docker.sock
case ${DOCKER_HOST:-} in unix://*) sock=${DOCKER_HOST#unix://} ;; '') ;; *) echo "error: only a unix DOCKER_HOST is supported" >&2; exit 2 ;; esac
api() { curl -sSf --unix-socket "$sock" -X "$1" -H 'Content-Type: application/json' "http://localhost/v1.41$2" "${@:3}"; }
for ((i = 1; i <= n; i++)); do
  body=$(printf '{%s"Image":"%s","Cmd":["sh","-c","echo %d > /out/f"],"Labels":{"%s":"%s"},"HostConfig":{"NetworkMode":"none","Binds":["%s:/out"]}}' \
    "$extra" "$image" "$i" "${label%%=*}" "${label#*=}" "$out")
  id=$(api POST /containers/create -d "$body" | sed -n 's/.*"Id":"\([0-9a-f]*\)".*/\1/p')
  api POST "/containers/$id/start" >/dev/null
  code=$(api POST "/containers/$id/wait" | sed -n 's/.*"StatusCode":\([0-9]*\).*/\1/p')
  api DELETE "/containers/$id" >/dev/null
  [ "$code" = 0 ] || { echo "error: container $i exited with $code" >&2; exit 1; }
done
[ "$(cat "$out/f")" = "$n" ] || { echo "error: $out/f does not hold $n" >&2; exit 1; }
