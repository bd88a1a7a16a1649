#!/usr/bin/env bash
# Builds this example from its hashed requirements.txt: the wheels come from the loopback package
# server (serve-packages.py), reached through a mirror of the index the spec names; the install
# and the tests run with the network off. Then `sealroom check` and `sealroom reproduce`.
source "$(dirname "$0")/../lib/lock-example.sh"
serve_packages
prepare_example
build_check_reproduce test-report.txt --mirror "https://python-index.internal.example/=$base/pypi/"
cat "$work/out/greeting.txt" "$work/out/test-report.txt"
