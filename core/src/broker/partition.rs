//! Topics and partitions as the broker holds them: the ledger, the appends waiting their turn, and
//! the fetches waiting for data.
//!
//! Appends to one partition go to storage one at a time. Produce requests that arrive while an
//! append is in flight queue up and leave together as the next append: one write (and one fsync)
//! for many producers, and offsets assigned only at dispatch, so a failed append leaves no hole.

use super::{RequestKey, Slot};
use crate::codec::{KStr, Uuid};
use crate::ledger::OffsetLedger;
use crate::storage::RecoveredPartition;
use crate::types::TimestampMs;
use bytes::Bytes;

/// A topic: its id and partitions.
pub(crate) struct Topic {
    pub(crate) id: Uuid,
    pub(crate) partitions: Vec<PartitionState>,
    pub(crate) config: super::configs::TopicConfig,
}

impl Topic {
    pub(crate) fn new(name: &KStr, partitions: usize) -> Topic {
        Topic {
            id: topic_id_for(name.as_str()),
            partitions: (0..partitions).map(|_| PartitionState::default()).collect(),
            config: super::configs::TopicConfig::default(),
        }
    }

    pub(crate) fn restore_partition(&mut self, r: RecoveredPartition) {
        let i = r.partition.partition.max(0) as usize;
        if self.partitions.len() <= i {
            self.partitions.resize_with(i + 1, PartitionState::default);
        }
        self.partitions[i].ledger =
            OffsetLedger::restore(r.log_start_offset, r.next_offset, r.index);
        self.partitions[i].producers = r.producers;
        if !r.topic_config.is_empty() {
            self.config = super::configs::TopicConfig::from_entries(r.topic_config);
        }
    }
}

/// The topic id Kelp gives a topic name: stable across restarts without storing it (a 128-bit
/// FNV-1a of the name). A topic deleted and created again gets the same id, unlike in Kafka.
pub fn topic_id_for(name: &str) -> Uuid {
    let mut out = [0u8; 16];
    for (half, seed) in [
        (0usize, 0xcbf2_9ce4_8422_2325u64),
        (8, 0x8422_2325_cbf2_9ce4),
    ] {
        let mut h = seed;
        for b in name.bytes().chain(std::iter::once(half as u8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        out[half..half + 8].copy_from_slice(&h.to_be_bytes());
    }
    // Never the all-zero "no id".
    out[0] |= 0x01;
    Uuid(out)
}

/// Who waits for an append to complete.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Waiter {
    /// One partition (`slot`) of a produce request.
    Produce(RequestKey, Slot),
    /// A group write (OffsetCommit, OffsetDelete, DeleteGroups) to the offsets log.
    GroupWrite(RequestKey),
}

/// A produce request's part waiting for (or riding in) an append.
#[derive(Debug)]
pub(crate) struct QueuedAppend {
    /// Who waits for the append, `None` for acks=0.
    pub(crate) waiter: Option<Waiter>,
    /// Whole batches as the producer sent them.
    pub(crate) batches: Vec<Bytes>,
    /// Records in each batch.
    pub(crate) counts: Vec<u64>,
    pub(crate) bytes: u64,
    pub(crate) max_timestamp: TimestampMs,
    /// Needs fsync before the answer.
    pub(crate) sync: bool,
    /// Offset of its first record, once dispatched.
    pub(crate) base_offset: Option<crate::types::Offset>,
    /// Per batch: (producer id, epoch, first sequence) of idempotent batches.
    pub(crate) producers: Vec<Option<(i64, i16, i32)>>,
    /// Retries of one of these batches that arrived while it was on its way: (request, slot,
    /// batch index); answered with the same offset.
    pub(crate) duplicates: Vec<(RequestKey, Slot, usize)>,
}

impl QueuedAppend {
    pub(crate) fn records(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// One partition.
#[derive(Default)]
pub(crate) struct PartitionState {
    pub(crate) ledger: OffsetLedger,
    pub(crate) queued: Vec<QueuedAppend>,
    pub(crate) in_flight: Vec<QueuedAppend>,
    /// Parked fetches to wake when the high watermark moves.
    pub(crate) watchers: Vec<RequestKey>,
    /// Idempotent producers' sequences on this partition.
    pub(crate) producers: crate::producer::ProducerHistory,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_are_stable_distinct_and_never_zero() {
        assert_eq!(topic_id_for("orders"), topic_id_for("orders"));
        assert_ne!(topic_id_for("orders"), topic_id_for("orders2"));
        assert_ne!(topic_id_for(""), Uuid::ZERO);
    }
}
