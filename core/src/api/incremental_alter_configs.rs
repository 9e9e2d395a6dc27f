//! IncrementalAlterConfigs: set/delete/append/subtract operations on single config keys.
//!
//! Request and response types for every supported version, generated from `core/schema/incremental_alter_configs.msg`.

include!(concat!(
    env!("OUT_DIR"),
    "/api/incremental_alter_configs.rs"
));
