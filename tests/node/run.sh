#!/usr/bin/env bash
# The Node test: Microsoft's DebugClient against dap-sidecar and real debugpy.
# Needs `cargo build` first (scripts/test.sh does it).
set -euo pipefail
cd "$(dirname "$0")"
if [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
exec node --test --test-reporter=spec
