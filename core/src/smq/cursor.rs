//! Sequential reads through `SubscribeMessage`: one subscription per partition, kept at the offset
//! its reader will ask for next.
//!
//! weed's `FetchMessage` serves records it has flushed at about 10,000 a second (each call reads at
//! most a 1,000-record chunk, and finds it by reading its file from the start), while a subscription
//! streams the same records 15 times faster (`examples/smq_read_speed.rs` of `kelp-tokio`: 50,000 x
//! 1 KiB in 0.34 s against 5.2 s). Kafka consumers read sequentially, so each partition keeps one
//! subscription positioned where the last read ended, whose records the runtime buffers up to a
//! bounded read-ahead; a read at another offset starts a new one. Whatever the cursor cannot serve
//! (nothing arrives in time, or a record is not where it should be) is left to `FetchMessage`.

use super::backend::Shared;
use super::client::Smq;
use super::io::{Call, Reply, StreamId};
use super::mapping::SMQ_OFFSET_BASE;
use super::messaging_pb::SubscribeMessageRequest;
use super::messaging_pb::subscribe_message_request::{InitMessage, Message};
use super::record::{KafkaRecord, hide_cut_batches, message_record};
use super::schema_pb::{OffsetType, PartitionOffset};
use crate::types::{Millis, Offset, TopicPartition};
use futures_util::lock::Mutex as AsyncMutex;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Records a subscription reads ahead (at most).
const READ_AHEAD: usize = 2048;
/// Records a read takes first, before it knows how large they are.
const FIRST_TAKE: usize = 64;
/// How long a read waits for the first record of a fresh or idle cursor.
const FIRST_RECORD: Millis = Millis(2000);

struct Cursor {
    smq: Arc<Smq>,
    stream: StreamId,
    /// The Kafka offset of the next record a read gets: the first of `held`, else the next the
    /// subscription delivers.
    next: Offset,
    /// Records received but not served yet (a batch the last read could not judge whole).
    held: Vec<Option<KafkaRecord>>,
}

impl Drop for Cursor {
    fn drop(&mut self) {
        self.smq.io.send(Call::Close {
            stream: self.stream,
        });
    }
}

/// The partitions' cursors.
#[derive(Default)]
pub(crate) struct Cursors {
    slots: Mutex<HashMap<TopicPartition, Arc<AsyncMutex<Option<Cursor>>>>>,
    opened: std::sync::atomic::AtomicU64,
}

impl Cursors {
    /// Up to about `max_bytes` of the records from `offset` on (before `end`), slot k at offset
    /// `offset + k`, ending on a batch boundary ([`hide_cut_batches`]); `None` when the cursor
    /// cannot serve them (nothing arrives in time, or a record is not where it should be).
    pub(crate) async fn read(
        &self,
        shared: &Shared,
        tp: &TopicPartition,
        offset: Offset,
        max_bytes: usize,
        end: Offset,
    ) -> Option<Vec<Option<KafkaRecord>>> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.entry(tp.clone()).or_default().clone()
        };
        let mut cursor = slot.lock().await;
        if cursor.as_ref().is_none_or(|c| c.next != offset) {
            *cursor = None;
            *cursor = Some(self.open(shared, tp, offset).await?);
        }
        let c = cursor.as_mut()?;
        let mut slots = std::mem::take(&mut c.held);
        let size = |r: &KafkaRecord| {
            r.value.as_ref().map_or(0, |v| v.len()) + r.key.as_ref().map_or(0, |k| k.len())
        };
        let mut bytes: usize = slots.iter().flatten().map(size).sum();
        let mut settled = 0;
        // a subscription that ended is reopened once a read, where it stopped
        let mut reopened = false;
        loop {
            let mut wait = slots.is_empty() || settled == 0;
            while offset.0 + (slots.len() as i64) < end.0 && (wait || bytes < max_bytes) {
                // as many as should fill `max_bytes`, judged by the records so far: what a read
                // takes beyond it is served by the next
                let room = (end.0 - offset.0) as usize - slots.len();
                let want = match bytes.checked_div(slots.len()) {
                    Some(average) => max_bytes.saturating_sub(bytes) / average.max(1) + 1,
                    None => FIRST_TAKE,
                };
                let take = Call::Take {
                    stream: c.stream,
                    max: room.min(READ_AHEAD).min(want),
                    wait: if wait { FIRST_RECORD } else { Millis(0) },
                };
                let messages = match shared.io().call(take).await {
                    Reply::Records(m) if !m.is_empty() => m,
                    // (the runtime ends a subscription whose buffer overflows: see Call::Subscribe)
                    Reply::Ended if !reopened => {
                        reopened = true;
                        let at = offset.plus(slots.len() as i64);
                        match self.open(shared, tp, at).await {
                            Some(fresh) => drop(std::mem::replace(c, fresh)),
                            None => break,
                        }
                        wait = slots.is_empty() || settled == 0;
                        continue;
                    }
                    _ => break,
                };
                wait = false;
                for message in messages {
                    let at = offset.plus(slots.len() as i64);
                    match message_record(&message, at) {
                        Ok(r) => {
                            bytes += r.as_ref().map_or(0, size);
                            slots.push(r);
                        }
                        Err(e) => {
                            // a subscription numbers records by counting them; over a hole that is
                            // wrong: FetchMessage reads by offset
                            tracing::debug!(partition = %tp, error = %e, "SMQ cursor out of step");
                            *cursor = None;
                            return None;
                        }
                    }
                }
            }
            if slots.is_empty() {
                *cursor = None;
                return None;
            }
            settled = hide_cut_batches(offset, &mut slots, end);
            if settled > 0 {
                break;
            }
            if wait {
                // nothing more came: the batch cannot be judged here
                *cursor = None;
                return None;
            }
        }
        c.held = slots.split_off(settled);
        c.next = offset.plus(settled as i64);
        Some(slots)
    }

    async fn open(&self, shared: &Shared, tp: &TopicPartition, offset: Offset) -> Option<Cursor> {
        let smq = &shared.smq;
        let n = self
            .opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let topic = shared.namespaces.smq_topic(tp.topic.as_str());
        let a = match smq.partition(&topic, tp.partition).await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(partition = %tp, error = %e, "no SMQ subscription");
                return None;
            }
        };
        let init = SubscribeMessageRequest {
            message: Some(Message::Init(InitMessage {
                // a group of its own: no other subscriber shares or moves its position
                consumer_group: format!("{}-{n}", shared.name()),
                consumer_id: "kelp".into(),
                client_id: "kelp".into(),
                topic: Some(topic),
                partition_offset: Some(PartitionOffset {
                    partition: Some(a.partition),
                    start_ts_ns: 0,
                    start_offset: offset.0 + SMQ_OFFSET_BASE,
                }),
                offset_type: OffsetType::ExactOffset as i32,
                sliding_window_size: READ_AHEAD as i32,
                ..Default::default()
            })),
        };
        let stream = smq.io.stream_id();
        smq.io.send(Call::Subscribe {
            broker: a.leader,
            stream,
            init,
            buffer: READ_AHEAD,
        });
        Some(Cursor {
            smq: smq.clone(),
            stream,
            next: offset,
            held: Vec::new(),
        })
    }
}
