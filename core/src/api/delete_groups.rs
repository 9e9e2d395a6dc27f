//! DeleteGroups: removing empty groups.
//!
//! Request and response types for every supported version, generated from `core/schema/delete_groups.msg`.

include!(concat!(env!("OUT_DIR"), "/api/delete_groups.rs"));
