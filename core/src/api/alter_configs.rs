//! AlterConfigs: whole-set replacement of resource configs.
//!
//! Request and response types for every supported version, generated from `core/schema/alter_configs.msg`.

include!(concat!(env!("OUT_DIR"), "/api/alter_configs.rs"));
