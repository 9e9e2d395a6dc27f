//! JoinGroup: the classic group protocol's join phase (with the MEMBER_ID_REQUIRED round trip from v4).
//!
//! Request and response types for every supported version, generated from `core/schema/join_group.msg`.

include!(concat!(env!("OUT_DIR"), "/api/join_group.rs"));
