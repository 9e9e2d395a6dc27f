//! DeleteRecords: moving a partition's log start offset forward.
//!
//! Request and response types for every supported version, generated from `core/schema/delete_records.msg`.

include!(concat!(env!("OUT_DIR"), "/api/delete_records.rs"));
