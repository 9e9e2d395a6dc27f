//! OffsetFetch: reading committed positions (several groups at once from v8).
//!
//! Request and response types for every supported version, generated from `core/schema/offset_fetch.msg`.

include!(concat!(env!("OUT_DIR"), "/api/offset_fetch.rs"));
