//! The PEP 768 handshake, as CPython 3.14's own client (`sys.remote_exec`, in
//! `Python/remote_debugging.c`) performs it:
//!
//! 1. read `_Py_DebugOffsets` at the start of the `PyRuntime` section and check it;
//! 2. follow the runtime's interpreter list to the main interpreter, and check its
//!    `config.remote_debug` flag (off with `PYTHON_DISABLE_REMOTE_DEBUG` or
//!    `-X disable-remote-debug`);
//! 3. take the main thread's state (`threads.main`);
//! 4. write the script's path (NUL-terminated) into the thread state's remote debugger
//!    support buffer, then set its pending flag to 1;
//! 5. set the "please stop" bit (`1 << 5`) in the thread's `eval_breaker`, so the
//!    interpreter looks at the flag at its next bytecode boundary, where it runs the
//!    script (`exec` of the file's source) and clears the flag.
//!
//! Step 5 reads and writes a word the interpreter may update at the same moment; CPython's
//! client does the same, and a lost bit only delays the script to the next time the
//! breaker is checked for another reason.

use super::elf::Runtime;
use super::errors::InjectError;
use super::memory::Memory;
use super::offsets::{self, DebugOffsets, OffsetsError, READ_SIZE};

/// The eval-breaker bit that makes the interpreter look at pending work.
const PLEASE_STOP_BIT: u64 = 1 << 5;

/// Where a handed-over script's pending flag is, to see whether it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The flag's address (an `int`; the interpreter clears it when it takes the script).
    pub flag: u64,
}

impl Pending {
    /// Whether the interpreter has not taken the script yet.
    pub fn still_pending(&self, memory: &Memory) -> std::io::Result<bool> {
        Ok(memory.read_i32(self.flag)? != 0)
    }
}

/// Reads and checks the debug offsets of the runtime at `runtime`.
pub fn read_offsets(
    pid: i32,
    memory: &Memory,
    runtime: &Runtime,
) -> Result<DebugOffsets, InjectError> {
    let mut table = vec![0u8; READ_SIZE];
    memory
        .read(runtime.address, &mut table)
        .map_err(|e| InjectError::io(pid, "reading the debug offsets", e))?;
    offsets::parse(&table, Some(runtime.size)).map_err(|e| match e {
        OffsetsError::TooOld(v) => InjectError::TooOld {
            pid,
            version: v.to_string(),
        },
        OffsetsError::Unknown(v) => InjectError::UnknownVersion {
            pid,
            version: v.to_string(),
        },
        // 3.11 and 3.12 have the section but no offsets table; a 3.13+ file without it
        // is not the file that is running (replaced on disk since the app started?).
        OffsetsError::NoCookie => match runtime.name_version.as_deref() {
            Some(version) if !older_than_3_13(version) => InjectError::BadOffsets {
                pid,
                file: runtime.file.display().to_string(),
                what: "no debug offsets where the PyRuntime section should be (was the interpreter replaced on disk since the app started?)".to_owned(),
            },
            version => InjectError::TooOld {
                pid,
                version: version
                    .map(str::to_owned)
                    .unwrap_or_else(|| "older than 3.13 (no debug offsets)".to_owned()),
            },
        },
        OffsetsError::Nonsense(what) => InjectError::BadOffsets {
            pid,
            file: runtime.file.display().to_string(),
            what,
        },
    })
}

/// The main thread's state of the main interpreter, once remote debugging is known to
/// be enabled there.
pub fn main_thread(
    pid: i32,
    memory: &Memory,
    runtime: &Runtime,
    offsets: &DebugOffsets,
) -> Result<u64, InjectError> {
    let io = |what: &'static str| move |e| InjectError::io(pid, what, e);
    let nonsense = |what: &str| InjectError::BadOffsets {
        pid,
        file: runtime.file.display().to_string(),
        what: what.to_owned(),
    };
    let interp = memory
        .read_u64(runtime.address + offsets.interpreters_head)
        .map_err(io("reading the interpreter list"))?;
    if interp == 0 {
        return Err(nonsense(
            "no interpreter is running (starting or finalizing)",
        ));
    }
    let enabled = memory
        .read_i32(interp + offsets.remote_debugging_enabled)
        .map_err(io("reading the remote debugging flag"))?;
    if enabled != 1 {
        return Err(InjectError::RemoteDebugDisabled { pid });
    }
    let thread = memory
        .read_u64(interp + offsets.threads_main)
        .map_err(io("reading the main thread state"))?;
    if thread == 0 {
        return Err(nonsense("the main thread has no thread state"));
    }
    Ok(thread)
}

/// Whether a `major.minor` version is older than 3.13 (the first with debug offsets).
fn older_than_3_13(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) < (3, 13)
}

/// Asks the interpreter of `pid` to run the script at `script` (a path in the target's
/// filesystem) in the main thread whose state is at `thread`.
pub fn send_exec(
    pid: i32,
    memory: &Memory,
    offsets: &DebugOffsets,
    thread: u64,
    script: &str,
) -> Result<Pending, InjectError> {
    let io = |what: &'static str| move |e| InjectError::io(pid, what, e);
    let mut path = script.as_bytes().to_vec();
    path.push(0);
    if path.len() as u64 > offsets.debugger_script_path_size || script.contains('\0') {
        return Err(InjectError::Io {
            pid,
            what: format!("handing over the script path {script}"),
            source: std::io::Error::other(format!(
                "it does not fit the interpreter's {} bytes",
                offsets.debugger_script_path_size
            )),
        });
    }
    let support = thread + offsets.remote_debugger_support;
    let flag = support + offsets.debugger_pending_call;
    memory
        .write(support + offsets.debugger_script_path, &path)
        .map_err(io("writing the script path"))?;
    memory
        .write(flag, &1i32.to_le_bytes())
        .map_err(io("setting the pending flag"))?;
    let breaker_at = thread + offsets.eval_breaker;
    let breaker = memory
        .read_u64(breaker_at)
        .map_err(io("reading the eval breaker"))?;
    memory
        .write(breaker_at, &(breaker | PLEASE_STOP_BIT).to_le_bytes())
        .map_err(io("setting the eval breaker"))?;
    Ok(Pending { flag })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_before_debug_offsets() {
        assert!(older_than_3_13("3.11"));
        assert!(older_than_3_13("3.12"));
        assert!(!older_than_3_13("3.13"));
        assert!(!older_than_3_13("3.14"));
        assert!(!older_than_3_13("4.0"));
    }
}
