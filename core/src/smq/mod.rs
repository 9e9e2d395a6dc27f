//! The SeaweedMQ (SMQ) backend's logic, sans-IO: the runtimes move its messages over gRPC.
//!
//! Kafka offsets *are* SMQ offsets: each Kafka partition has exactly one publish stream (owned by one
//! gateway), the ledger hands out the next offsets, and every broker acknowledgement must carry the
//! offset the ledger expected ([`publish::PublishSession`] checks it). What SMQ does not keep —
//! batch boundaries with their timestamps and idempotent producers' sequences, log start offsets,
//! topic configs — Kelp records in its own SMQ topic `kafka-system/offset-mappings`
//! ([`mappings`]) before a produce is acknowledged, and rebuilds from it at start-up, reconciled
//! with each partition's high watermark rather than a scan of the data.
//!
//! - [`mapping`]: Kafka topic and partition ⇄ SMQ topic and ring range.
//! - [`record`]: Kafka records ⇄ SMQ `DataMessage`s (Kelp's enriched `RecordValue` or raw values).
//! - [`publish`]: one publish stream's state machine (init, hello, pipelined data, in-order acks).
//! - [`mappings`]: the ledger's entries in `kafka-system/offset-mappings` and the restore from them.
//! - [`backend`]: the storage backend on SMQ, a state machine the runtime drives with the replies to
//!   its gRPC [`io::Call`]s (publisher tasks, subscription cursors, the restore at start-up).

pub mod backend;
mod client;
mod cursor;
pub mod io;
pub mod mapping;
pub mod mappings;
pub mod publish;
mod publisher;
pub mod record;
mod restore;

pub use client::SmqError;

pub use kelp_proto::{messaging_pb, schema_pb};
