//! LeaveGroup: members leaving a classic group (batched from v3).
//!
//! Request and response types for every supported version, generated from `core/schema/leave_group.msg`.

include!(concat!(env!("OUT_DIR"), "/api/leave_group.rs"));
