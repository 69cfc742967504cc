#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests (against real debugpy, including the
# short soak and the fuzz regression cases), the Node test with Microsoft's DebugClient,
# then a short fuzzing run and the benchmark's quick mode (figures printed, not
# asserted). Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo build
# The soak and the front-door attacks run on their own, one test at a time, so their
# figures are printed (the rest is captured) and no other test competes for the CPU.
cargo test --all-targets -- --skip soak_
cargo test --test soak -- --nocapture --test-threads 1
cargo test --test front_door -- --ignored --nocapture --test-threads 1
bash tests/node/run.sh
bash scripts/fuzz.sh 30
bash scripts/bench.sh --quick
