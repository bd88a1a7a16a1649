# sealroom's tasks. `just --list` shows them.

# Build examples/hello-c in the Debian gcc image, sign its provenance, verify it.
demo: deps
    cargo build --release --locked
    SEALROOM=target/release/sealroom bash scripts/demo.sh

# The whole test suite: formatting and lints, unit tests, CLI tests and the tests that drive
# Docker.
test: deps lint
    cargo test --locked --all-targets

# Format and lint as CI expects.
lint:
    cargo fmt --all -- --check
    cargo clippy --locked --all-targets -- -D warnings

# Install and start what the demo and the tests need.
deps:
    bash scripts/ensure-packages.sh
    bash scripts/ensure-docker.sh
    bash scripts/buildgrid.sh >/dev/null

# The outside acceptance check of one issue, e.g. `just accept A-foundation`.
accept name:
    ../shared/acceptance/{{name}}

# Benchmarks of issue [C] (cached rebuild, cold build against bare `docker run`, growth to 200
# steps); about 15 minutes. BENCHMARKS.md explains the numbers.
bench:
    bash benches/run.sh

# The corpus of build-specs/ under sealroom (cold) against the same commands in plain
# `docker run` (issue [H]); about 15 minutes. BENCHMARKS.md records the numbers.
bench-corpus:
    bash benches/corpus.sh

# The step record of issue [I], side by side in one run: a cached rebuild of 10 000 files against
# `git status`, the 50-step cached rebuild, the unchanged image rebuild against classic
# `docker build` and `buildah bud --layers`, SIGINT with 8 running steps; about 3 minutes.
# BENCHMARKS.md records the numbers.
bench-record:
    bash benches/step_record.sh

# Issue [M]: sealroom's peak memory and terminal output under a step that writes one 300 MB line
# without a newline, against the docker CLI running the same container; about a minute.
# BENCHMARKS.md records the numbers.
bench-flood:
    bash benches/log_flood.sh

# Issue [N]: a runner served by the shared remote cache (BuildGrid on 127.0.0.1) against the cold
# runner that uploaded the spec and a local cached rebuild, for six busybox steps, the 50-step
# chain and build-specs/bzip2; about three minutes. BENCHMARKS.md records the numbers.
bench-remote:
    bash benches/remote_cache.sh
