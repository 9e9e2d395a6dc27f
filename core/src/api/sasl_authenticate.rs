//! SaslAuthenticate: SASL tokens wrapped in Kafka frames.
//!
//! Request and response types for every supported version, generated from `core/schema/sasl_authenticate.msg`.

include!(concat!(env!("OUT_DIR"), "/api/sasl_authenticate.rs"));
