//! KIP-848 consumer groups over the wire: ConsumerGroupHeartbeat and ConsumerGroupDescribe. The
//! state machine itself is [`crate::consumer_group`].

use super::Gateway;
use crate::ErrorCode;
use crate::api::consumer_group_describe::response::{
    Assignment as DescribedAssignment, DescribedGroup, Member,
    TopicPartitions as DescribedPartitions,
};
use crate::api::consumer_group_describe::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
};
use crate::api::consumer_group_heartbeat::response::{Assignment, TopicPartitions};
use crate::api::consumer_group_heartbeat::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
};
use crate::codec::KStr;
use crate::consumer_group::{ConsumerGroup, ConsumerMember, Partitions};
use std::collections::BTreeMap;

/// Member epochs a leaving member sends: -1 for dynamic members, -2 for static ones.
const LEAVE: i32 = -1;
const LEAVE_STATIC: i32 = -2;

impl Gateway {
    fn partition_count(&self, topic: &KStr) -> i32 {
        self.topics
            .get(topic)
            .map_or(0, |t| t.partitions.len() as i32)
    }

    /// Partition counts of the topics a group subscribes to: a change means new targets.
    fn topology(&self, group: &ConsumerGroup) -> Vec<(KStr, i32)> {
        let mut topics: Vec<KStr> = group
            .members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect();
        topics.sort();
        topics.dedup();
        topics
            .into_iter()
            .map(|t| {
                let n = self.partition_count(&t);
                (t, n)
            })
            .collect()
    }

    fn retarget(&mut self, group_id: &KStr) {
        let Some(mut group) = self.consumer_groups.remove(group_id) else {
            return;
        };
        group.retarget(|t| self.partition_count(t));
        group.topology = self.topology(&group);
        self.consumer_groups.insert(group_id.clone(), group);
    }

    pub(super) fn consumer_group_heartbeat(
        &mut self,
        request: ConsumerGroupHeartbeatRequest,
    ) -> ConsumerGroupHeartbeatResponse {
        let fail = |code: ErrorCode, message: &str| ConsumerGroupHeartbeatResponse {
            error_code: code.0,
            error_message: Some(KStr::from(message)),
            ..Default::default()
        };
        if self.offsets_loading {
            return fail(
                ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
                "loading committed offsets",
            );
        }
        if request.group_id.is_empty() {
            return fail(ErrorCode::INVALID_REQUEST, "empty group id");
        }
        if self
            .groups
            .get(&request.group_id)
            .is_some_and(|g| !g.members.is_empty())
        {
            return fail(
                ErrorCode::GROUP_ID_NOT_FOUND,
                "a classic group with members has this id",
            );
        }
        let now = self.now.mono;
        let group_id = request.group_id.clone();
        let mut member_id = request.member_id.clone();
        let mut send_assignment = false;
        let mut retarget = false;
        match request.member_epoch {
            0 => {
                let Some(subscribed) = request.subscribed_topic_names.clone() else {
                    return fail(
                        ErrorCode::INVALID_REQUEST,
                        "joining needs subscribed topic names",
                    );
                };
                if member_id.is_empty() {
                    self.next_member += 1;
                    member_id =
                        KStr::from(format!("kelp-{}-{}", self.now.wall.0, self.next_member));
                }
                let group = self.consumer_groups.entry(group_id.clone()).or_default();
                // A static member coming back replaces its earlier incarnation.
                if let Some(instance) = &request.instance_id {
                    group
                        .members
                        .retain(|_, m| m.instance_id.as_ref() != Some(instance));
                }
                group.members.insert(
                    member_id.clone(),
                    ConsumerMember {
                        instance_id: request.instance_id.clone(),
                        rack_id: request.rack_id.clone(),
                        client_id: KStr::EMPTY,
                        subscribed,
                        assignor: request.server_assignor.clone(),
                        rebalance_timeout_ms: request.rebalance_timeout_ms.max(0) as u64,

                        last_seen: now,
                        ..Default::default()
                    },
                );
                send_assignment = true;
                retarget = true;
            }
            LEAVE | LEAVE_STATIC => {
                if let Some(group) = self.consumer_groups.get_mut(&group_id)
                    && group.members.remove(&member_id).is_some()
                {
                    self.retarget(&group_id);
                }
                return ConsumerGroupHeartbeatResponse {
                    member_id: Some(member_id),
                    member_epoch: request.member_epoch,
                    ..Default::default()
                };
            }
            epoch => {
                let Some(group) = self.consumer_groups.get_mut(&group_id) else {
                    return fail(ErrorCode::UNKNOWN_MEMBER_ID, "no such group");
                };
                let Some(member) = group.members.get_mut(&member_id) else {
                    return fail(ErrorCode::UNKNOWN_MEMBER_ID, "no such member");
                };
                if epoch != member.epoch && epoch != member.previous_epoch {
                    return fail(
                        ErrorCode::FENCED_MEMBER_EPOCH,
                        "the member epoch is not current",
                    );
                }
                member.last_seen = now;
                if let Some(subscribed) = &request.subscribed_topic_names
                    && *subscribed != member.subscribed
                {
                    member.subscribed = subscribed.clone();
                    retarget = true;
                }
                if let Some(owned) = &request.topic_partitions {
                    let owned: Partitions = owned
                        .iter()
                        .filter_map(|t| {
                            self.topic_name_by_id(t.topic_id)
                                .map(|n| (n, &t.partitions))
                        })
                        .flat_map(|(n, ps)| ps.iter().map(move |p| (n.clone(), *p)))
                        .collect();
                    if let Some(group) = self.consumer_groups.get_mut(&group_id) {
                        group.owned_reported(&member_id, &owned);
                    }
                }
            }
        }
        // New topics or partitions behind a subscription also mean new targets.
        let topology_changed = self
            .consumer_groups
            .get(&group_id)
            .is_some_and(|g| self.topology(g) != g.topology);
        if retarget || topology_changed {
            self.retarget(&group_id);
        }
        let Some(group) = self.consumer_groups.get_mut(&group_id) else {
            return fail(ErrorCode::UNKNOWN_MEMBER_ID, "no such group");
        };
        let changed = group.reconcile(&member_id, now);
        let Some(member) = group.members.get(&member_id) else {
            return fail(ErrorCode::UNKNOWN_MEMBER_ID, "no such member");
        };
        let assignment = (send_assignment || changed.is_some()).then(|| Assignment {
            topic_partitions: by_topic(&member.assigned)
                .into_iter()
                .map(|(topic, partitions)| TopicPartitions {
                    topic_id: super::topic_id_for(topic.as_str()),
                    partitions,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        ConsumerGroupHeartbeatResponse {
            member_id: Some(member_id),
            member_epoch: member.epoch,
            heartbeat_interval_ms: self.config.consumer_heartbeat_interval_ms as i32,
            assignment,
            ..Default::default()
        }
    }

    /// Removes KIP-848 members not heard from within the session timeout (from the tick).
    pub(super) fn tick_consumer_groups(&mut self) {
        let now = self.now.mono;
        let timeout = self.config.consumer_session_timeout_ms;
        let expired: Vec<KStr> = self
            .consumer_groups
            .iter_mut()
            .filter_map(|(id, g)| {
                let before = g.members.len();
                // Silent for a session, or holding on to revoked partitions past its rebalance timeout.
                g.members.retain(|_, m| {
                    now.0 <= m.last_seen.0 + timeout
                        && m.revoking_since
                            .is_none_or(|since| now.0 <= since.0 + m.rebalance_timeout_ms)
                });
                (g.members.len() != before).then(|| id.clone())
            })
            .collect();
        for id in expired {
            self.retarget(&id);
        }
    }

    /// The next member session expiry of a KIP-848 group.
    pub(super) fn consumer_groups_deadline(&self) -> Option<crate::types::Millis> {
        let timeout = self.config.consumer_session_timeout_ms;
        self.consumer_groups
            .values()
            .flat_map(|g| g.members.values())
            .flat_map(|m| {
                let revoke = m
                    .revoking_since
                    .map(|since| since.plus(m.rebalance_timeout_ms + 1));
                std::iter::once(m.last_seen.plus(timeout + 1)).chain(revoke)
            })
            .min()
    }

    /// Whether `member_id` at `epoch` may commit for a KIP-848 group: `None` when the group is not a
    /// KIP-848 group.
    pub(super) fn consumer_member_check(
        &self,
        group_id: &KStr,
        member_id: &KStr,
        epoch: i32,
    ) -> Option<Result<(), ErrorCode>> {
        let group = self.consumer_groups.get(group_id)?;
        Some(match group.members.get(member_id) {
            None => Err(ErrorCode::UNKNOWN_MEMBER_ID),
            Some(m) if epoch != m.epoch && epoch != m.previous_epoch => {
                Err(ErrorCode::STALE_MEMBER_EPOCH)
            }
            Some(_) => Ok(()),
        })
    }

    pub(super) fn consumer_group_describe(
        &self,
        request: ConsumerGroupDescribeRequest,
    ) -> ConsumerGroupDescribeResponse {
        let describe = |ps: &Partitions| DescribedAssignment {
            topic_partitions: by_topic(ps)
                .into_iter()
                .map(|(topic, partitions)| DescribedPartitions {
                    topic_id: super::topic_id_for(topic.as_str()),
                    topic_name: topic,
                    partitions,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let groups = request
            .group_ids
            .into_iter()
            .map(|group_id| match self.consumer_groups.get(&group_id) {
                None => DescribedGroup {
                    error_code: ErrorCode::GROUP_ID_NOT_FOUND.0,
                    error_message: Some(KStr::from("no such consumer group")),
                    group_id,
                    group_state: KStr::from_static("Dead"),
                    ..Default::default()
                },
                Some(g) => DescribedGroup {
                    group_id,
                    group_state: KStr::from_static(consumer_group_state(g)),
                    group_epoch: g.epoch,
                    assignment_epoch: g.assignment_epoch,
                    assignor_name: g
                        .members
                        .values()
                        .find_map(|m| m.assignor.clone())
                        .unwrap_or_else(|| KStr::from_static("uniform")),
                    members: g
                        .members
                        .iter()
                        .map(|(id, m)| Member {
                            member_id: id.clone(),
                            instance_id: m.instance_id.clone(),
                            rack_id: m.rack_id.clone(),
                            member_epoch: m.epoch,
                            client_id: m.client_id.clone(),
                            client_host: KStr::from_static("/127.0.0.1"),
                            subscribed_topic_names: m.subscribed.clone(),
                            assignment: describe(&m.assigned),
                            target_assignment: describe(&m.target),
                            member_type: 0,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                },
            })
            .collect();
        ConsumerGroupDescribeResponse {
            groups,
            ..Default::default()
        }
    }
}

/// Kafka's names for a KIP-848 group's state.
pub(super) fn consumer_group_state(g: &ConsumerGroup) -> &'static str {
    if g.members.is_empty() {
        "Empty"
    } else if g
        .members
        .values()
        .all(|m| m.epoch == g.epoch && m.assigned == m.target)
    {
        "Stable"
    } else {
        "Reconciling"
    }
}

fn by_topic(ps: &Partitions) -> BTreeMap<KStr, Vec<i32>> {
    let mut out: BTreeMap<KStr, Vec<i32>> = BTreeMap::new();
    for (t, p) in ps {
        out.entry(t.clone()).or_default().push(*p);
    }
    out
}
