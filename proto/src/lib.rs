//! SeaweedMQ gRPC definitions (prost/tonic) for the subset of the `SeaweedMessaging` contract Kelp uses.
//!
//! Empty until the SMQ backend issue: it will hold Kelp's own `.proto` files for `messaging_pb` and
//! `schema_pb` (same package, service, method names and field numbers as the broker) and their generated
//! types.
