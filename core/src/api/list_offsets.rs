//! ListOffsets: earliest, latest, by-timestamp and max-timestamp offset lookups.
//!
//! Request and response types for every supported version, generated from `core/schema/list_offsets.msg`.

include!(concat!(env!("OUT_DIR"), "/api/list_offsets.rs"));
