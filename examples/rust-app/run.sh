#!/usr/bin/env bash
# Builds this example from its Cargo.lock: the crates come from the loopback package server
# (serve-packages.py), through mirrors of the registry index the lock names and of the download
# host that index's config.json gives; `cargo build` and `cargo test` run offline, network off.
# Then `sealroom check` and `sealroom reproduce`.
source "$(dirname "$0")/../lib/lock-example.sh"
serve_packages
prepare_example
build_check_reproduce bin/rust-app \
  --mirror "https://github.com/rust-lang/crates.io-index/=$base/crates/index/" \
  --mirror "https://crates.internal.example/=$base/crates/"
cat "$work/out/counts.txt" "$work/out/test-report.txt"
