//! Replays the fuzz seeds and every input that ever crashed a fuzz target
//! (`fuzz/seeds/<target>/`, `fuzz/regressions/<target>/`) through the same harnesses
//! (`dap_sidecar::fuzzing`), so a fixed crash stays fixed on the stable toolchain.

use std::fs;
use std::path::Path;

fn replay(target: &str, harness: fn(&[u8])) {
    let mut replayed = 0;
    for dir in ["seeds", "regressions"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz")
            .join(dir)
            .join(target);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let data = fs::read(&path).expect("read case");
            let outcome = std::panic::catch_unwind(|| harness(&data));
            assert!(outcome.is_ok(), "{} fails", path.display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no cases for {target}");
    println!("{target}: {replayed} cases replayed");
}

#[test]
fn codec_cases_pass() {
    replay("codec", dap_sidecar::fuzzing::codec);
}

#[test]
fn rewrite_cases_pass() {
    replay("rewrite", dap_sidecar::fuzzing::rewrite);
}
