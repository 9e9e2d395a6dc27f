//! Offset lookups: ListOffsets (earliest, latest, max timestamp, by time), OffsetForLeaderEpoch and
//! DeleteRecords.
//!
//! Earliest, latest and max-timestamp come from the ledger at once; a lookup by time needs the
//! records, so the ledger's sparse index gives a starting position and the storage scans from there.

use super::{Gateway, Pending, PendingState, RequestKey, Slot, TokenUse};
use crate::ErrorCode;
use crate::api::ResponseBody;
use crate::api::delete_records::response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use crate::api::delete_records::{DeleteRecordsRequest, DeleteRecordsResponse};
use crate::api::list_offsets::response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use crate::api::list_offsets::{ListOffsetsRequest, ListOffsetsResponse};
use crate::api::offset_for_leader_epoch::response::{EpochEndOffset, OffsetForLeaderTopicResult};
use crate::api::offset_for_leader_epoch::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use crate::storage::{StorageCommand, StorageCompletion};
use crate::types::{Offset, TimestampMs, TopicPartition};

/// ListOffsets' special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// Kelp is one broker with one leader epoch per partition.
pub(crate) const LEADER_EPOCH: i32 = 0;

/// A ListOffsets waiting for time lookups.
pub(crate) struct ListOffsetsState {
    response: ListOffsetsResponse,
    outstanding: usize,
}

impl Gateway {
    pub(super) fn list_offsets(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        request: ListOffsetsRequest,
    ) -> Option<ResponseBody> {
        let mut response = ListOffsetsResponse::default();
        let mut lookups = Vec::new();
        for (ti, topic) in request.topics.into_iter().enumerate() {
            let mut tr = ListOffsetsTopicResponse {
                name: topic.name.clone(),
                ..Default::default()
            };
            for (pi, part) in topic.partitions.into_iter().enumerate() {
                let mut pr = ListOffsetsPartitionResponse {
                    partition_index: part.partition_index,
                    ..Default::default()
                };
                let tp = TopicPartition {
                    topic: topic.name.clone(),
                    partition: part.partition_index,
                };
                match self.partition(&tp) {
                    None => pr.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
                    Some(p) => {
                        pr.leader_epoch = LEADER_EPOCH;
                        let l = &p.ledger;
                        match part.timestamp {
                            LATEST => pr.offset = l.high_watermark().0,
                            EARLIEST | EARLIEST_LOCAL | LATEST_TIERED => {
                                pr.offset = l.log_start_offset().0
                            }
                            // The first record holding the largest timestamp: a time lookup of it.
                            MAX_TIMESTAMP => {
                                if let Some((ts, _)) = l.max_timestamp()
                                    && let Some(from) = l.position_for_time(ts)
                                {
                                    lookups.push((
                                        tp.clone(),
                                        (ti, pi),
                                        ts,
                                        from,
                                        l.high_watermark(),
                                    ));
                                }
                            }
                            ts if ts >= 0 => {
                                if let Some(from) = l.position_for_time(TimestampMs(ts)) {
                                    lookups.push((
                                        tp.clone(),
                                        (ti, pi),
                                        TimestampMs(ts),
                                        from,
                                        l.high_watermark(),
                                    ));
                                }
                            }
                            _ => pr.error_code = ErrorCode::INVALID_REQUEST.0,
                        }
                    }
                }
                tr.partitions.push(pr);
            }
            response.topics.push(tr);
        }
        if lookups.is_empty() {
            return Some(ResponseBody::ListOffsets(response));
        }
        let state = ListOffsetsState {
            response,
            outstanding: lookups.len(),
        };
        self.pending.insert(
            key,
            Pending {
                correlation_id,
                version,
                frame_len,
                state: PendingState::ListOffsets(state),
            },
        );
        for (tp, slot, timestamp, from, end) in lookups {
            let token = self.token(TokenUse::Request(key, slot));
            self.storage(StorageCommand::FindByTime {
                token,
                partition: tp,
                timestamp,
                from,
                end,
            });
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn list_offsets_done(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        mut state: ListOffsetsState,
        slot: Slot,
        done: StorageCompletion,
    ) {
        if let Some(pr) = state
            .response
            .topics
            .get_mut(slot.0)
            .and_then(|t| t.partitions.get_mut(slot.1))
        {
            match done {
                StorageCompletion::Found {
                    hit: Some((offset, ts)),
                } => {
                    pr.offset = offset.0;
                    pr.timestamp = ts.0;
                }
                StorageCompletion::Found { hit: None } => {}
                _ => pr.error_code = ErrorCode::KAFKA_STORAGE_ERROR.0,
            }
        }
        state.outstanding -= 1;
        if state.outstanding == 0 {
            self.respond(
                key,
                correlation_id,
                version,
                frame_len,
                ResponseBody::ListOffsets(state.response),
            );
        } else {
            self.pending.insert(
                key,
                Pending {
                    correlation_id,
                    version,
                    frame_len,
                    state: PendingState::ListOffsets(state),
                },
            );
        }
    }

    pub(super) fn offset_for_leader_epoch(
        &mut self,
        request: OffsetForLeaderEpochRequest,
    ) -> OffsetForLeaderEpochResponse {
        let mut response = OffsetForLeaderEpochResponse::default();
        for topic in request.topics {
            let mut tr = OffsetForLeaderTopicResult {
                topic: topic.topic.clone(),
                ..Default::default()
            };
            for part in topic.partitions {
                let tp = TopicPartition {
                    topic: topic.topic.clone(),
                    partition: part.partition,
                };
                let mut r = EpochEndOffset {
                    partition: part.partition,
                    ..Default::default()
                };
                match self.partition(&tp) {
                    None => r.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
                    // Every record was written in epoch 0, which ends at the high watermark.
                    Some(p) if part.leader_epoch <= LEADER_EPOCH => {
                        r.leader_epoch = LEADER_EPOCH;
                        r.end_offset = p.ledger.high_watermark().0;
                    }
                    Some(_) => {}
                }
                tr.partitions.push(r);
            }
            response.topics.push(tr);
        }
        response
    }

    pub(super) fn delete_records(
        &mut self,
        request: DeleteRecordsRequest,
    ) -> DeleteRecordsResponse {
        let mut response = DeleteRecordsResponse::default();
        let mut truncations = Vec::new();
        for topic in request.topics {
            let mut tr = DeleteRecordsTopicResult {
                name: topic.name.clone(),
                ..Default::default()
            };
            for part in topic.partitions {
                let tp = TopicPartition {
                    topic: topic.name.clone(),
                    partition: part.partition_index,
                };
                let mut r = DeleteRecordsPartitionResult {
                    partition_index: part.partition_index,
                    low_watermark: -1,
                    ..Default::default()
                };
                match self.partition_mut(&tp) {
                    None => r.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
                    Some(p) => {
                        let hw = p.ledger.high_watermark();
                        // -1 means "up to the high watermark".
                        let target = if part.offset == -1 {
                            hw
                        } else {
                            Offset(part.offset)
                        };
                        if target.0 < 0 || target > hw {
                            r.error_code = ErrorCode::OFFSET_OUT_OF_RANGE.0;
                        } else {
                            let start = p.ledger.advance_log_start(target);
                            r.low_watermark = start.0;
                            truncations.push((tp, start));
                        }
                    }
                }
                tr.partitions.push(r);
            }
            response.topics.push(tr);
        }
        // The new log start is in force at once (reads below it are refused); the storage drops
        // whole segments below it in its own time.
        for (tp, offset) in truncations {
            let token = self.token(TokenUse::Detached);
            self.storage(StorageCommand::TruncateBefore {
                token,
                partition: tp,
                offset,
            });
        }
        response
    }
}
