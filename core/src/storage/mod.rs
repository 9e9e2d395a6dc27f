//! The storage contract between the core and whoever owns the disk (or SMQ).
//!
//! The core never touches a file. It emits [`StorageCommand`]s, each with a [`StorageToken`], and the
//! driver hands back a [`StorageCompletion`] for that token when the work is done (in any order).
//! Ordering promise the driver must keep: appends to one partition are performed in the order they
//! were emitted. A completed `Append` with `sync: true` means the bytes are durable (fsync'ed).
//! Commands that change a partition's log (create, append, truncate, delete) must be carried out
//! in emission order per partition; reads and lookups touch only completed data (below the high
//! watermark) and may run concurrently with anything.
//!
//! The embedded log's on-disk format and its recovery logic live in [`log`]: pure functions over
//! bytes, so that they are testable without a disk and shared by every runtime.

pub mod disk;
pub mod file_log;
pub mod log;
pub mod memory;
pub mod page_cache;
pub mod wal;
pub mod writer;

#[cfg(test)]
mod tests;

use crate::types::{LogPosition, Offset, TimestampMs, TopicPartition};
use bytes::Bytes;

/// Names one storage command; its completion carries the same token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageToken(pub u64);

/// Work for the storage driver.
#[derive(Clone, Debug, PartialEq)]
pub enum StorageCommand {
    /// Create an empty log for the partition (a no-op if it exists).
    CreatePartition {
        /// The token of the completion.
        token: StorageToken,
        /// The partition.
        partition: TopicPartition,
        /// How many partitions the topic has with this one (SMQ configures a topic's partitions
        /// all at once, as ranges of its ring).
        topic_partitions: i32,
    },
    /// Remove the partition's log and all its data.
    DeletePartition {
        /// The token of the completion.
        token: StorageToken,
        /// The partition.
        partition: TopicPartition,
    },
    /// Append batches at the end of the log, each with the base offset the ledger assigned.
    ///
    /// The batch bytes are the producer's, untouched; the driver writes `base_offset` over the
    /// first 8 bytes as it writes (the CRC does not cover them), so no record byte is copied in core.
    Append {
        /// The token of the completion.
        token: StorageToken,
        /// The partition.
        partition: TopicPartition,
        /// The batches, in offset order, with their assigned base offsets.
        batches: Vec<AppendBatch>,
        /// Make the bytes durable (fsync) before completing.
        sync: bool,
    },
    /// Read whole batches, starting with the batch that holds `offset`.
    ///
    /// `from` is a position at or before that batch (from the ledger's sparse index); the driver
    /// scans batch headers forward from it. At least one batch is returned if any exists at or after
    /// `offset`, even beyond `max_bytes` (Kafka's rule, so that consumers never get stuck).
    Read {
        /// The token of the completion.
        token: StorageToken,
        /// The partition.
        partition: TopicPartition,
        /// First offset wanted.
        offset: Offset,
        /// Where to start scanning.
        from: LogPosition,
        /// Soft limit on the bytes returned.
        max_bytes: usize,
        /// Stop before this offset (the high watermark): data at or above it is not exposed.
        end: Offset,
    },
    /// Find the first record with timestamp >= `timestamp`, scanning from `from`.
    FindByTime {
        /// The token of the completion.
        token: StorageToken,
        /// The partition.
        partition: TopicPartition,
        /// The timestamp to look for.
        timestamp: TimestampMs,
        /// Where to start scanning.
        from: LogPosition,
        /// Stop before this offset.
        end: Offset,
    },
    /// Store a topic's explicitly set configuration (replacing what was stored) with its partition 0.
    WriteTopicConfig {
        /// The token of the completion.
        token: StorageToken,
        /// Partition 0 of the topic.
        partition: TopicPartition,
        /// (name, value) pairs.
        entries: Vec<(String, String)>,
    },
    /// Forget data before `offset` (DeleteRecords, retention): whole segments below it may go.
    TruncateBefore {
        /// The token of the completion.
        token: StorageToken,
        /// The partition.
        partition: TopicPartition,
        /// The new log start offset.
        offset: Offset,
    },
}

impl StorageCommand {
    /// The command's token.
    pub fn token(&self) -> StorageToken {
        match self {
            StorageCommand::CreatePartition { token, .. }
            | StorageCommand::DeletePartition { token, .. }
            | StorageCommand::Append { token, .. }
            | StorageCommand::Read { token, .. }
            | StorageCommand::FindByTime { token, .. }
            | StorageCommand::TruncateBefore { token, .. }
            | StorageCommand::WriteTopicConfig { token, .. } => *token,
        }
    }

    /// The partition whose log the command changes, or `None` for a read or lookup. Such commands
    /// must be carried out one at a time per partition, in the order they were emitted (a driver
    /// gives each partition a writer); reads touch only completed data and may run at once.
    pub fn changes_log_of(&self) -> Option<&TopicPartition> {
        match self {
            StorageCommand::CreatePartition { partition, .. }
            | StorageCommand::DeletePartition { partition, .. }
            | StorageCommand::Append { partition, .. }
            | StorageCommand::TruncateBefore { partition, .. }
            | StorageCommand::WriteTopicConfig { partition, .. } => Some(partition),
            StorageCommand::Read { .. } | StorageCommand::FindByTime { .. } => None,
        }
    }
}

/// One batch of an append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendBatch {
    /// The offset assigned to the batch's first record.
    pub base_offset: Offset,
    /// The whole v2 batch as the producer sent it.
    pub bytes: Bytes,
}

/// The result of a [`StorageCommand`].
#[derive(Clone, Debug, PartialEq)]
pub enum StorageCompletion {
    /// `CreatePartition`, `DeletePartition`, `TruncateBefore` or `WriteTopicConfig` done.
    Done,
    /// `Append` done: where the first appended batch starts.
    Appended {
        /// Position of the first batch appended.
        position: LogPosition,
    },
    /// `Append` failed after its first `records` records were stored (SMQ acknowledged them before
    /// the stream broke): those stay in the log, the rest of the append is not stored.
    PartlyAppended {
        /// Position of the first batch appended.
        position: LogPosition,
        /// Records stored, from the append's first.
        records: u64,
    },
    /// `Append` failed, nothing of it stored, and the log turned out to end at `end`, beyond where
    /// the core thought: records it did not know of are there (SMQ stored records whose acks were
    /// lost with a broken stream). They start at `position` and become part of the log.
    Diverged {
        /// Where the unknown records start.
        position: LogPosition,
        /// Where the log ends.
        end: Offset,
        /// The whole idempotent batches among them (their producers' retries are duplicates).
        producers: Vec<StoredProducerBatch>,
    },
    /// `Read` done: whole batches (possibly none).
    Read {
        /// Concatenated batches.
        batches: Bytes,
    },
    /// `FindByTime` done.
    Found {
        /// The offset and timestamp found, or `None` if no record is that late.
        hit: Option<(Offset, TimestampMs)>,
    },
    /// The command failed; nothing was changed by an `Append` that fails.
    Failed(StorageError),
}

impl StorageCompletion {
    /// The completion of a `Read` that gave `result`.
    pub fn of_read(result: Result<Bytes, StorageError>) -> StorageCompletion {
        result.map_or_else(StorageCompletion::Failed, |batches| {
            StorageCompletion::Read { batches }
        })
    }

    /// The completion of a `FindByTime` that gave `result`.
    pub fn of_lookup(
        result: Result<Option<(Offset, TimestampMs)>, StorageError>,
    ) -> StorageCompletion {
        result.map_or_else(StorageCompletion::Failed, |hit| StorageCompletion::Found {
            hit,
        })
    }
}

/// An idempotent batch found in the log: (producer id, epoch, first sequence, records, base offset).
pub type StoredProducerBatch = (i64, i16, i32, i32, Offset);

/// Why a storage command failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// An I/O error, with the OS's words.
    #[error("storage I/O error: {0}")]
    Io(String),
    /// The partition's log does not exist.
    #[error("no log for partition {0}")]
    UnknownPartition(String),
    /// Data on disk failed a check.
    #[error("corrupt log data: {0}")]
    Corrupt(String),
}

/// What recovery found for one partition at start-up (see [`file_log::PartitionLog::recover`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredPartition {
    /// The partition.
    pub partition: TopicPartition,
    /// First offset still stored.
    pub log_start_offset: Offset,
    /// Offset the next appended record gets.
    pub next_offset: Offset,
    /// Sparse index entries, ascending.
    pub index: Vec<crate::ledger::IndexEntry>,
    /// The topic's stored configuration (kept with partition 0; empty elsewhere).
    pub topic_config: Vec<(String, String)>,
    /// Idempotent producers' last batches, rebuilt from the log.
    pub producers: crate::producer::ProducerHistory,
}
