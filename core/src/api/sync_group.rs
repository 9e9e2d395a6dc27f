//! SyncGroup: the classic group protocol's assignment phase.
//!
//! Request and response types for every supported version, generated from `core/schema/sync_group.msg`.

include!(concat!(env!("OUT_DIR"), "/api/sync_group.rs"));
