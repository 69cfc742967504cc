#!/usr/bin/env bash
# Runs every test, tier by tier (README "Tests"), installing what is missing first:
# 1. the fast tier, what a plain `cargo test` runs (no Python, root, Docker or network
#    beyond loopback): unit tests, the CLI, the fuzz regression cases, and sessions and
#    HTTP against the sidecar in-process with a fake debugpy;
# 2. the real-parts tests, `#[ignore]`d in a plain `cargo test` and selected here with
#    `--ignored`: real debugpy, root (network namespaces), promtool and Prometheus,
#    Chromium, kubernetes-validate, Docker;
# 3. the soak and the front-door attacks, on their own;
# then the Node test with Microsoft's DebugClient, a short fuzzing run and the
# benchmark's quick mode (figures printed, not asserted).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
cargo build
cargo test --all-targets
# Every ignored test of every target but the soak and the front door, which run on their
# own below, one test at a time, so their figures are printed (the rest is captured) and
# no other test competes for the CPU.
real_parts=(--lib --bins)
for file in tests/*.rs; do
  name=$(basename "$file" .rs)
  case "$name" in
    soak | front_door) ;;
    *) real_parts+=(--test "$name") ;;
  esac
done
cargo test --no-fail-fast "${real_parts[@]}" -- --ignored
cargo test --test soak -- --ignored --nocapture --test-threads 1
cargo test --test front_door -- --ignored --nocapture --test-threads 1
bash tests/node/run.sh
bash scripts/fuzz.sh 30
bash scripts/bench.sh --quick
