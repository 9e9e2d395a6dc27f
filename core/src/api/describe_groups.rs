//! DescribeGroups: state, protocol and members of classic groups.
//!
//! Request and response types for every supported version, generated from `core/schema/describe_groups.msg`.

include!(concat!(env!("OUT_DIR"), "/api/describe_groups.rs"));
