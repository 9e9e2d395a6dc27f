//! SaslHandshake: choosing a SASL mechanism.
//!
//! Request and response types for every supported version, generated from `core/schema/sasl_handshake.msg`.

include!(concat!(env!("OUT_DIR"), "/api/sasl_handshake.rs"));
