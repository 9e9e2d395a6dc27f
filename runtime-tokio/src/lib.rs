//! The Kelp gateway on tokio: sockets, timers, files and the metrics endpoint around the sans-IO
//! `kelp-core`. Every decision lives in the core; this crate moves bytes (see [`server`] for the
//! concurrency model).

pub mod allocator;
pub mod config;
pub mod disk;
#[cfg(target_os = "linux")]
pub mod file_region;
pub mod metrics;
pub mod runtime;
pub mod server;
pub mod smq;
pub mod storage;
