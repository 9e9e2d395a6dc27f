//! ApiVersions: the first request of most clients, asking which versions of each API the broker speaks.
//!
//! Request and response types for every supported version, generated from `core/schema/api_versions.msg`.

include!(concat!(env!("OUT_DIR"), "/api/api_versions.rs"));
