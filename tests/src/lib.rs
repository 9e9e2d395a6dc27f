//! End-to-end tests of Kelp with real Kafka clients and a real SeaweedFS.
//!
//! The harness arrives with the broker-core issue. Until then the codec is proven inside `kelp-core`:
//! its unit and property tests, and the golden bytes captured from real clients under
//! `core/tests/fixtures/golden/` (capture scripts in `tests/golden/`).
