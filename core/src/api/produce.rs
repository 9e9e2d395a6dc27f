//! Produce: record batches appended to partitions, acknowledged per `acks`.
//!
//! Request and response types for every supported version, generated from `core/schema/produce.msg`.

include!(concat!(env!("OUT_DIR"), "/api/produce.rs"));
