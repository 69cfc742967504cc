#!/usr/bin/env bash
# The long soak: 10,000 connections opened and ended (clean, abrupt, garbage, before
# attaching) and 1,000,000 messages, against the release build. Prints the fd and RSS
# figures; fails on fd growth or RSS growth beyond 1 MiB after warm-up. CI runs the
# same tests with small defaults as part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_SESSIONS="${SOAK_SESSIONS:-10000}"
export SOAK_MESSAGES="${SOAK_MESSAGES:-1000000}"
exec cargo test --release --test soak -- --ignored --nocapture --test-threads 1
