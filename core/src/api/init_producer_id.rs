//! InitProducerId: producer id and epoch for idempotent and transactional producers.
//!
//! Request and response types for every supported version, generated from `core/schema/init_producer_id.msg`.

include!(concat!(env!("OUT_DIR"), "/api/init_producer_id.rs"));
