#!/usr/bin/env bash
# Builds this example from its go.sum: the module zips and go.mod files come from the loopback
# package server (serve-packages.py), through a mirror of the GOPROXY the spec names; `go build`
# and `go test` run from a GOPROXY directory, network off. Then `sealroom check` and
# `sealroom reproduce`.
source "$(dirname "$0")/../lib/lock-example.sh"
serve_packages
prepare_example
build_check_reproduce bin/go-app --mirror "https://go-proxy.internal.example/=$base/go/"
cat "$work/out/greetings.txt" "$work/out/test-report.txt"
