//! The debugged app as seen through `/proc`: [`discover`] finds it, [`memory`] reads it,
//! [`monitor`] samples it on a schedule and keeps the history the HTTP endpoints show.

pub mod discover;
pub mod memory;
pub mod monitor;
