//! A storage that keeps each partition's log in memory, using the embedded log's format.
//!
//! For tests, simulations and embedding examples: it performs a [`StorageCommand`] at once and
//! returns its completion, exactly as a disk-backed driver would later. Segments roll at
//! `segment_bytes` like the disk log's, so retention can be exercised. Nothing survives the process.

use super::log::{find_by_time, select_batches};
use super::{StorageCommand, StorageCompletion, StorageError};
use crate::types::{LogPosition, Offset, TopicPartition};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;

/// One partition: segments by base offset.
#[derive(Default)]
struct MemoryLog {
    segments: BTreeMap<Offset, BytesMut>,
    next_offset: Offset,
}

impl MemoryLog {
    /// The log from `from` on: the rest of its segment, then every later segment whole.
    fn chunks_from(&self, from: LogPosition) -> impl Iterator<Item = &[u8]> {
        self.segments
            .range(from.segment..)
            .map(move |(&base, bytes)| {
                let start = if base == from.segment {
                    (from.byte as usize).min(bytes.len())
                } else {
                    0
                };
                &bytes[start..]
            })
    }
}

/// All partitions' logs.
pub struct MemoryStorage {
    logs: BTreeMap<TopicPartition, MemoryLog>,
    segment_bytes: usize,
    /// Fail every append from now on (to test failure paths).
    pub fail_appends: bool,
    /// Store only this many batches of the next append and report the rest failed (as SMQ does
    /// when a publish stream breaks part way).
    pub partial_append: Option<usize>,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        MemoryStorage::new()
    }
}

impl MemoryStorage {
    /// An empty storage with (practically) unbounded segments.
    pub fn new() -> MemoryStorage {
        MemoryStorage::with_segment_bytes(usize::MAX)
    }

    /// An empty storage whose segments roll once they hold `segment_bytes`.
    pub fn with_segment_bytes(segment_bytes: usize) -> MemoryStorage {
        MemoryStorage {
            logs: BTreeMap::new(),
            segment_bytes,
            fail_appends: false,
            partial_append: None,
        }
    }

    /// Number of segments a partition holds.
    pub fn segment_count(&self, partition: &TopicPartition) -> usize {
        self.logs.get(partition).map_or(0, |l| l.segments.len())
    }

    /// Performs `command` and returns its completion.
    pub fn perform(&mut self, command: &StorageCommand) -> StorageCompletion {
        let unknown = |tp: &TopicPartition| {
            StorageCompletion::Failed(StorageError::UnknownPartition(tp.to_string()))
        };
        match command {
            StorageCommand::CreatePartition { partition, .. } => {
                let log = self.logs.entry(partition.clone()).or_default();
                log.segments.entry(Offset(0)).or_default();
                StorageCompletion::Done
            }
            StorageCommand::DeletePartition { partition, .. } => {
                self.logs.remove(partition);
                StorageCompletion::Done
            }
            StorageCommand::WriteTopicConfig { .. } => StorageCompletion::Done,
            StorageCommand::TruncateBefore {
                partition, offset, ..
            } => {
                let Some(log) = self.logs.get_mut(partition) else {
                    return unknown(partition);
                };
                // Drop segments whose successor starts at or below the new log start.
                while log.segments.len() > 1 {
                    let mut bases = log.segments.keys();
                    let (first, second) = match (bases.next(), bases.next()) {
                        (Some(a), Some(b)) => (*a, *b),
                        _ => break,
                    };
                    if second > *offset {
                        break;
                    }
                    log.segments.remove(&first);
                }
                StorageCompletion::Done
            }
            StorageCommand::Append {
                partition, batches, ..
            } => {
                if self.fail_appends {
                    return StorageCompletion::Failed(StorageError::Io("injected failure".into()));
                }
                let segment_bytes = self.segment_bytes;
                let Some(log) = self.logs.get_mut(partition) else {
                    return unknown(partition);
                };
                let Some(first) = batches.first() else {
                    return StorageCompletion::Failed(StorageError::Io("empty append".into()));
                };
                let active_len = log.segments.values().next_back().map_or(0, BytesMut::len);
                if active_len >= segment_bytes && active_len > 0 {
                    log.segments.insert(first.base_offset, BytesMut::new());
                }
                let Some((&segment, active)) = log.segments.iter_mut().next_back() else {
                    return unknown(partition);
                };
                let position = LogPosition {
                    segment,
                    byte: active.len() as u64,
                };
                let keep = self.partial_append.take();
                let mut stored = 0u64;
                for b in batches.iter().take(keep.unwrap_or(usize::MAX)) {
                    active.put_i64(b.base_offset.0);
                    active.put_slice(&b.bytes[8..]);
                    let count = b
                        .bytes
                        .get(57..61)
                        .map_or(0, |c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    log.next_offset = b.base_offset.plus(i64::from(count));
                    stored += count.max(0) as u64;
                }
                match keep {
                    Some(_) => StorageCompletion::PartlyAppended {
                        position,
                        records: stored,
                    },
                    None => StorageCompletion::Appended { position },
                }
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
                for chunk in log.chunks_from(*from) {
                    let (skip, take) = select_batches(chunk, *offset, *end, *max_bytes);
                    if take > 0 {
                        return StorageCompletion::Read {
                            batches: Bytes::copy_from_slice(&chunk[skip..skip + take]),
                        };
                    }
                }
                StorageCompletion::Read {
                    batches: Bytes::new(),
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
                for chunk in log.chunks_from(*from) {
                    let chunk = Bytes::copy_from_slice(chunk);
                    if let Some(hit) = find_by_time(&chunk, *timestamp, *end, usize::MAX) {
                        return StorageCompletion::Found { hit: Some(hit) };
                    }
                }
                StorageCompletion::Found { hit: None }
            }
        }
    }
}
