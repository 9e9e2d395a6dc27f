//! DescribeConfigs: topic and broker configuration entries.
//!
//! Request and response types for every supported version, generated from `core/schema/describe_configs.msg`.

include!(concat!(env!("OUT_DIR"), "/api/describe_configs.rs"));
