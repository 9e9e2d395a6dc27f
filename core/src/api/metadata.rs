//! Metadata: brokers, topics, partitions and their leaders (and topic ids from v10).
//!
//! Request and response types for every supported version, generated from `core/schema/metadata.msg`.

include!(concat!(env!("OUT_DIR"), "/api/metadata.rs"));
