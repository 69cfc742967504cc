#!/usr/bin/env bash
# The relay benchmark (benches/relay/): the same DAP workloads directly to an upstream,
# through socat and through dap-sidecar, against a fast fake upstream; then real debugpy
# directly and through the sidecar with `tcp_nodelay` on and off.
# Prints Markdown tables (see BENCHMARKS.md). `--quick` for a short run,
# `--no-debugpy` to skip the real-debugpy part.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v socat >/dev/null || bash scripts/setup.sh
exec cargo bench --bench relay -- "$@"
