//! DescribeCluster: cluster id, controller and brokers, used by admin clients.
//!
//! Request and response types for every supported version, generated from `core/schema/describe_cluster.msg`.

include!(concat!(env!("OUT_DIR"), "/api/describe_cluster.rs"));
