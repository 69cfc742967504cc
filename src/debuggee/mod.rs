//! The debugged app as seen through `/proc`: [`discover`] finds it, [`memory`] reads it,
//! [`cgroup`] reads its cgroup's memory where visible, [`monitor`] samples it on a
//! schedule and keeps the history the HTTP endpoints show; [`growth`] tells steps from
//! trends, [`events`] gives the steps their causes and adds up what debugging cost,
//! [`history`] keeps the recent samples and a longer downsampled history.

pub mod cgroup;
pub mod discover;
pub mod events;
pub mod growth;
pub mod history;
pub mod memory;
pub mod monitor;
