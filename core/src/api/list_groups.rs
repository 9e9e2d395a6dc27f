//! ListGroups: every group, with state and type filters.
//!
//! Request and response types for every supported version, generated from `core/schema/list_groups.msg`.

include!(concat!(env!("OUT_DIR"), "/api/list_groups.rs"));
