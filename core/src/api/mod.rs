//! One module per Kafka API: its request and response types at every version Kelp speaks.
//!
//! The types are generated at build time from Kelp's schema files (`core/schema/*.msg`), so the field
//! layouts live in one declarative place and every API follows the same rules for versions, flexible
//! encodings and tagged fields. [`ApiKey`] is the one table that says which APIs and versions exist;
//! the header versions ([`crate::codec::header`]) and ApiVersions answers derive from it.

use crate::codec::wire::{PResult, Src};
use crate::codec::{CodecError, VersionRange};
use bytes::BytesMut;

pub mod alter_configs;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;

include!(concat!(env!("OUT_DIR"), "/api/api_table.rs"));

#[cfg(test)]
mod tests;
