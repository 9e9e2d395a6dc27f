//! ConsumerGroupHeartbeat: the KIP-848 consumer group protocol's single request.
//!
//! Request and response types for every supported version, generated from `core/schema/consumer_group_heartbeat.msg`.

include!(concat!(env!("OUT_DIR"), "/api/consumer_group_heartbeat.rs"));
