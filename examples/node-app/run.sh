#!/usr/bin/env bash
# Builds this example from its package-lock.json: the tarballs come from the loopback package
# server (serve-packages.py), through a mirror of the registry origin the lock's `resolved` URLs
# name; `npm ci --offline` and `npm test` run with the network off. Then `sealroom check` and
# `sealroom reproduce`.
source "$(dirname "$0")/../lib/lock-example.sh"
serve_packages
prepare_example
build_check_reproduce greetings.txt --mirror "https://npm-registry.internal.example/=$base/npm/"
cat "$work/out/greetings.txt" "$work/out/test-report.txt"
