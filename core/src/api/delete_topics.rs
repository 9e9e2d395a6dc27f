//! DeleteTopics: topic deletion by name (or id from v6).
//!
//! Request and response types for every supported version, generated from `core/schema/delete_topics.msg`.

include!(concat!(env!("OUT_DIR"), "/api/delete_topics.rs"));
