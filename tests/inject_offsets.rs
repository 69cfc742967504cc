//! The PEP 768 pieces of `dap_sidecar::inject` against Debian's real python3.14 (from the
//! sid root of `scripts/py314-root.sh`): the debug offsets in the binary's `.PyRuntime`
//! section, the section found in a running interpreter through `/proc`, the main thread
//! state, and the remote-debugging switch. Needs root (debootstrap, chroot).

mod common;

use std::process::{Command, Stdio};

use common::py314::{RootApp, python_binary};
use common::{Lines, SOON};
use dap_sidecar::inject::elf::{self, Found};
use dap_sidecar::inject::memory::Memory;
use dap_sidecar::inject::offsets;
use dap_sidecar::inject::{InjectError, remote};

const NEEDS: &str = "needs root and the sid root with python3.14: run by scripts/test.sh";

/// A running app's runtime section, offsets and memory.
fn runtime_of(pid: i32) -> (elf::Runtime, offsets::DebugOffsets, Memory) {
    let Found::Runtime(_) = elf::find_runtime(pid).expect("maps readable") else {
        panic!("no PyRuntime section found in pid {pid}");
    };
    match dap_sidecar::inject::probe(pid) {
        Ok(p) => (p.runtime, p.offsets, p.memory),
        Err(e) => panic!("probe: {e}"),
    }
}

#[test]
#[ignore = "needs the sid root with python3.14: run by scripts/test.sh"]
fn the_binarys_table_is_read_as_3_14() {
    let data = std::fs::read(python_binary()).expect("read python3.14");
    let (table, size) = elf::section_data(&data).expect("a .PyRuntime section");
    let o = offsets::parse(&table, Some(size)).expect("a known layout");
    assert_eq!(
        (o.version.major(), o.version.minor()),
        (3, 14),
        "{}",
        o.version
    );
    assert!(o.version.is_final(), "{}", o.version);
    assert!(!o.free_threaded);
    assert_eq!(o.runtime_size, size);
    // The support struct is `{ int pending; char path[MAX_SCRIPT_PATH_SIZE]; }`.
    assert_eq!(o.debugger_pending_call, 0);
    assert_eq!(o.debugger_script_path, 4);
    assert_eq!(o.debugger_script_path_size, 512);
    // The same table read from the wrong place (one word in) is refused, not misread.
    assert!(offsets::parse(&table[8..], Some(size)).is_err());
}

#[test]
#[ignore = "needs root and the sid root with python3.14: run by scripts/test.sh"]
fn a_running_interpreter_is_found_through_proc() {
    let _ = NEEDS;
    let mut app = RootApp::prepare();
    app.launch("main.py", &[], &[], "app started");
    let pid = app.pid() as i32;
    let (runtime, from_memory, memory) = runtime_of(pid);
    // Seen from outside the chroot, the maps name the file by its host path.
    assert!(
        runtime.file.ends_with("usr/bin/python3.14"),
        "{}",
        runtime.file.display()
    );
    // What the process has in memory is what the file says.
    let data = std::fs::read(python_binary()).expect("read python3.14");
    let (table, size) = elf::section_data(&data).expect("section");
    assert_eq!(
        offsets::parse(&table, Some(size)).expect("parse"),
        from_memory
    );
    let thread = remote::main_thread(pid, &memory, &runtime, &from_memory).expect("main thread");
    assert_ne!(thread, 0);
    // Nothing pending before anything was handed over.
    let pending = memory
        .read_i32(thread + from_memory.remote_debugger_support + from_memory.debugger_pending_call)
        .expect("read flag");
    assert_eq!(pending, 0);
}

#[test]
#[ignore = "needs root and the sid root with python3.14: run by scripts/test.sh"]
fn an_interpreter_in_libpython_is_found_there() {
    let mut app = RootApp::prepare();
    app.launch_with(
        "/usr/local/bin/python3.14-shared",
        "main.py",
        &[],
        &[],
        "app started",
    );
    let pid = app.pid() as i32;
    let (runtime, offsets, memory) = runtime_of(pid);
    assert!(
        runtime
            .file
            .ends_with("usr/lib/x86_64-linux-gnu/libpython3.14.so.1.0"),
        "{}",
        runtime.file.display()
    );
    assert_eq!((offsets.version.major(), offsets.version.minor()), (3, 14));
    assert_ne!(
        remote::main_thread(pid, &memory, &runtime, &offsets).expect("main thread"),
        0
    );
}

#[test]
#[ignore = "needs root and the sid root with python3.14: run by scripts/test.sh"]
fn remote_debugging_switched_off_is_seen() {
    // Python 3.14 spells the option with hyphens; `-X disable_remote_debug` (the
    // underscore form) is accepted silently and does not switch anything off.
    for (env, args) in [
        (vec![("PYTHON_DISABLE_REMOTE_DEBUG", "1")], vec![]),
        (vec![], vec!["-X", "disable-remote-debug"]),
    ] {
        let mut app = RootApp::prepare();
        app.launch("main.py", &env, &args, "app started");
        let pid = app.pid() as i32;
        let (runtime, offsets, memory) = runtime_of(pid);
        let result = remote::main_thread(pid, &memory, &runtime, &offsets);
        assert!(
            matches!(result, Err(InjectError::RemoteDebugDisabled { .. })),
            "{env:?} {args:?}: {result:?}"
        );
    }
}

#[test]
#[ignore = "needs Debian 12's python3.11 on the host: run by scripts/test.sh"]
fn an_older_python_is_refused_by_name() {
    let mut child = Command::new("/usr/bin/python3.11")
        .args(["-u", "-c", "import time; print('ready'); time.sleep(60)"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3.11");
    let lines = Lines::default();
    lines.collect(child.stdout.take().expect("stdout"), "py3");
    assert!(lines.wait("ready", SOON).is_some());
    let result = dap_sidecar::inject::probe(child.id() as i32);
    let _ = child.kill();
    let _ = child.wait();
    match result {
        Err(e @ InjectError::TooOld { .. }) => {
            let text = e.to_string();
            assert!(text.contains("Python 3.11"), "{text}");
            assert!(text.contains("dap-sidecar launch"), "{text}");
        }
        Err(other) => panic!("expected a refusal naming 3.11: {other}"),
        Ok(_) => panic!("expected a refusal naming 3.11, got a probe"),
    }
}
