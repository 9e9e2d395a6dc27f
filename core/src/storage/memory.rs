//! A storage that keeps each partition's log in memory, using the embedded log's format.
//!
//! For tests, simulations and embedding examples: it performs a [`StorageCommand`] at once and
//! returns its completion, exactly as a disk-backed driver would later. Nothing survives the process.

use super::log::{find_by_time, select_batches};
use super::{StorageCommand, StorageCompletion, StorageError};
use crate::types::{LogPosition, Offset, TopicPartition};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;

/// All partitions' logs, one segment each.
#[derive(Default)]
pub struct MemoryStorage {
    logs: BTreeMap<TopicPartition, BytesMut>,
    /// Fail every append from now on (to test failure paths).
    pub fail_appends: bool,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// The bytes of a partition's log.
    pub fn log(&self, partition: &TopicPartition) -> Option<&[u8]> {
        self.logs.get(partition).map(|b| &b[..])
    }

    /// Performs `command` and returns its completion.
    pub fn perform(&mut self, command: &StorageCommand) -> StorageCompletion {
        let unknown = |tp: &TopicPartition| {
            StorageCompletion::Failed(StorageError::UnknownPartition(tp.to_string()))
        };
        match command {
            StorageCommand::CreatePartition { partition, .. } => {
                self.logs.entry(partition.clone()).or_default();
                StorageCompletion::Done
            }
            StorageCommand::DeletePartition { partition, .. } => {
                self.logs.remove(partition);
                StorageCompletion::Done
            }
            StorageCommand::TruncateBefore { .. } => StorageCompletion::Done,
            StorageCommand::Append {
                partition, batches, ..
            } => {
                if self.fail_appends {
                    return StorageCompletion::Failed(StorageError::Io("injected failure".into()));
                }
                let Some(log) = self.logs.get_mut(partition) else {
                    return unknown(partition);
                };
                let position = LogPosition {
                    segment: Offset(0),
                    byte: log.len() as u64,
                };
                for b in batches {
                    log.put_i64(b.base_offset.0);
                    log.put_slice(&b.bytes[8..]);
                }
                StorageCompletion::Appended { position }
            }
            StorageCommand::Read {
                partition,
                offset,
                from,
                max_bytes,
                end,
                ..
            } => {
                let Some(log) = self.logs.get(partition) else {
                    return unknown(partition);
                };
                let chunk = &log[(from.byte as usize).min(log.len())..];
                let (skip, take) = select_batches(chunk, *offset, *end, *max_bytes);
                StorageCompletion::Read {
                    batches: Bytes::copy_from_slice(&chunk[skip..skip + take]),
                }
            }
            StorageCommand::FindByTime {
                partition,
                timestamp,
                from,
                end,
                ..
            } => {
                let Some(log) = self.logs.get(partition) else {
                    return unknown(partition);
                };
                let chunk = Bytes::copy_from_slice(&log[(from.byte as usize).min(log.len())..]);
                StorageCompletion::Found {
                    hit: find_by_time(&chunk, *timestamp, *end, usize::MAX),
                }
            }
        }
    }
}
