//! `_Py_DebugOffsets`: the table CPython (3.13+) writes at the start of its `PyRuntime`
//! section so that tools outside the process can find their way through its memory. It
//! starts with the cookie `xdebugpy`, the interpreter's `PY_VERSION_HEX` and a
//! free-threading flag; the rest is groups of `u64` offsets (and sizes) whose layout
//! changes between minor versions. So the version picks the layout, and a version
//! without a known layout is refused.
//!
//! Only the fields the PEP 768 handshake needs are read (their positions in the 3.14
//! layout are in [`LAYOUT_3_14`]), and the values are checked for sense before anything
//! is written into the target: a layout that does not fit is an error, not a write at a
//! wrong address.

use std::fmt;

/// The cookie at the start of the table.
pub const COOKIE: &[u8; 8] = b"xdebugpy";

/// Bytes of the table read from the target: enough for every field of a known layout.
pub const READ_SIZE: usize = 8 * 96;

/// A `PY_VERSION_HEX`: major, minor, micro, release level (`0xA` alpha, `0xB` beta,
/// `0xC` candidate, `0xF` final) and serial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PyVersion(pub u64);

impl PyVersion {
    /// The major version.
    pub fn major(self) -> u64 {
        (self.0 >> 24) & 0xff
    }
    /// The minor version.
    pub fn minor(self) -> u64 {
        (self.0 >> 16) & 0xff
    }
    /// Whether this is a final release (not an alpha, beta or candidate).
    pub fn is_final(self) -> bool {
        (self.0 >> 4) & 0xf == 0xf
    }
}

impl fmt::Display for PyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micro = (self.0 >> 8) & 0xff;
        write!(f, "{}.{}.{micro}", self.major(), self.minor())?;
        let serial = self.0 & 0xf;
        match (self.0 >> 4) & 0xf {
            0xa => write!(f, "a{serial}"),
            0xb => write!(f, "b{serial}"),
            0xc => write!(f, "rc{serial}"),
            0xf => Ok(()),
            other => write!(f, " (release level {other:#x})"),
        }
    }
}

/// Where the needed fields are in a layout, as indexes of `u64` words.
#[derive(Debug)]
pub struct Layout {
    /// `runtime_state.size`: `sizeof(_PyRuntimeState)`, the section's size.
    pub runtime_size: usize,
    /// `runtime_state.interpreters_head`.
    pub interpreters_head: usize,
    /// `interpreter_state.threads_main`.
    pub threads_main: usize,
    /// `thread_state.size`.
    pub thread_state_size: usize,
    /// `debugger_support.eval_breaker` (offset in the thread state).
    pub eval_breaker: usize,
    /// `debugger_support.remote_debugger_support` (offset in the thread state).
    pub remote_debugger_support: usize,
    /// `debugger_support.remote_debugging_enabled` (offset in the interpreter state).
    pub remote_debugging_enabled: usize,
    /// `debugger_support.debugger_pending_call` (offset in the support struct).
    pub debugger_pending_call: usize,
    /// `debugger_support.debugger_script_path` (offset in the support struct).
    pub debugger_script_path: usize,
    /// `debugger_support.debugger_script_path_size`.
    pub debugger_script_path_size: usize,
}

/// The 3.14 layout (CPython's `Include/internal/pycore_debug_offsets.h` on the 3.14
/// branch; checked against Debian's python3.14 by `tests/inject_offsets.rs`).
pub const LAYOUT_3_14: Layout = Layout {
    runtime_size: 3,
    interpreters_head: 5,
    threads_main: 10,
    thread_state_size: 22,
    eval_breaker: 89,
    remote_debugger_support: 90,
    remote_debugging_enabled: 91,
    debugger_pending_call: 92,
    debugger_script_path: 93,
    debugger_script_path_size: 94,
};

/// The offsets the PEP 768 handshake needs, read and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebugOffsets {
    /// The interpreter's version.
    pub version: PyVersion,
    /// A free-threaded build.
    pub free_threaded: bool,
    /// `sizeof(_PyRuntimeState)`.
    pub runtime_size: u64,
    /// Offset of the interpreter list's head in the runtime state.
    pub interpreters_head: u64,
    /// Offset of the main thread state's pointer in the interpreter state.
    pub threads_main: u64,
    /// Offset of `eval_breaker` in the thread state.
    pub eval_breaker: u64,
    /// Offset of the remote debugger support struct in the thread state.
    pub remote_debugger_support: u64,
    /// Offset of the `remote_debug` config flag (an `int`) in the interpreter state.
    pub remote_debugging_enabled: u64,
    /// Offset of the pending flag (an `int`) in the support struct.
    pub debugger_pending_call: u64,
    /// Offset of the script path buffer in the support struct.
    pub debugger_script_path: u64,
    /// Size of the script path buffer, its terminating NUL included.
    pub debugger_script_path_size: u64,
}

/// Why a table could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum OffsetsError {
    /// The table does not start with the cookie: a Python older than 3.13 (or not
    /// CPython).
    NoCookie,
    /// A version without a known layout.
    Unknown(PyVersion),
    /// Older than 3.14: no PEP 768.
    TooOld(PyVersion),
    /// The values do not make sense for the layout.
    Nonsense(String),
}

/// Reads the table at the start of a `PyRuntime` section, `section_size` bytes long
/// (`None` when not known).
pub fn parse(bytes: &[u8], section_size: Option<u64>) -> Result<DebugOffsets, OffsetsError> {
    if bytes.get(..8) != Some(COOKIE.as_slice()) {
        return Err(OffsetsError::NoCookie);
    }
    let word = |i: usize| -> Option<u64> {
        let b = bytes.get(i * 8..i * 8 + 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    };
    let version = PyVersion(word(1).ok_or_else(|| short(bytes))?);
    let layout = match (version.major(), version.minor()) {
        (3, 13) | (3, 12) => return Err(OffsetsError::TooOld(version)),
        (3, 14) if version.is_final() => &LAYOUT_3_14,
        _ => return Err(OffsetsError::Unknown(version)),
    };
    let get = |i: usize| word(i).ok_or_else(|| short(bytes));
    let offsets = DebugOffsets {
        version,
        free_threaded: get(2)? != 0,
        runtime_size: get(layout.runtime_size)?,
        interpreters_head: get(layout.interpreters_head)?,
        threads_main: get(layout.threads_main)?,
        eval_breaker: get(layout.eval_breaker)?,
        remote_debugger_support: get(layout.remote_debugger_support)?,
        remote_debugging_enabled: get(layout.remote_debugging_enabled)?,
        debugger_pending_call: get(layout.debugger_pending_call)?,
        debugger_script_path: get(layout.debugger_script_path)?,
        debugger_script_path_size: get(layout.debugger_script_path_size)?,
    };
    check(&offsets, get(layout.thread_state_size)?, section_size)?;
    Ok(offsets)
}

fn short(bytes: &[u8]) -> OffsetsError {
    OffsetsError::Nonsense(format!("the table is cut short ({} bytes)", bytes.len()))
}

/// Checks that the values fit together; a wrong layout fails here.
fn check(
    o: &DebugOffsets,
    thread_state_size: u64,
    section: Option<u64>,
) -> Result<(), OffsetsError> {
    let nonsense = |what: String| Err(OffsetsError::Nonsense(what));
    if let Some(size) = section
        && size != o.runtime_size
    {
        return nonsense(format!(
            "the runtime state's size {} is not the section's {size}",
            o.runtime_size
        ));
    }
    if o.interpreters_head + 8 > o.runtime_size {
        return nonsense(format!(
            "the interpreter list at {} lies outside the runtime state",
            o.interpreters_head
        ));
    }
    let path_end = o.debugger_script_path + o.debugger_script_path_size;
    if o.debugger_script_path_size < 64 || o.debugger_script_path_size > 65536 {
        return nonsense(format!(
            "a script path buffer of {} bytes",
            o.debugger_script_path_size
        ));
    }
    if o.debugger_pending_call + 4 > o.debugger_script_path
        && o.debugger_script_path + o.debugger_script_path_size > o.debugger_pending_call
    {
        return nonsense("the pending flag overlaps the script path".to_owned());
    }
    if o.remote_debugger_support + path_end > thread_state_size
        || o.eval_breaker + 8 > thread_state_size
    {
        return nonsense(format!(
            "the debugger support fields lie outside the thread state ({thread_state_size} bytes)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3.14 table with the values of Debian's python3.14 3.14.10.
    fn table() -> Vec<u8> {
        let mut words = vec![0u64; READ_SIZE / 8];
        words[1] = 0x030e_0af0;
        words[3] = 0x4d4c8;
        words[5] = 0x328;
        words[10] = 0x1cc0;
        words[22] = 0x340;
        words[89..95].copy_from_slice(&[0x18, 0x130, 0x1f8c, 0, 4, 512]);
        let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes[..8].copy_from_slice(COOKIE);
        bytes
    }

    #[test]
    fn a_3_14_table_is_read() {
        let o = parse(&table(), Some(0x4d4c8)).unwrap();
        assert_eq!(o.version.to_string(), "3.14.10");
        assert_eq!(o.threads_main, 0x1cc0);
        assert_eq!(o.remote_debugging_enabled, 0x1f8c);
        assert_eq!(
            (o.debugger_script_path, o.debugger_script_path_size),
            (4, 512)
        );
        assert!(!o.free_threaded);
    }

    #[test]
    fn versions_are_named() {
        assert_eq!(PyVersion(0x030f_00a1).to_string(), "3.15.0a1");
        assert_eq!(PyVersion(0x030e_00c2).to_string(), "3.14.0rc2");
        assert_eq!(PyVersion(0x030d_02f0).to_string(), "3.13.2");
    }

    #[test]
    fn other_versions_are_refused_by_name() {
        let mut t = table();
        t[8..16].copy_from_slice(&0x030f_00a1u64.to_le_bytes());
        assert_eq!(
            parse(&t, None),
            Err(OffsetsError::Unknown(PyVersion(0x030f_00a1)))
        );
        t[8..16].copy_from_slice(&0x030e_00b3u64.to_le_bytes());
        assert_eq!(
            parse(&t, None),
            Err(OffsetsError::Unknown(PyVersion(0x030e_00b3)))
        );
        t[8..16].copy_from_slice(&0x030d_02f0u64.to_le_bytes());
        assert_eq!(
            parse(&t, None),
            Err(OffsetsError::TooOld(PyVersion(0x030d_02f0)))
        );
        t[..8].copy_from_slice(b"notpy313");
        assert_eq!(parse(&t, None), Err(OffsetsError::NoCookie));
    }

    #[test]
    fn a_layout_that_does_not_fit_is_refused() {
        assert!(matches!(
            parse(&table(), Some(4096)),
            Err(OffsetsError::Nonsense(_))
        ));
        let mut t = table();
        t[94 * 8..95 * 8].copy_from_slice(&3u64.to_le_bytes());
        assert!(matches!(parse(&t, None), Err(OffsetsError::Nonsense(_))));
        let mut t = table();
        t[90 * 8..91 * 8].copy_from_slice(&0x400u64.to_le_bytes());
        assert!(matches!(parse(&t, None), Err(OffsetsError::Nonsense(_))));
        assert!(matches!(
            parse(&table()[..100], None),
            Err(OffsetsError::Nonsense(_))
        ));
    }
}
