#!/usr/bin/env bash
# Fuzzes the DAP codec and the path rewriting with cargo-fuzz (libFuzzer) for a bounded
# time: `bash scripts/fuzz.sh [SECONDS_PER_TARGET]` (default 300; CI runs 30).
# The harnesses are in src/fuzzing.rs. A crash stops the run with a non-zero exit and
# leaves the input in fuzz/artifacts/<target>/; once fixed, copy it into
# fuzz/regressions/<target>/ so `cargo test` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# libFuzzer's instrumentation needs nightly flags. With no nightly toolchain installed,
# stable is told to accept them (RUSTC_BOOTSTRAP). No sanitizer: the crate forbids
# unsafe code, so AddressSanitizer would find nothing the checks below would not, and
# runs several times faster without it; debug assertions and overflow checks stay on.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi

mkdir -p target
for target in codec rewrite; do
  mkdir -p "fuzz/corpus/$target"
  echo "fuzz: $target for ${seconds}s"
  log="target/fuzz-$target.log"
  status=0
  "${fuzz[@]}" run --sanitizer none --debug-assertions "$target" \
    "fuzz/corpus/$target" "fuzz/seeds/$target" \
    -- -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^Done|number_of_executed_units|average_exec_per_sec' "$log" || true
  if [ "$status" -ne 0 ]; then
    grep -E 'panicked|ERROR|crash-|Test unit written|error' "$log" | head -20 >&2 || true
    echo "fuzz: $target failed (exit $status); log in $log, inputs in fuzz/artifacts/$target/" >&2
    echo "fuzz: fix it, then copy the input into fuzz/regressions/$target/" >&2
    exit 1
  fi
done
echo "fuzz: no crash"
