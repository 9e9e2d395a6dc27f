//! OffsetCommit: committing consumer positions for a group.
//!
//! Request and response types for every supported version, generated from `core/schema/offset_commit.msg`.

include!(concat!(env!("OUT_DIR"), "/api/offset_commit.rs"));
