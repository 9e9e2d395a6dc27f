//! The Kelp gateway on smol, driving the same sans-IO `kelp-core` as the tokio runtime.
//!
//! Empty until the smol runtime issue: it will hold the `kelp-smol` binary with the same CLI, config,
//! metrics and behaviour as `kelp`.
