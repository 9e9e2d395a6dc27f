//! CreateTopics: topic creation with partition counts, replication and configs.
//!
//! Request and response types for every supported version, generated from `core/schema/create_topics.msg`.

include!(concat!(env!("OUT_DIR"), "/api/create_topics.rs"));
