# shellcheck shell=bash
# Shared by the benchmark scripts in benches/ (run.sh, step_record.sh): the generated specs, the
# check of a build report, the tools, and stopping a child with everything under it. Source it;
# it defines functions only. Messages go to stderr.

# bench_tools TOOL...: installs each missing TOOL from the Debian package of the same name.
bench_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null && continue
    printf '[bench] installing %s (Debian package)\n' "$tool" >&2
    [ "$(id -u)" = 0 ] || { printf 'error: %s is missing; install it: sudo apt-get install -y %s\n' "$tool" "$tool" >&2; exit 1; }
    apt-get install -y -qq "$tool" >&2 || { apt-get update -qq >&2 && apt-get install -y -qq "$tool" >&2; }
  done
}

# gen_spec KIND N FILE IMAGE PREFIX: writes a spec of N busybox steps named PREFIX-s001 ... to
# FILE. KIND `indep`: every step runs `echo i > /out/f`; `chain`: step i mounts step i-1 and runs
# `cat /inputs/<prev>/f > /out/f && echo i >> /out/f`. The last step declares `f` an artifact, so
# a build also writes one artifact and its provenance, as a real build does. PREFIX also lets a
# script find the containers of its own steps (the label dev.sealroom.step).
gen_spec() {
  local kind=$1 n=$2 file=$3 image=$4 prefix=$5 i name prev
  {
    printf 'version = 1\nname = "bench-%s-%s"\n\n[sandbox]\nimage = "%s"\n' "$kind" "$n" "$image"
    for ((i = 1; i <= n; i++)); do
      name=$(printf '%s-s%03d' "$prefix" "$i")
      printf '\n[[step]]\nname = "%s"\n' "$name"
      if [ "$kind" = chain ] && [ "$i" -gt 1 ]; then
        printf 'inputs = ["%s"]\n' "$prev"
        printf 'run = ["sh", "-c", "cat /inputs/%s/f > /out/f && echo %d >> /out/f"]\n' "$prev" "$i"
      else
        printf 'run = ["sh", "-c", "echo %d > /out/f"]\n' "$i"
      fi
      [ "$i" -lt "$n" ] || printf 'artifacts = ["f"]\n'
      prev=$name
    done
  } >"$file"
}

# check_report JSON N CACHED: the build's `--format json` report lists N steps, all with
# cached == CACHED (true or false); otherwise the script stops.
check_report() {
  [ "$(jq '.steps | length' "$1")" = "$2" ] || { printf 'error: %s: expected %s steps\n' "$1" "$2" >&2; exit 1; }
  [ "$(jq --argjson c "$3" '[.steps[] | select(.cached == $c)] | length' "$1")" = "$2" ] ||
    { printf 'error: %s: expected every step to have cached = %s\n' "$1" "$3" >&2; exit 1; }
}

# descendants PID: the pids of every process under PID, one a line.
descendants() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}

# stop_tree PID: SIGTERM to PID and everything under it (sealroom then stops its steps and
# removes their containers; hyperfine alone would carry on after Ctrl-C), and waits up to 10 s
# for all of them to be gone.
stop_tree() {
  local pids p
  pids="$1 $(descendants "$1")"
  # shellcheck disable=SC2086 # one pid per word
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 50); do
    for p in $pids; do kill -0 "$p" 2>/dev/null && { sleep 0.2; continue 2; }; done
    break
  done
}
