#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests (against real debugpy), then the
# Node test with Microsoft's DebugClient. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo build
cargo test --all-targets
bash tests/node/run.sh
