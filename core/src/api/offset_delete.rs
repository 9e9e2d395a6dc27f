//! OffsetDelete: removing committed offsets of a group.
//!
//! Request and response types for every supported version, generated from `core/schema/offset_delete.msg`.

include!(concat!(env!("OUT_DIR"), "/api/offset_delete.rs"));
