//! Fetch: record batches read from partitions, with long-poll (`max_wait_ms`/`min_bytes`) and fetch sessions.
//!
//! Request and response types for every supported version, generated from `core/schema/fetch.msg`.

include!(concat!(env!("OUT_DIR"), "/api/fetch.rs"));
