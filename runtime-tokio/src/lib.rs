//! The Kelp gateway on tokio: sockets, timers, files and the SMQ gRPC client around the sans-IO `kelp-core`.
//!
//! Empty until the broker-core issue: it will hold the `kelp` binary (CLI, listener, connection tasks,
//! embedded log file I/O, metrics) as a thin driver of `kelp_core`.
