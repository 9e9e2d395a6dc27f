//! Committed offsets: OffsetCommit, OffsetFetch, and their durability.
//!
//! A commit is written as records to Kelp's own offsets log (topic [`OFFSETS_TOPIC`], one partition,
//! fsynced like an acks=all produce) before it is answered or applied; on start-up the gateway reads
//! that log back and answers group requests with COORDINATOR_LOAD_IN_PROGRESS (retriable) until it is
//! done, as Kafka does while it loads `__consumer_offsets`.
//!
//! Record format: key = group `\0` topic `\0` partition (decimal); value = committed offset (i64),
//! leader epoch (i32), commit time (i64 ms), then the metadata string (absent for null, marked by a
//! leading 0/1 byte); a null value deletes the entry.
//!
//! Offsets of a group with no members expire `offsets_retention_ms` after their commit, as Kafka's
//! `offsets.retention.minutes` (7 days by default); expiry writes tombstones like OffsetDelete.

use super::partition::Waiter;
use super::{Gateway, Pending, PendingState, RequestKey, TokenUse};
use crate::ErrorCode;
use crate::api::ResponseBody;
use crate::api::offset_commit::response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use crate::api::offset_commit::{OffsetCommitRequest, OffsetCommitResponse};
use crate::api::offset_fetch::response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use crate::api::offset_fetch::{OffsetFetchRequest, OffsetFetchResponse};
use crate::codec::KStr;
use crate::codec::compression::Compression;
use crate::codec::record_batch::{BatchHeader, Batches, NewRecord, encode_batch};
use crate::group::{CommittedOffset, Group, GroupState};
use crate::storage::{StorageCommand, StorageCompletion};
use crate::types::{Offset, TopicPartition};
use bytes::{BufMut, Bytes, BytesMut};

/// Kelp's internal topic of committed offsets.
pub const OFFSETS_TOPIC: &str = "__kelp_consumer_offsets";

fn offsets_partition() -> TopicPartition {
    TopicPartition {
        topic: KStr::from_static(OFFSETS_TOPIC),
        partition: 0,
    }
}

/// A group change waiting for its records to be durable: what to answer, and what to apply then.
pub(crate) struct GroupWrite {
    response: ResponseBody,
    apply: GroupApply,
}

/// The in-memory change a durable group write makes.
enum GroupApply {
    /// Committed offsets of one group.
    Commit(KStr, Vec<((KStr, i32), CommittedOffset)>),
    /// Offsets removed from one group.
    DeleteOffsets(KStr, Vec<(KStr, i32)>),
    /// Whole (empty) groups removed.
    DeleteGroups(Vec<KStr>),
}

fn encode_key(group: &KStr, topic: &KStr, partition: i32) -> Bytes {
    Bytes::from(format!("{group}\0{topic}\0{partition}"))
}

fn encode_value(c: &CommittedOffset) -> Bytes {
    let mut v = BytesMut::with_capacity(21 + c.metadata.as_ref().map_or(0, KStr::len));
    v.put_i64(c.offset);
    v.put_i32(c.leader_epoch);
    v.put_i64(c.commit_timestamp.0);
    match &c.metadata {
        None => v.put_u8(0),
        Some(m) => {
            v.put_u8(1);
            v.put_slice(m.as_bytes());
        }
    }
    v.freeze()
}

/// Decodes one offsets-log record; `None` if it is not one of ours.
fn decode_record(
    key: &[u8],
    value: Option<&[u8]>,
) -> Option<(KStr, (KStr, i32), Option<CommittedOffset>)> {
    let text = std::str::from_utf8(key).ok()?;
    let mut parts = text.splitn(3, '\0');
    let (group, topic, partition) = (parts.next()?, parts.next()?, parts.next()?.parse().ok()?);
    let committed = match value {
        None => None,
        Some(v) if v.len() >= 21 => Some(CommittedOffset {
            offset: i64::from_be_bytes(v[..8].try_into().ok()?),
            leader_epoch: i32::from_be_bytes(v[8..12].try_into().ok()?),
            commit_timestamp: crate::types::TimestampMs(i64::from_be_bytes(
                v[12..20].try_into().ok()?,
            )),
            metadata: match v[20] {
                0 => None,
                _ => Some(KStr::from(std::str::from_utf8(&v[21..]).ok()?)),
            },
        }),
        Some(_) => return None,
    };
    Some((KStr::from(group), (KStr::from(topic), partition), committed))
}

impl Gateway {
    /// Starts reading the offsets log back, if there is one (called once, at start-up).
    pub(super) fn load_offsets(&mut self) {
        let tp = offsets_partition();
        let Some(p) = self.partition(&tp) else { return };
        let (start, hw) = (p.ledger.log_start_offset(), p.ledger.high_watermark());
        if start >= hw {
            return;
        }
        self.offsets_loading = true;
        self.read_offsets_from(start, hw);
    }

    fn read_offsets_from(&mut self, offset: Offset, end: Offset) {
        let tp = offsets_partition();
        let from = self
            .partition(&tp)
            .map(|p| p.ledger.position_for(offset))
            .unwrap_or_default();
        let token = self.token(TokenUse::OffsetsLoad(offset, end));
        self.storage(StorageCommand::Read {
            token,
            partition: tp,
            offset,
            from,
            max_bytes: 1 << 20,
            end,
        });
    }

    /// A chunk of the offsets log arrived: apply it, read on, or finish loading.
    pub(super) fn offsets_loaded(&mut self, offset: Offset, end: Offset, done: StorageCompletion) {
        let StorageCompletion::Read { batches } = done else {
            // Without its offsets the coordinator must not serve: it keeps answering
            // COORDINATOR_LOAD_IN_PROGRESS, and the failure shows in the driver's storage logs.
            return;
        };
        let mut next = offset;
        for batch in Batches::new(batches) {
            let Ok(batch) = batch else { break };
            let base = batch.header().base_offset;
            next = next.max(Offset(batch.header().last_offset() + 1));
            let Ok(records) = batch.records(self.config.max_decompressed_batch_bytes) else {
                continue;
            };
            for r in records.iter().flatten() {
                if base + i64::from(r.offset_delta) < offset.0 {
                    continue;
                }
                if let Some((group, tp, committed)) = r.key.and_then(|k| decode_record(k, r.value))
                {
                    let g = self.groups.entry(group).or_insert_with(Group::new);
                    match committed {
                        Some(c) => g.offsets.insert(tp, c),
                        None => g.offsets.remove(&tp),
                    };
                }
            }
        }
        if next > offset && next < end {
            self.read_offsets_from(next, end);
        } else {
            self.offsets_loading = false;
        }
    }

    pub(super) fn offset_commit(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        request: OffsetCommitRequest,
    ) -> Option<ResponseBody> {
        let generation = request.generation_id_or_member_epoch;
        // Commits from outside a group (generation -1) need no membership; others must be current.
        let group_error = if self.offsets_loading {
            Some(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS)
        } else if request.group_id.is_empty() {
            Some(ErrorCode::INVALID_GROUP_ID)
        } else if generation < 0 {
            None
        } else if let Some(check) =
            self.consumer_member_check(&request.group_id, &request.member_id, generation)
        {
            check.err()
        } else {
            match self.groups.get(&request.group_id) {
                None => Some(ErrorCode::ILLEGAL_GENERATION),
                Some(g) if g.fences(request.group_instance_id.as_ref(), &request.member_id) => {
                    Some(ErrorCode::FENCED_INSTANCE_ID)
                }
                Some(g) if !g.members.contains_key(&request.member_id) => {
                    Some(ErrorCode::UNKNOWN_MEMBER_ID)
                }
                Some(g) if g.generation != generation => Some(ErrorCode::ILLEGAL_GENERATION),
                Some(g) if g.state == GroupState::PreparingRebalance => {
                    Some(ErrorCode::REBALANCE_IN_PROGRESS)
                }
                Some(_) => None,
            }
        };
        let mut response = OffsetCommitResponse::default();
        let mut entries = Vec::new();
        let mut records = Vec::new();
        for topic in request.topics {
            let name = if version >= 10 {
                self.topic_name_by_id(topic.topic_id)
            } else {
                Some(topic.name.clone())
            };
            let mut tr = OffsetCommitResponseTopic {
                name: topic.name.clone(),
                topic_id: topic.topic_id,
                ..Default::default()
            };
            for part in topic.partitions {
                let code = match (&name, group_error) {
                    (_, Some(code)) => code,
                    (None, None) => ErrorCode::UNKNOWN_TOPIC_ID,
                    (Some(n), None) if !self.partition_exists(n, part.partition_index) => {
                        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                    }
                    (Some(n), None) => {
                        let c = CommittedOffset {
                            offset: part.committed_offset,
                            leader_epoch: part.committed_leader_epoch,
                            metadata: part.committed_metadata.clone(),
                            commit_timestamp: self.now.wall,
                        };
                        records.push(NewRecord {
                            key: Some(encode_key(&request.group_id, n, part.partition_index)),
                            value: Some(encode_value(&c)),
                            ..Default::default()
                        });
                        entries.push(((n.clone(), part.partition_index), c));
                        ErrorCode::NONE
                    }
                };
                tr.partitions.push(OffsetCommitResponsePartition {
                    partition_index: part.partition_index,
                    error_code: code.0,
                    ..Default::default()
                });
            }
            response.topics.push(tr);
        }
        let write = GroupWrite {
            response: ResponseBody::OffsetCommit(response),
            apply: GroupApply::Commit(request.group_id, entries),
        };
        self.write_group_records(key, correlation_id, version, frame_len, records, write)
    }

    /// Appends `records` to the offsets log (fsynced) and answers `write` once they are durable;
    /// with no records, applies and answers at once.
    fn write_group_records(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        records: Vec<NewRecord>,
        write: GroupWrite,
    ) -> Option<ResponseBody> {
        if records.is_empty() {
            self.apply_group_write(write.apply);
            return Some(write.response);
        }
        if !self.topics.contains_key(&KStr::from_static(OFFSETS_TOPIC)) {
            self.auto_create_topic(&KStr::from_static(OFFSETS_TOPIC), 1);
        }
        let now = self.now.wall.0;
        let header = BatchHeader {
            base_timestamp: now,
            max_timestamp: now,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            ..Default::default()
        };
        let Ok(batch) = encode_batch(&header, Compression::None, &records) else {
            return Some(fail_write(write.response, ErrorCode::UNKNOWN_SERVER_ERROR));
        };
        self.pending.insert(
            key,
            Pending {
                correlation_id,
                version,
                frame_len,
                state: PendingState::GroupWrite(write),
            },
        );
        let tp = offsets_partition();
        let checked = super::produce::Checked::single(
            batch,
            records.len() as u64,
            crate::types::TimestampMs(now),
        );
        self.queue_append(&tp, Some(Waiter::GroupWrite(key)), checked, true);
        self.pump(&tp);
        None
    }

    fn apply_group_write(&mut self, apply: GroupApply) {
        match apply {
            GroupApply::Commit(group, entries) => {
                self.groups
                    .entry(group)
                    .or_insert_with(Group::new)
                    .offsets
                    .extend(entries);
            }
            GroupApply::DeleteOffsets(group, tps) => {
                if let Some(g) = self.groups.get_mut(&group) {
                    for tp in tps {
                        g.offsets.remove(&tp);
                    }
                }
            }
            GroupApply::DeleteGroups(groups) => {
                for g in groups {
                    self.groups.remove(&g);
                }
            }
        }
    }

    /// OffsetDelete: removes a group's offsets for topics it is not consuming.
    pub(super) fn offset_delete(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        request: crate::api::offset_delete::OffsetDeleteRequest,
    ) -> Option<ResponseBody> {
        use crate::api::offset_delete::OffsetDeleteResponse;
        use crate::api::offset_delete::response::{
            OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
        };
        let error = |code: ErrorCode| {
            Some(ResponseBody::OffsetDelete(OffsetDeleteResponse {
                error_code: code.0,
                ..Default::default()
            }))
        };
        if self.offsets_loading {
            return error(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
        }
        let Some(group) = self.groups.get(&request.group_id) else {
            return error(ErrorCode::GROUP_ID_NOT_FOUND);
        };
        let subscribed = group.subscribed_topics();
        let mut response = OffsetDeleteResponse::default();
        let mut records = Vec::new();
        let mut removed = Vec::new();
        for topic in request.topics {
            let mut tr = OffsetDeleteResponseTopic {
                name: topic.name.clone(),
                ..Default::default()
            };
            for p in topic.partitions {
                let code = if subscribed.contains(&topic.name) {
                    ErrorCode::GROUP_SUBSCRIBED_TO_TOPIC
                } else {
                    if group
                        .offsets
                        .contains_key(&(topic.name.clone(), p.partition_index))
                    {
                        records.push(NewRecord {
                            key: Some(encode_key(
                                &request.group_id,
                                &topic.name,
                                p.partition_index,
                            )),
                            value: None,
                            ..Default::default()
                        });
                        removed.push((topic.name.clone(), p.partition_index));
                    }
                    ErrorCode::NONE
                };
                tr.partitions.push(OffsetDeleteResponsePartition {
                    partition_index: p.partition_index,
                    error_code: code.0,
                });
            }
            response.topics.push(tr);
        }
        let write = GroupWrite {
            response: ResponseBody::OffsetDelete(response),
            apply: GroupApply::DeleteOffsets(request.group_id, removed),
        };
        self.write_group_records(key, correlation_id, version, frame_len, records, write)
    }

    /// DeleteGroups: removes empty groups and their offsets.
    pub(super) fn delete_groups(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        request: crate::api::delete_groups::DeleteGroupsRequest,
    ) -> Option<ResponseBody> {
        use crate::api::delete_groups::DeleteGroupsResponse;
        use crate::api::delete_groups::response::DeletableGroupResult;
        let mut response = DeleteGroupsResponse::default();
        let mut records = Vec::new();
        let mut deleted = Vec::new();
        for group_id in request.groups_names {
            let code = match self.groups.get(&group_id) {
                _ if self.offsets_loading => ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
                None => ErrorCode::GROUP_ID_NOT_FOUND,
                Some(g) if g.state != GroupState::Empty => ErrorCode::NON_EMPTY_GROUP,
                Some(g) => {
                    records.extend(g.offsets.keys().map(|(t, p)| NewRecord {
                        key: Some(encode_key(&group_id, t, *p)),
                        value: None,
                        ..Default::default()
                    }));
                    deleted.push(group_id.clone());
                    ErrorCode::NONE
                }
            };
            response.results.push(DeletableGroupResult {
                group_id,
                error_code: code.0,
                error_message: None,
                ..Default::default()
            });
        }
        let write = GroupWrite {
            response: ResponseBody::DeleteGroups(response),
            apply: GroupApply::DeleteGroups(deleted),
        };
        self.write_group_records(key, correlation_id, version, frame_len, records, write)
    }

    /// A group write's records are durable (or failed): apply and answer.
    pub(super) fn group_write_done(&mut self, key: RequestKey, ok: bool) {
        let Some(pending) = self.pending.remove(&key) else {
            return;
        };
        let PendingState::GroupWrite(write) = pending.state else {
            self.pending.insert(key, pending);
            return;
        };
        let response = if ok {
            self.apply_group_write(write.apply);
            write.response
        } else {
            // Retriable: the client tries again (and finds the coordinator again).
            fail_write(write.response, ErrorCode::COORDINATOR_NOT_AVAILABLE)
        };
        self.respond(
            key,
            pending.correlation_id,
            pending.version,
            pending.frame_len,
            response,
        );
    }

    /// OffsetFetch. Versions before 8 ask for one group with its answer at the top level; they are
    /// answered through the same per-group path and reshaped.
    pub(super) fn offset_fetch(
        &mut self,
        request: OffsetFetchRequest,
        version: i16,
    ) -> OffsetFetchResponse {
        type Asked = Option<Vec<(KStr, crate::codec::Uuid, Vec<i32>)>>;
        let asked: Vec<(KStr, Asked)> = if version < 8 {
            let topics = request.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name, crate::codec::Uuid::ZERO, t.partition_indexes))
                    .collect()
            });
            vec![(request.group_id, topics)]
        } else {
            request
                .groups
                .into_iter()
                .map(|g| {
                    let topics = g.topics.map(|ts| {
                        ts.into_iter()
                            .map(|t| {
                                let name = if version >= 10 {
                                    self.topic_name_by_id(t.topic_id).unwrap_or_default()
                                } else {
                                    t.name
                                };
                                (name, t.topic_id, t.partition_indexes)
                            })
                            .collect()
                    });
                    (g.group_id, topics)
                })
                .collect()
        };
        let groups: Vec<OffsetFetchResponseGroup> = asked
            .into_iter()
            .map(|(group_id, topics)| self.group_offsets(group_id, topics))
            .collect();
        if version >= 8 {
            return OffsetFetchResponse {
                groups,
                ..Default::default()
            };
        }
        let group = groups.into_iter().next().unwrap_or_default();
        OffsetFetchResponse {
            error_code: group.error_code,
            topics: group
                .topics
                .into_iter()
                .map(|t| OffsetFetchResponseTopic {
                    name: t.name,
                    partitions: t
                        .partitions
                        .into_iter()
                        .map(|p| OffsetFetchResponsePartition {
                            partition_index: p.partition_index,
                            committed_offset: p.committed_offset,
                            committed_leader_epoch: p.committed_leader_epoch,
                            metadata: p.metadata,
                            error_code: p.error_code,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// One group's committed offsets for `topics` (all it has when `None`).
    fn group_offsets(
        &self,
        group_id: KStr,
        topics: Option<Vec<(KStr, crate::codec::Uuid, Vec<i32>)>>,
    ) -> OffsetFetchResponseGroup {
        let topics = topics.unwrap_or_else(|| {
            self.committed_topics(&group_id)
                .into_iter()
                .map(|(n, ps)| (n.clone(), super::topic_id_for(n.as_str()), ps))
                .collect()
        });
        let committed = self.groups.get(&group_id).map(|g| &g.offsets);
        OffsetFetchResponseGroup {
            error_code: if self.offsets_loading {
                ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.0
            } else {
                0
            },
            topics: topics
                .into_iter()
                .map(|(name, topic_id, partitions)| OffsetFetchResponseTopics {
                    partitions: partitions
                        .into_iter()
                        .map(|p| {
                            let c = committed.and_then(|o| o.get(&(name.clone(), p)));
                            OffsetFetchResponsePartitions {
                                partition_index: p,
                                committed_offset: c.map_or(-1, |c| c.offset),
                                committed_leader_epoch: c.map_or(-1, |c| c.leader_epoch),
                                metadata: c.map_or(Some(KStr::EMPTY), |c| c.metadata.clone()),
                                ..Default::default()
                            }
                        })
                        .collect(),
                    name,
                    topic_id,
                    ..Default::default()
                })
                .collect(),
            group_id,
            ..Default::default()
        }
    }

    /// Every (topic, partitions) a group has offsets for.
    fn committed_topics(&self, group: &KStr) -> Vec<(KStr, Vec<i32>)> {
        let mut out: Vec<(KStr, Vec<i32>)> = Vec::new();
        for (topic, partition) in self
            .groups
            .get(group)
            .map(|g| g.offsets.keys())
            .into_iter()
            .flatten()
        {
            match out.last_mut() {
                Some((t, ps)) if t == topic => ps.push(*partition),
                _ => out.push((topic.clone(), vec![*partition])),
            }
        }
        out
    }
}

impl Gateway {
    /// Expires offsets of member-less groups past `offsets_retention_ms` (run from the tick):
    /// tombstones go to the offsets log; nobody waits for them.
    pub(super) fn expire_offsets(&mut self) {
        if self.offsets_loading {
            return;
        }
        let horizon = self
            .now
            .wall
            .0
            .saturating_sub(self.config.offsets_retention_ms as i64);
        let mut records = Vec::new();
        for (group_id, g) in self.groups.iter_mut() {
            if g.state != GroupState::Empty {
                continue;
            }
            let expired: Vec<(KStr, i32)> = g
                .offsets
                .iter()
                .filter(|(_, c)| c.commit_timestamp.0 < horizon)
                .map(|(k, _)| k.clone())
                .collect();
            for (topic, partition) in expired {
                g.offsets.remove(&(topic.clone(), partition));
                records.push(NewRecord {
                    key: Some(encode_key(group_id, &topic, partition)),
                    value: None,
                    ..Default::default()
                });
            }
        }
        self.groups
            .retain(|_, g| g.state != GroupState::Empty || !g.offsets.is_empty());
        if records.is_empty() {
            return;
        }
        let now = self.now.wall.0;
        let header = BatchHeader {
            base_timestamp: now,
            max_timestamp: now,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            ..Default::default()
        };
        if let Ok(batch) = encode_batch(&header, Compression::None, &records) {
            let tp = offsets_partition();
            let checked = super::produce::Checked::single(
                batch,
                records.len() as u64,
                crate::types::TimestampMs(now),
            );
            self.queue_append(&tp, None, checked, false);
            self.pump(&tp);
        }
    }
}

/// Sets `code` on every part of a group write's answer that had succeeded.
fn fail_write(mut response: ResponseBody, code: ErrorCode) -> ResponseBody {
    let set = |e: &mut i16| {
        if *e == 0 {
            *e = code.0;
        }
    };
    match &mut response {
        ResponseBody::OffsetCommit(r) => r
            .topics
            .iter_mut()
            .flat_map(|t| t.partitions.iter_mut())
            .for_each(|p| set(&mut p.error_code)),
        ResponseBody::OffsetDelete(r) => set(&mut r.error_code),
        ResponseBody::DeleteGroups(r) => r.results.iter_mut().for_each(|g| set(&mut g.error_code)),
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_records_round_trip() {
        let c = CommittedOffset {
            commit_timestamp: crate::types::TimestampMs(9),
            offset: 42,
            leader_epoch: 3,
            metadata: Some("m".into()),
        };
        let key = encode_key(&"g".into(), &"t".into(), 7);
        let value = encode_value(&c);
        assert_eq!(
            decode_record(&key, Some(&value)),
            Some(("g".into(), ("t".into(), 7), Some(c)))
        );
        let null_meta = CommittedOffset {
            commit_timestamp: crate::types::TimestampMs(9),
            offset: 1,
            leader_epoch: -1,
            metadata: None,
        };
        assert_eq!(
            decode_record(&key, Some(&encode_value(&null_meta)))
                .unwrap()
                .2,
            Some(null_meta)
        );
        assert_eq!(decode_record(&key, None).unwrap().2, None);
        assert_eq!(decode_record(b"nonsense", Some(&value)), None);
    }
}
