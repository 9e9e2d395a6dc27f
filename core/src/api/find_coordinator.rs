//! FindCoordinator: the broker coordinating a group or transaction (batched keys from v4).
//!
//! Request and response types for every supported version, generated from `core/schema/find_coordinator.msg`.

include!(concat!(env!("OUT_DIR"), "/api/find_coordinator.rs"));
