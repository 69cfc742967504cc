//! Path rewriting: see `dap_sidecar::fuzzing::rewrite` for the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dap_sidecar::fuzzing::rewrite(data));
