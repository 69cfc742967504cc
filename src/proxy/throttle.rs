//! Bounded logging for events an attacker can cause at will (refused attaches, broken
//! frames, connections that never authenticate).
//!
//! Each kind of event may log [`PER_WINDOW`] lines per [`WINDOW`]; beyond that the lines
//! are counted but not written, and the next line written for that kind says how many
//! were left out. The exact numbers are always in the metrics
//! (`auth_failures_total`, `sessions_total`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines per kind and window.
pub const PER_WINDOW: u32 = 10;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// One kind's count in the current window.
struct Window {
    /// When the window began.
    start: Instant,
    /// Lines written in it.
    written: u32,
    /// Lines left out since the last line written.
    left_out: u64,
}

/// Per-kind log budgets.
#[derive(Default)]
pub struct LogThrottle {
    /// Windows by kind.
    windows: Mutex<HashMap<&'static str, Window>>,
}

impl LogThrottle {
    /// Whether a line of `kind` may be written now; `Some(n)` says yes, with `n` lines of
    /// this kind left out before it.
    pub fn admit(&self, kind: &'static str) -> Option<u64> {
        self.admit_at(kind, Instant::now())
    }

    fn admit_at(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let window = windows.entry(kind).or_insert(Window {
            start: now,
            written: 0,
            left_out: 0,
        });
        if now.duration_since(window.start) >= WINDOW {
            window.start = now;
            window.written = 0;
        }
        if window.written < PER_WINDOW {
            window.written += 1;
            Some(std::mem::take(&mut window.left_out))
        } else {
            window.left_out += 1;
            None
        }
    }
}

/// Logs with `tracing` at `$level` if the throttle admits a line of `$kind`, adding the
/// field `left_out` (lines of this kind not written before this one).
#[macro_export]
macro_rules! throttled {
    ($throttle:expr, $kind:expr, $level:ident!($($arg:tt)*)) => {
        if let Some(left_out) = $throttle.admit($kind) {
            tracing::$level!(kind = $kind, left_out, $($arg)*);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded_per_window_and_counted() {
        let t = LogThrottle::default();
        let now = Instant::now();
        let written = (0..1000).filter(|_| t.admit_at("x", now).is_some()).count();
        assert_eq!(written, PER_WINDOW as usize);
        assert!(t.admit_at("y", now).is_some(), "kinds are separate");
        let next = now + WINDOW;
        assert_eq!(
            t.admit_at("x", next),
            Some(1000 - u64::from(PER_WINDOW)),
            "the next window's first line says how many were left out"
        );
        assert_eq!(t.admit_at("x", next), Some(0));
    }
}
