//! Idempotent producer state: per partition, each producer's epoch and its last five batches'
//! sequence ranges and offsets.
//!
//! Kafka's rule (KIP-98): a producer numbers its records per partition; the broker accepts a batch
//! whose first sequence follows the last one it stored, answers a batch it already stored with the
//! original offset (no second copy), refuses a gap (OUT_OF_ORDER_SEQUENCE_NUMBER) and an older epoch
//! (INVALID_PRODUCER_EPOCH). Five batches are remembered because a producer has at most five
//! requests in flight. The same history is rebuilt from batch headers on recovery, so a retry after
//! a gateway crash is still recognised.

use crate::types::Offset;
use std::collections::{BTreeMap, VecDeque};

/// Batches remembered per producer and partition.
pub const REMEMBERED_BATCHES: usize = 5;

/// One stored batch of a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredBatch {
    /// Sequence of its first record.
    pub first_seq: i32,
    /// Sequence of its last record.
    pub last_seq: i32,
    /// Offset of its first record.
    pub base_offset: Offset,
}

/// One producer's state on one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The producer's current epoch.
    pub epoch: i16,
    /// Its last batches, oldest first.
    pub batches: VecDeque<StoredBatch>,
}

/// The verdict on an incoming idempotent batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Accept,
    /// Already stored at this offset: answer with it, append nothing.
    Duplicate(Offset),
    /// Not the next sequence.
    OutOfOrder,
    /// An epoch older than the producer's current one.
    Fenced,
}

/// The last sequence of a batch of `count` records starting at `first` (sequences wrap at i32::MAX).
pub fn last_sequence(first: i32, count: i32) -> i32 {
    let last = i64::from(first) + i64::from(count) - 1;
    if last > i64::from(i32::MAX) {
        (last - i64::from(i32::MAX) - 1) as i32
    } else {
        last as i32
    }
}

fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX { 0 } else { last + 1 }
}

/// All producers' state on one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerHistory {
    producers: BTreeMap<i64, ProducerEntry>,
}

impl ProducerHistory {
    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is tracked.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// A producer's state.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Notes a stored batch (at append completion, or from a batch header during recovery).
    pub fn record(
        &mut self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        count: i32,
        base_offset: Offset,
    ) {
        if producer_id < 0 || first_seq < 0 {
            return;
        }
        let entry = self.producers.entry(producer_id).or_default();
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(StoredBatch {
            first_seq,
            last_seq: last_sequence(first_seq, count),
            base_offset,
        });
        while entry.batches.len() > REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
    }

    /// Judges a batch given the producer's state, with `pending` (epoch, first, last) the batches of
    /// this producer already accepted but not yet stored, oldest first.
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        count: i32,
        pending: &[(i16, i32, i32)],
    ) -> SequenceCheck {
        let last_seq = last_sequence(first_seq, count);
        let stored = self.producers.get(&producer_id);
        if let Some(e) = stored
            && e.epoch == epoch
            && let Some(b) = e
                .batches
                .iter()
                .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate(b.base_offset);
        }
        let latest = pending
            .last()
            .copied()
            .or_else(|| {
                stored.and_then(|e| e.batches.back().map(|b| (e.epoch, b.first_seq, b.last_seq)))
            })
            .or_else(|| stored.map(|e| (e.epoch, -1, -1)));
        match latest {
            // A producer Kelp has no state for (new, or forgotten): start tracking it.
            None => SequenceCheck::Accept,
            Some((known_epoch, _, _)) if epoch < known_epoch => SequenceCheck::Fenced,
            Some((known_epoch, _, _)) if epoch > known_epoch => {
                if first_seq == 0 {
                    SequenceCheck::Accept
                } else {
                    SequenceCheck::OutOfOrder
                }
            }
            Some((_, _, -1)) => SequenceCheck::Accept,
            Some((_, _, known_last)) if first_seq == next_sequence(known_last) => {
                SequenceCheck::Accept
            }
            Some(_) => SequenceCheck::OutOfOrder,
        }
    }

    /// A snapshot for storage: per producer id, epoch, batch count, then each batch.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = b"KLPPRD1\n".to_vec();
        for (id, e) in &self.producers {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.0.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a snapshot written by [`ProducerHistory::encode`]; `None` if it is damaged.
    pub fn decode(bytes: &[u8]) -> Option<ProducerHistory> {
        let (body, crc) = bytes.split_last_chunk::<4>()?;
        if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
            return None;
        }
        let mut i = body.strip_prefix(b"KLPPRD1\n")?;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (head, rest) = i.split_at_checked(n)?;
            i = rest;
            Some(head)
        };
        let mut history = ProducerHistory::default();
        while let Some(id) = take(8) {
            let id = i64::from_be_bytes(id.try_into().ok()?);
            let epoch = i16::from_be_bytes(take(2)?.try_into().ok()?);
            let n = take(1)?[0] as usize;
            let mut entry = ProducerEntry {
                epoch,
                batches: VecDeque::new(),
            };
            for _ in 0..n.min(REMEMBERED_BATCHES) {
                let first_seq = i32::from_be_bytes(take(4)?.try_into().ok()?);
                let last_seq = i32::from_be_bytes(take(4)?.try_into().ok()?);
                let base_offset = Offset(i64::from_be_bytes(take(8)?.try_into().ok()?));
                entry.batches.push_back(StoredBatch {
                    first_seq,
                    last_seq,
                    base_offset,
                });
            }
            history.producers.insert(id, entry);
        }
        Some(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_accept_duplicates_gaps_and_fencing() {
        let mut h = ProducerHistory::default();
        assert_eq!(
            h.check(7, 0, 0, 3, &[]),
            SequenceCheck::Accept,
            "unknown producers start"
        );
        h.record(7, 0, 0, 3, Offset(100));
        assert_eq!(
            h.check(7, 0, 0, 3, &[]),
            SequenceCheck::Duplicate(Offset(100))
        );
        assert_eq!(h.check(7, 0, 3, 2, &[]), SequenceCheck::Accept);
        assert_eq!(h.check(7, 0, 5, 2, &[]), SequenceCheck::OutOfOrder, "a gap");
        assert_eq!(
            h.check(7, 0, 5, 2, &[(0, 3, 4)]),
            SequenceCheck::Accept,
            "follows a pending batch"
        );
        assert_eq!(
            h.check(7, 1, 0, 1, &[]),
            SequenceCheck::Accept,
            "a new epoch starts at 0"
        );
        assert_eq!(h.check(7, 1, 4, 1, &[]), SequenceCheck::OutOfOrder);
        h.record(7, 1, 0, 1, Offset(200));
        assert_eq!(h.check(7, 0, 3, 1, &[]), SequenceCheck::Fenced);
        for i in 1..10 {
            h.record(7, 1, i, 1, Offset(200 + i64::from(i)));
        }
        assert_eq!(h.get(7).unwrap().batches.len(), REMEMBERED_BATCHES);
        assert_eq!(last_sequence(i32::MAX, 2), 0, "sequences wrap");
        assert_eq!(ProducerHistory::decode(&h.encode()), Some(h.clone()));
        let mut bad = h.encode();
        bad[10] ^= 1;
        assert_eq!(ProducerHistory::decode(&bad), None);
    }
}
