//! ConsumerGroupDescribe: state and members of KIP-848 consumer groups.
//!
//! Request and response types for every supported version, generated from `core/schema/consumer_group_describe.msg`.

include!(concat!(env!("OUT_DIR"), "/api/consumer_group_describe.rs"));
