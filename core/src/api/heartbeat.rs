//! Heartbeat: classic group liveness and rebalance notification.
//!
//! Request and response types for every supported version, generated from `core/schema/heartbeat.msg`.

include!(concat!(env!("OUT_DIR"), "/api/heartbeat.rs"));
