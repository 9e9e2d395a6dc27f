//! Fetch: read whole batches below the high watermark, long-poll when there is not enough.
//!
//! A fetch issues one storage read per partition that has data, then either answers (enough bytes,
//! an error, or the deadline passed) or parks: it registers on its partitions and waits for an append
//! to move a high watermark, or for the `Tick` after `max_wait_ms`. A woken fetch simply runs again.
//! Fetch sessions are not kept: every answer carries session id 0, which clients treat as "send full
//! fetch requests" (allowed by KIP-227).

use super::{Gateway, Pending, PendingState, RequestKey, Slot, TokenUse};
use crate::ErrorCode;
use crate::api::ResponseBody;
use crate::api::fetch::response::{FetchableTopicResponse, PartitionData};
use crate::api::fetch::{FetchRequest, FetchResponse};
use crate::storage::{StorageCommand, StorageCompletion};
use crate::types::{Millis, Offset, TopicPartition};
use bytes::Bytes;

/// A fetch in progress or parked.
pub(crate) struct FetchState {
    request: FetchRequest,
    response: FetchResponse,
    outstanding: usize,
    bytes: usize,
    errors: bool,
    pub(crate) deadline: Millis,
    pub(crate) parked: bool,
    /// Partitions it watches while parked.
    watching: Vec<TopicPartition>,
}

impl Gateway {
    pub(super) fn fetch(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        request: FetchRequest,
    ) -> Option<ResponseBody> {
        let deadline = self.now.mono.plus(request.max_wait_ms.max(0) as u64);
        let state = FetchState {
            request,
            response: FetchResponse::default(),
            outstanding: 0,
            bytes: 0,
            errors: false,
            deadline,
            parked: false,
            watching: Vec::new(),
        };
        self.pending.insert(
            key,
            Pending {
                correlation_id,
                version,
                frame_len,
                state: PendingState::Fetch(state),
            },
        );
        self.rerun_fetch(key);
        None
    }

    /// Runs (again) the reads of a pending fetch.
    pub(super) fn rerun_fetch(&mut self, key: RequestKey) {
        let Some(mut pending) = self.pending.remove(&key) else {
            return;
        };
        let PendingState::Fetch(state) = &mut pending.state else {
            self.pending.insert(key, pending);
            return;
        };
        // Leave the partitions it watched: it either parks again or answers.
        for tp in std::mem::take(&mut state.watching) {
            if let Some(p) = self.partition_mut(&tp) {
                p.watchers.retain(|k| *k != key);
            }
        }
        state.parked = false;
        state.bytes = 0;
        state.errors = false;
        state.outstanding = 0;
        state.response = FetchResponse::default();
        let version = pending.version;
        let read_committed = state.request.isolation_level == 1;
        let mut reads = Vec::new();
        for (ti, topic) in state.request.topics.iter().enumerate() {
            let name = if version >= 13 {
                self.topic_name_by_id(topic.topic_id)
            } else {
                Some(topic.topic.clone())
            };
            let mut tr = FetchableTopicResponse {
                topic: topic.topic.clone(),
                topic_id: topic.topic_id,
                ..Default::default()
            };
            for (pi, part) in topic.partitions.iter().enumerate() {
                let mut pd = PartitionData {
                    partition_index: part.partition,
                    high_watermark: -1,
                    last_stable_offset: -1,
                    log_start_offset: -1,
                    aborted_transactions: read_committed.then(Vec::new),
                    // Empty, never null: librdkafka rejects a null record set ("MessageSetSize -1").
                    records: Some(Bytes::new()),
                    ..Default::default()
                };
                let tp = name.clone().map(|n| TopicPartition {
                    topic: n,
                    partition: part.partition,
                });
                match tp
                    .as_ref()
                    .and_then(|tp| self.partition(tp).map(|p| (tp, p)))
                {
                    None => {
                        pd.error_code = if version >= 13 {
                            ErrorCode::UNKNOWN_TOPIC_ID.0
                        } else {
                            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0
                        };
                        state.errors = true;
                    }
                    Some((tp, p)) => {
                        let hw = p.ledger.high_watermark();
                        let start = p.ledger.log_start_offset();
                        pd.high_watermark = hw.0;
                        pd.last_stable_offset = hw.0;
                        pd.log_start_offset = start.0;
                        let offset = Offset(part.fetch_offset);
                        if offset < start || offset > hw {
                            pd.error_code = ErrorCode::OFFSET_OUT_OF_RANGE.0;
                            state.errors = true;
                        } else if offset < hw {
                            let from = p.ledger.position_for(offset);
                            let max = part.partition_max_bytes.max(1) as usize;
                            reads.push((tp.clone(), (ti, pi), offset, from, max, hw));
                        }
                        state.watching.push(tp.clone());
                    }
                }
                tr.partitions.push(pd);
            }
            state.response.responses.push(tr);
        }
        state.outstanding = reads.len();
        self.pending.insert(key, pending);
        for (tp, slot, offset, from, max_bytes, end) in reads {
            let token = self.token(TokenUse::Request(key, slot));
            self.storage(StorageCommand::Read {
                token,
                partition: tp,
                offset,
                from,
                max_bytes,
                end,
            });
        }
        self.fetch_round_maybe_done(key);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn fetch_read_done(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        mut state: FetchState,
        slot: Slot,
        done: StorageCompletion,
    ) {
        state.outstanding = state.outstanding.saturating_sub(1);
        if let Some(pd) = state
            .response
            .responses
            .get_mut(slot.0)
            .and_then(|t| t.partitions.get_mut(slot.1))
        {
            match done {
                StorageCompletion::Read { batches } => {
                    state.bytes += batches.len();
                    pd.records = Some(batches);
                }
                _ => {
                    pd.error_code = ErrorCode::KAFKA_STORAGE_ERROR.0;
                    state.errors = true;
                }
            }
        }
        self.pending.insert(
            key,
            Pending {
                correlation_id,
                version,
                frame_len,
                state: PendingState::Fetch(state),
            },
        );
        self.fetch_round_maybe_done(key);
    }

    /// When every read of the round is back: answer, or park until data or the deadline.
    fn fetch_round_maybe_done(&mut self, key: RequestKey) {
        let Some(pending) = self.pending.get_mut(&key) else {
            return;
        };
        let PendingState::Fetch(state) = &mut pending.state else {
            return;
        };
        if state.outstanding > 0 {
            return;
        }
        let enough = state.bytes >= state.request.min_bytes.max(1) as usize;
        if !(enough || state.errors || self.now.mono >= state.deadline) {
            state.parked = true;
            let watching = state.watching.clone();
            for tp in &watching {
                if let Some(p) = self.partition_mut(tp) {
                    p.watchers.push(key);
                }
            }
            return;
        }
        let Some(pending) = self.pending.remove(&key) else {
            return;
        };
        let PendingState::Fetch(mut state) = pending.state else {
            return;
        };
        trim_to_max_bytes(&mut state.response, state.request.max_bytes);
        state.response.session_id = 0;
        self.respond(
            key,
            pending.correlation_id,
            pending.version,
            pending.frame_len,
            ResponseBody::Fetch(state.response),
        );
    }
}

/// Drops records past the response's `max_bytes`, keeping at least the first partition with data
/// (Kafka's rule, so that a record larger than the limit still gets through).
fn trim_to_max_bytes(response: &mut FetchResponse, max_bytes: i32) {
    let max = max_bytes.max(0) as usize;
    let mut total = 0usize;
    for pd in response
        .responses
        .iter_mut()
        .flat_map(|t| t.partitions.iter_mut())
    {
        if let Some(records) = &pd.records {
            if total > 0 && total + records.len() > max {
                pd.records = Some(Bytes::new());
            } else {
                total += records.len();
            }
        }
    }
}
