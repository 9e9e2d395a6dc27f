//! CreatePartitions: growing a topic's partition count.
//!
//! Request and response types for every supported version, generated from `core/schema/create_partitions.msg`.

include!(concat!(env!("OUT_DIR"), "/api/create_partitions.rs"));
