//! Which of a log writer's recently written bytes it leaves in the page cache.
//!
//! Why: a log that leaves everything it writes to the page cache makes the kernel take a fresh page
//! for every new 4 KiB it appends, for as long as memory lasts. Fresh pages are not free. On the
//! virtual machines this project is measured on (Firecracker, whose host takes back the memory a
//! guest has freed: virtio-balloon free page reporting), the first write to such a page faults on
//! the host. On any machine, once memory is full, the kernel has to reclaim cold log pages before
//! it can hand out new ones. A writer that drops its own older bytes once they are written back
//! keeps a steady footprint instead: the pages it frees are the next ones the kernel hands out,
//! while they are still warm.
//!
//! Measured on 2 cores (`bench/`; 2M records of 1 KiB at acks=1, then librdkafka at acks=all,
//! 1M records twice, then reading them back; alternating, 2 rounds each): at acks=all 498k-531k
//! records/s at 0.9-1.0 s of gateway CPU with a window of 1 GiB, against 232k-553k at 0.9-3.4 s
//! with every byte left cached (fast only while the memory a run before had freed lasted). Reading
//! the first 1M back, from the disk now rather than the cache: 881k-1,017k records/s against
//! 959k-1,099k (librdkafka), 534k-568k against 534k-580k (ConsumerPerformance).
//!
//! What is kept is the newest `limit` bytes written, over all the writer's partitions, in spans of
//! about [`SPAN_BYTES`] per partition (a partition's bytes are appended in order, so a span of it
//! ages as one). Releasing is only advice to the kernel (`posix_fadvise(POSIX_FADV_DONTNEED)` on
//! Linux): it drops clean pages and keeps dirty ones, so no byte is lost or read stale by it, and a
//! span still being written back when it is released just stays cached.

use crate::codec::KStr;
use crate::types::{LogPosition, Offset, TopicPartition};
use std::collections::{HashMap, VecDeque};

/// Bytes a partition's span grows to before it ages as a whole (the writeback step of the
/// segments, so a released span has been handed to writeback long before).
pub const SPAN_BYTES: u64 = 1024 * 1024;

/// Bytes `from..to` of the segment that starts at `segment`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The segment's base offset.
    pub segment: Offset,
    /// First byte.
    pub from: u64,
    /// Byte after the last.
    pub to: u64,
}

impl Span {
    /// Its length in bytes.
    pub fn bytes(&self) -> u64 {
        self.to - self.from
    }
}

/// The recently written spans of one writer's partitions, oldest first.
#[derive(Debug)]
pub struct RecentWrites {
    limit: u64,
    /// Bytes in `growing` and `aged`.
    held: u64,
    /// Each partition's newest span, still growing.
    growing: HashMap<TopicPartition, Span>,
    /// Full spans, oldest first.
    aged: VecDeque<(TopicPartition, Span)>,
}

impl RecentWrites {
    /// Keeps about the newest `limit` bytes written cached (at most one [`SPAN_BYTES`] more per
    /// partition written to).
    pub fn new(limit: u64) -> RecentWrites {
        RecentWrites {
            limit,
            held: 0,
            growing: HashMap::new(),
            aged: VecDeque::new(),
        }
    }

    /// Records that `partition` wrote `bytes` at `at`.
    pub fn wrote(&mut self, partition: &TopicPartition, at: LogPosition, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let new = Span {
            segment: at.segment,
            from: at.byte,
            to: at.byte + bytes,
        };
        self.held += bytes;
        match self.growing.remove_entry(partition) {
            Some((key, span)) if span.segment == new.segment && span.to == new.from => {
                self.place(key, Span { to: new.to, ..span });
            }
            Some((key, old)) => {
                // (a new segment, or the log was cut back and written again: the old span ages)
                self.aged.push_back((key.clone(), old));
                self.place(key, new);
            }
            None => {
                // (a copy of the name: the caller's may be a slice of a request, which every span
                // of the partition would otherwise keep alive)
                let key = TopicPartition {
                    topic: KStr::from(partition.topic.as_str()),
                    partition: partition.partition,
                };
                self.place(key, new);
            }
        }
    }

    /// Keeps `span` as the partition's growing one, or ages it once it is full.
    fn place(&mut self, key: TopicPartition, span: Span) {
        if span.bytes() >= SPAN_BYTES {
            self.aged.push_back((key, span));
        } else {
            self.growing.insert(key, span);
        }
    }

    /// The oldest spans that no longer fit in the limit, for the caller to drop from the cache,
    /// oldest first.
    pub fn release(&mut self) -> Vec<(TopicPartition, Span)> {
        let mut out = Vec::new();
        while self.held > self.limit {
            let Some((tp, span)) = self.aged.pop_front() else {
                break; // what is left is growing spans: at most one span a partition
            };
            self.held -= span.bytes();
            out.push((tp, span));
        }
        out
    }

    /// Forgets a partition's spans (its log was deleted).
    pub fn forget(&mut self, partition: &TopicPartition) {
        let mut gone = self.growing.remove(partition).map_or(0, |s| s.bytes());
        self.aged.retain(|(tp, span)| {
            let keep = tp != partition;
            if !keep {
                gone += span.bytes();
            }
            keep
        });
        self.held -= gone;
    }

    /// Bytes currently counted as cached.
    pub fn held(&self) -> u64 {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: KStr::from("t"),
            partition: p,
        }
    }

    fn at(segment: i64, byte: u64) -> LogPosition {
        LogPosition {
            segment: Offset(segment),
            byte,
        }
    }

    /// Interleaved appends to two partitions: what is released is each partition's oldest bytes,
    /// in the order they were written, and what stays is the newest, within the limit plus a
    /// growing span a partition.
    #[test]
    fn releases_the_oldest_spans_beyond_the_limit() {
        let mut r = RecentWrites::new(4 * SPAN_BYTES);
        let step = SPAN_BYTES / 4;
        let mut released = Vec::new();
        for i in 0..40u64 {
            r.wrote(&tp((i % 2) as i32), at(0, (i / 2) * step), step);
            released.extend(r.release());
            assert!(r.held() <= 4 * SPAN_BYTES + 2 * SPAN_BYTES, "{}", r.held());
        }
        // 20 quarter-spans a partition = 5 spans each; 10 spans in all, of which at most 4 + the
        // growing ones stay
        assert_eq!(r.held(), 4 * SPAN_BYTES);
        assert_eq!(released.len(), 6);
        for p in 0..2 {
            let mine: Vec<Span> = released
                .iter()
                .filter(|(t, _)| *t == tp(p))
                .map(|(_, s)| *s)
                .collect();
            assert_eq!(mine.len(), 3);
            for (k, s) in mine.iter().enumerate() {
                let k = k as u64;
                assert_eq!((s.from, s.to), (k * SPAN_BYTES, (k + 1) * SPAN_BYTES));
            }
        }
    }

    /// A write that does not continue a partition's span (a new segment) closes it: the old
    /// segment's bytes age apart from the new one's.
    #[test]
    fn a_new_segment_starts_a_new_span() {
        let mut r = RecentWrites::new(0);
        r.wrote(&tp(0), at(0, 0), 100);
        r.wrote(&tp(0), at(0, 100), 50);
        r.wrote(&tp(0), at(7, 0), 10);
        assert_eq!(
            r.release(),
            vec![(
                tp(0),
                Span {
                    segment: Offset(0),
                    from: 0,
                    to: 150
                }
            )]
        );
        assert_eq!(r.held(), 10);
    }

    /// The spans keep a copy of the partition's name, not the buffer the caller's name is a
    /// slice of (a request's frame, a megabyte or more).
    #[test]
    fn spans_do_not_keep_the_callers_buffer() {
        let frame = bytes::Bytes::from(vec![b't'; 1 << 20]);
        let name = TopicPartition {
            topic: KStr::from_utf8(frame.slice(0..1)).unwrap(),
            partition: 0,
        };
        let mut r = RecentWrites::new(0);
        for i in 0..4 {
            r.wrote(&name, at(0, i * SPAN_BYTES), SPAN_BYTES);
        }
        r.wrote(&name, at(9, 0), 1);
        drop(name);
        assert!(frame.is_unique(), "a span still holds the frame");
        assert_eq!(r.release().len(), 4);
    }

    #[test]
    fn a_deleted_partition_is_forgotten() {
        let mut r = RecentWrites::new(SPAN_BYTES);
        for i in 0..3 {
            r.wrote(&tp(0), at(0, i * SPAN_BYTES), SPAN_BYTES);
        }
        r.wrote(&tp(1), at(0, 0), 10);
        r.forget(&tp(0));
        assert_eq!(r.held(), 10);
        assert!(r.release().is_empty());
    }
}
