//! OffsetForLeaderEpoch: the end offset of a leader epoch, used by consumers to detect truncation.
//!
//! Request and response types for every supported version, generated from `core/schema/offset_for_leader_epoch.msg`.

include!(concat!(env!("OUT_DIR"), "/api/offset_for_leader_epoch.rs"));
