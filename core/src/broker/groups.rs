//! The classic group coordinator: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! DescribeGroups and ListGroups. Kelp is every group's coordinator.
//!
//! JoinGroup and a follower's SyncGroup wait in their member ([`crate::group::Parked`]) until the
//! rebalance moves on; the `Tick` completes rebalances whose deadline passed and removes members whose
//! session expired. Committed offsets are in `group_offsets`.

use super::{Gateway, RequestKey};
use crate::ErrorCode;
use crate::api::ResponseBody;
use crate::api::describe_groups::response::{DescribedGroup, DescribedGroupMember};
use crate::api::describe_groups::{DescribeGroupsRequest, DescribeGroupsResponse};
use crate::api::find_coordinator::response::Coordinator;
use crate::api::find_coordinator::{FindCoordinatorRequest, FindCoordinatorResponse};
use crate::api::heartbeat::{HeartbeatRequest, HeartbeatResponse};
use crate::api::join_group::response::JoinGroupResponseMember;
use crate::api::join_group::{JoinGroupRequest, JoinGroupResponse};
use crate::api::leave_group::response::MemberResponse;
use crate::api::leave_group::{LeaveGroupRequest, LeaveGroupResponse};
use crate::api::list_groups::response::ListedGroup;
use crate::api::list_groups::{ListGroupsRequest, ListGroupsResponse};
use crate::api::sync_group::{SyncGroupRequest, SyncGroupResponse};
use crate::codec::KStr;
use crate::group::{Group, GroupState, Member, Parked};
use bytes::Bytes;

/// Kafka's bounds on a member's session timeout (`group.min/max.session.timeout.ms`).
const MIN_SESSION_TIMEOUT_MS: i32 = 1_000;
const MAX_SESSION_TIMEOUT_MS: i32 = 1_800_000;

impl Gateway {
    pub(super) fn find_coordinator(
        &self,
        request: FindCoordinatorRequest,
        version: i16,
    ) -> FindCoordinatorResponse {
        // Key type 0 is a group; 1 a transactional id, and Kelp has no transaction coordinator.
        let error = if request.key_type == 0 {
            ErrorCode::NONE
        } else {
            ErrorCode::COORDINATOR_NOT_AVAILABLE
        };
        let host = KStr::from(self.config.advertised_host.as_str());
        let node = if error == ErrorCode::NONE {
            self.config.node_id
        } else {
            -1
        };
        if version < 4 {
            return FindCoordinatorResponse {
                error_code: error.0,
                error_message: None,
                node_id: node,
                host: if node >= 0 { host } else { KStr::EMPTY },
                port: if node >= 0 {
                    self.config.advertised_port
                } else {
                    -1
                },
                ..Default::default()
            };
        }
        FindCoordinatorResponse {
            coordinators: request
                .coordinator_keys
                .into_iter()
                .map(|key| Coordinator {
                    key,
                    node_id: node,
                    host: if node >= 0 { host.clone() } else { KStr::EMPTY },
                    port: if node >= 0 {
                        self.config.advertised_port
                    } else {
                        -1
                    },
                    error_code: error.0,
                    error_message: None,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Answers a request that waited in a member.
    fn respond_parked(&mut self, p: Parked, body: ResponseBody) {
        self.respond(p.key, p.correlation_id, p.version, p.frame_len, body);
    }

    fn sync_error(&mut self, p: Parked, code: ErrorCode) {
        let body = SyncGroupResponse {
            error_code: code.0,
            ..Default::default()
        };
        self.respond_parked(p, ResponseBody::SyncGroup(body));
    }

    fn join_error(&mut self, parked: Parked, code: ErrorCode, member_id: KStr) {
        let body = JoinGroupResponse {
            error_code: code.0,
            member_id,
            protocol_name: Some(KStr::EMPTY),
            ..Default::default()
        };
        self.respond_parked(parked, ResponseBody::JoinGroup(body));
    }

    pub(super) fn join_group(
        &mut self,
        parked: Parked,
        request: JoinGroupRequest,
        client_id: KStr,
        client_host: KStr,
    ) {
        let version = parked.version;
        if self.offsets_loading {
            return self.join_error(
                parked,
                ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
                request.member_id,
            );
        }
        if request.group_id.is_empty() {
            return self.join_error(parked, ErrorCode::INVALID_GROUP_ID, request.member_id);
        }
        if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&request.session_timeout_ms)
        {
            return self.join_error(
                parked,
                ErrorCode::INVALID_SESSION_TIMEOUT,
                request.member_id,
            );
        }
        let now = self.now.mono;
        let protocols: Vec<(KStr, Bytes)> = request
            .protocols
            .iter()
            .map(|p| (p.name.clone(), p.metadata.clone()))
            .collect();
        let group = self
            .groups
            .entry(request.group_id.clone())
            .or_insert_with(Group::new);
        if !group.accepts(&request.protocol_type, &protocols) {
            return self.join_error(
                parked,
                ErrorCode::INCONSISTENT_GROUP_PROTOCOL,
                request.member_id,
            );
        }
        let mut member_id = request.member_id.clone();
        let mut fenced: (Option<Parked>, Option<Parked>) = (None, None);
        if member_id.is_empty() {
            self.next_member += 1;
            let fresh = KStr::from(format!(
                "{}-{}-{}",
                request
                    .group_instance_id
                    .as_ref()
                    .unwrap_or(&KStr::from("member")),
                self.now.wall.0,
                self.next_member
            ));
            if let Some(instance) = &request.group_instance_id {
                // A static member needs no MEMBER_ID_REQUIRED round trip. Coming back, it gets a
                // new id that takes over the old one's place (and assignment); whichever process
                // still uses the old id is fenced.
                let old = group
                    .members
                    .iter()
                    .find(|(_, m)| m.instance_id.as_ref() == Some(instance))
                    .map(|(id, _)| id.clone());
                if let Some(old) = old
                    && let Some(mut m) = group.members.remove(&old)
                {
                    fenced = (m.join.take(), m.sync.take());
                    group.members.insert(fresh.clone(), m);
                    if group.leader.as_ref() == Some(&old) {
                        group.leader = Some(fresh.clone());
                    }
                }
                member_id = fresh;
            } else if version >= 4 {
                // KIP-394: the client must come back with this id.
                group
                    .pending_members
                    .insert(fresh.clone(), now.plus(request.session_timeout_ms as u64));
                return self.join_error(parked, ErrorCode::MEMBER_ID_REQUIRED, fresh);
            } else {
                member_id = fresh;
            }
        } else if group.fences(request.group_instance_id.as_ref(), &member_id) {
            return self.join_error(parked, ErrorCode::FENCED_INSTANCE_ID, member_id);
        } else if !group.members.contains_key(&member_id)
            && group.pending_members.remove(&member_id).is_none()
        {
            return self.join_error(parked, ErrorCode::UNKNOWN_MEMBER_ID, member_id);
        }
        let rebalance_timeout_ms = if request.rebalance_timeout_ms > 0 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        } as u64;
        let existing = group
            .members
            .get(&member_id)
            .map(|m| m.protocols == protocols);
        let member = Member {
            instance_id: request.group_instance_id.clone(),
            client_id,
            client_host,
            session_timeout_ms: request.session_timeout_ms as u64,
            rebalance_timeout_ms,
            protocols,
            assignment: group
                .members
                .get(&member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
            last_seen: now,
            join: Some(parked),
            sync: None,
        };
        group.members.insert(member_id.clone(), member);
        group
            .protocol_type
            .get_or_insert_with(|| request.protocol_type.clone());
        let stable = group.state == GroupState::Stable;
        let (fenced_join, fenced_sync) = fenced;
        if let Some(p) = fenced_join {
            self.join_error(p, ErrorCode::FENCED_INSTANCE_ID, KStr::EMPTY);
        }
        if let Some(p) = fenced_sync {
            self.sync_error(p, ErrorCode::FENCED_INSTANCE_ID);
        }
        // An unchanged member of a stable group (a static member's restart) gets the current
        // generation back: no rebalance.
        if stable && existing == Some(true) {
            return self.answer_join(&request.group_id, &member_id);
        }
        self.prepare_rebalance(&request.group_id);
        self.maybe_complete_join(&request.group_id);
    }

    /// Starts (or continues) a rebalance: members must rejoin within the rebalance timeout.
    fn prepare_rebalance(&mut self, group_id: &KStr) {
        let now = self.now.mono;
        let delay = self.config.group_initial_rebalance_delay_ms;
        let mut syncs = Vec::new();
        if let Some(group) = self.groups.get_mut(group_id) {
            if group.state != GroupState::PreparingRebalance {
                let timeout = group
                    .members
                    .values()
                    .map(|m| m.rebalance_timeout_ms)
                    .max()
                    .unwrap_or(0);
                group.rebalance_deadline = now.plus(timeout);
                // A new group waits a little for more members before its first generation.
                group.initial_delay_until = if group.state == GroupState::Empty {
                    now.plus(delay)
                } else {
                    now
                };
                group.state = GroupState::PreparingRebalance;
            }
            syncs = group
                .members
                .values_mut()
                .filter_map(|m| m.sync.take())
                .collect();
        }
        for p in syncs {
            self.sync_error(p, ErrorCode::REBALANCE_IN_PROGRESS);
        }
    }

    /// Completes the join phase once every member rejoined (and a new group's delay passed), or the
    /// rebalance timeout ran out (members that did not rejoin are dropped).
    pub(super) fn maybe_complete_join(&mut self, group_id: &KStr) {
        let now = self.now.mono;
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = group.members.values().all(|m| m.join.is_some());
        if !((all_joined && now >= group.initial_delay_until) || now >= group.rebalance_deadline) {
            return;
        }
        group.members.retain(|_, m| m.join.is_some());
        group.generation += 1;
        if group.members.is_empty() {
            group.state = GroupState::Empty;
            group.protocol = None;
            group.leader = None;
            return;
        }
        group.protocol = group.choose_protocol();
        if group
            .leader
            .as_ref()
            .is_none_or(|l| !group.members.contains_key(l))
        {
            group.leader = group.members.keys().next().cloned();
        }
        group.state = GroupState::CompletingRebalance;
        let ids: Vec<KStr> = group.members.keys().cloned().collect();
        for id in ids {
            self.answer_join(group_id, &id);
        }
    }

    /// Answers member `member_id`'s parked JoinGroup with the current generation.
    fn answer_join(&mut self, group_id: &KStr, member_id: &KStr) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        let protocol = group.protocol.clone().unwrap_or_default();
        let leader = group.leader.clone().unwrap_or_default();
        let members = if &leader == member_id {
            group
                .members
                .iter()
                .map(|(id, m)| JoinGroupResponseMember {
                    member_id: id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    metadata: m.metadata_for(&protocol),
                    ..Default::default()
                })
                .collect()
        } else {
            Vec::new()
        };
        let Some(parked) = group.members.get_mut(member_id).and_then(|m| m.join.take()) else {
            return;
        };
        let body = JoinGroupResponse {
            generation_id: group.generation,
            protocol_type: group.protocol_type.clone(),
            protocol_name: Some(protocol),
            leader,
            member_id: member_id.clone(),
            members,
            ..Default::default()
        };
        self.respond_parked(parked, ResponseBody::JoinGroup(body));
    }

    /// Checks that `member_id` of `generation` may act in `group_id` now.
    fn check_member(
        &self,
        group_id: &KStr,
        member_id: &KStr,
        instance: Option<&KStr>,
        generation: i32,
    ) -> Result<GroupState, ErrorCode> {
        if self.offsets_loading {
            return Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
        }
        let group = self
            .groups
            .get(group_id)
            .ok_or(ErrorCode::UNKNOWN_MEMBER_ID)?;
        if group.fences(instance, member_id) {
            return Err(ErrorCode::FENCED_INSTANCE_ID);
        }
        if !group.members.contains_key(member_id) {
            return Err(ErrorCode::UNKNOWN_MEMBER_ID);
        }
        if generation != group.generation {
            return Err(ErrorCode::ILLEGAL_GENERATION);
        }
        Ok(group.state)
    }

    pub(super) fn sync_group(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        request: SyncGroupRequest,
    ) {
        let parked = Parked {
            key,
            correlation_id,
            version,
            frame_len,
        };
        let fail = |gw: &mut Gateway, code: ErrorCode| gw.sync_error(parked, code);
        let state = match self.check_member(
            &request.group_id,
            &request.member_id,
            request.group_instance_id.as_ref(),
            request.generation_id,
        ) {
            Ok(s) => s,
            Err(code) => return fail(self, code),
        };
        match state {
            GroupState::PreparingRebalance => fail(self, ErrorCode::REBALANCE_IN_PROGRESS),
            GroupState::Empty => fail(self, ErrorCode::UNKNOWN_MEMBER_ID),
            GroupState::Stable => {
                self.touch(&request.group_id, &request.member_id);
                self.answer_sync(&request.group_id, &request.member_id, Some(parked));
            }
            GroupState::CompletingRebalance => {
                let Some(group) = self.groups.get_mut(&request.group_id) else {
                    return;
                };
                if let Some(m) = group.members.get_mut(&request.member_id) {
                    m.sync = Some(parked);
                    m.last_seen = self.now.mono;
                }
                if group.leader.as_ref() != Some(&request.member_id) {
                    return;
                }
                for (id, m) in group.members.iter_mut() {
                    m.assignment = request
                        .assignments
                        .iter()
                        .find(|a| &a.member_id == id)
                        .map(|a| a.assignment.clone())
                        .unwrap_or_default();
                }
                group.state = GroupState::Stable;
                let ids: Vec<KStr> = group.members.keys().cloned().collect();
                for id in ids {
                    self.answer_sync(&request.group_id, &id, None);
                }
            }
        }
    }

    /// Answers a member's SyncGroup (`parked`, or the one parked in the member) with its assignment.
    fn answer_sync(&mut self, group_id: &KStr, member_id: &KStr, parked: Option<Parked>) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        let Some(member) = group.members.get_mut(member_id) else {
            return;
        };
        let Some(p) = parked.or_else(|| member.sync.take()) else {
            return;
        };
        let body = SyncGroupResponse {
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol.clone(),
            assignment: member.assignment.clone(),
            ..Default::default()
        };
        self.respond_parked(p, ResponseBody::SyncGroup(body));
    }

    fn touch(&mut self, group_id: &KStr, member_id: &KStr) {
        let now = self.now.mono;
        if let Some(m) = self
            .groups
            .get_mut(group_id)
            .and_then(|g| g.members.get_mut(member_id))
        {
            m.last_seen = now;
        }
    }

    pub(super) fn heartbeat(&mut self, request: HeartbeatRequest) -> HeartbeatResponse {
        let code = match self.check_member(
            &request.group_id,
            &request.member_id,
            request.group_instance_id.as_ref(),
            request.generation_id,
        ) {
            Err(code) => code,
            Ok(state) => {
                self.touch(&request.group_id, &request.member_id);
                match state {
                    GroupState::PreparingRebalance => ErrorCode::REBALANCE_IN_PROGRESS,
                    GroupState::Empty => ErrorCode::UNKNOWN_MEMBER_ID,
                    GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::NONE,
                }
            }
        };
        HeartbeatResponse {
            error_code: code.0,
            ..Default::default()
        }
    }

    pub(super) fn leave_group(
        &mut self,
        request: LeaveGroupRequest,
        version: i16,
    ) -> LeaveGroupResponse {
        let leaving: Vec<(KStr, Option<KStr>)> = if version >= 3 {
            request
                .members
                .iter()
                .map(|m| (m.member_id.clone(), m.group_instance_id.clone()))
                .collect()
        } else {
            vec![(request.member_id.clone(), None)]
        };
        let mut response = LeaveGroupResponse::default();
        let mut removed = false;
        for (member_id, instance) in leaving {
            let code = match self.groups.get_mut(&request.group_id) {
                _ if self.offsets_loading => ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
                None => ErrorCode::UNKNOWN_MEMBER_ID,
                Some(group)
                    if !member_id.is_empty() && group.fences(instance.as_ref(), &member_id) =>
                {
                    ErrorCode::FENCED_INSTANCE_ID
                }
                Some(group) => {
                    // A static member may leave by instance id alone.
                    let id = if member_id.is_empty() {
                        group
                            .members
                            .iter()
                            .find(|(_, m)| m.instance_id.is_some() && m.instance_id == instance)
                            .map(|(id, _)| id.clone())
                    } else {
                        Some(member_id.clone())
                    };
                    match id.and_then(|id| group.members.remove(&id)) {
                        Some(_) => {
                            removed = true;
                            ErrorCode::NONE
                        }
                        None => ErrorCode::UNKNOWN_MEMBER_ID,
                    }
                }
            };
            if version >= 3 {
                response.members.push(MemberResponse {
                    member_id,
                    group_instance_id: instance,
                    error_code: code.0,
                    ..Default::default()
                });
            } else {
                response.error_code = code.0;
            }
        }
        if removed {
            self.members_changed(&request.group_id.clone());
        }
        response
    }

    /// After members left or expired: rebalance, or become Empty.
    fn members_changed(&mut self, group_id: &KStr) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if group.members.is_empty() {
            if group.state != GroupState::PreparingRebalance {
                group.generation += 1;
            }
            group.state = GroupState::Empty;
            group.leader = None;
            group.protocol = None;
            return;
        }
        self.prepare_rebalance(group_id);
        self.maybe_complete_join(group_id);
    }

    /// Time-driven group work: rebalance deadlines and expired sessions.
    pub(super) fn tick_groups(&mut self) {
        let now = self.now.mono;
        let ids: Vec<KStr> = self.groups.keys().cloned().collect();
        for id in ids {
            let Some(group) = self.groups.get_mut(&id) else {
                continue;
            };
            group.pending_members.retain(|_, expiry| *expiry > now);
            let expired: Vec<KStr> = group
                .members
                .iter()
                .filter(|(_, m)| {
                    m.join.is_none()
                        && m.sync.is_none()
                        && now.0 > m.last_seen.0 + m.session_timeout_ms
                })
                .map(|(k, _)| k.clone())
                .collect();
            for m in &expired {
                group.members.remove(m);
            }
            if !expired.is_empty() {
                self.members_changed(&id);
            }
            self.maybe_complete_join(&id);
        }
    }

    /// The next time group work is due.
    pub(super) fn groups_deadline(&self) -> Option<crate::types::Millis> {
        let now = self.now.mono;
        self.groups
            .values()
            .flat_map(|g| {
                // Only deadlines `tick_groups` acts on: a time that passed without anything to do
                // would make the driver spin.
                let rebalance = (g.state == GroupState::PreparingRebalance).then(|| {
                    if g.initial_delay_until > now {
                        g.rebalance_deadline.min(g.initial_delay_until)
                    } else {
                        g.rebalance_deadline
                    }
                });
                let sessions = g
                    .members
                    .values()
                    .filter(|m| m.join.is_none() && m.sync.is_none())
                    .map(|m| m.last_seen.plus(m.session_timeout_ms + 1));
                rebalance
                    .into_iter()
                    .chain(sessions)
                    .chain(g.pending_members.values().copied())
            })
            .min()
    }

    pub(super) fn describe_groups(&self, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
        let groups = request
            .groups
            .into_iter()
            .map(|group_id| match self.groups.get(&group_id) {
                _ if self.offsets_loading => DescribedGroup {
                    error_code: ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.0,
                    group_id,
                    ..Default::default()
                },
                None => DescribedGroup {
                    group_id,
                    group_state: KStr::from_static("Dead"),
                    ..Default::default()
                },
                Some(g) => DescribedGroup {
                    group_id,
                    group_state: KStr::from_static(g.state.name()),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    protocol_data: g.protocol.clone().unwrap_or_default(),
                    members: g
                        .members
                        .iter()
                        .map(|(id, m)| DescribedGroupMember {
                            member_id: id.clone(),
                            group_instance_id: m.instance_id.clone(),
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            member_metadata: g
                                .protocol
                                .as_ref()
                                .map(|p| m.metadata_for(p))
                                .unwrap_or_default(),
                            member_assignment: m.assignment.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                },
            })
            .collect();
        DescribeGroupsResponse {
            groups,
            ..Default::default()
        }
    }

    pub(super) fn list_groups(&self, request: ListGroupsRequest) -> ListGroupsResponse {
        let wanted = |state: &str| {
            request.states_filter.is_empty()
                || request
                    .states_filter
                    .iter()
                    .any(|s| s.as_str().eq_ignore_ascii_case(state))
        };
        let type_ok = request.types_filter.is_empty()
            || request
                .types_filter
                .iter()
                .any(|t| t.as_str().eq_ignore_ascii_case("classic"));
        ListGroupsResponse {
            error_code: if self.offsets_loading {
                ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.0
            } else {
                0
            },
            groups: self
                .groups
                .iter()
                .filter(|(_, g)| type_ok && wanted(g.state.name()))
                .map(|(id, g)| ListedGroup {
                    group_id: id.clone(),
                    protocol_type: g
                        .protocol_type
                        .clone()
                        .unwrap_or_else(|| KStr::from_static("consumer")),
                    group_state: KStr::from_static(g.state.name()),
                    group_type: KStr::from_static("classic"),
                    ..Default::default()
                })
                .chain(
                    self.consumer_groups
                        .iter()
                        .filter(|(_, g)| wanted(super::consumer_groups::consumer_group_state(g)))
                        .filter(|_| {
                            request.types_filter.is_empty()
                                || request
                                    .types_filter
                                    .iter()
                                    .any(|t| t.as_str().eq_ignore_ascii_case("consumer"))
                        })
                        .map(|(id, g)| ListedGroup {
                            group_id: id.clone(),
                            protocol_type: KStr::from_static("consumer"),
                            group_state: KStr::from_static(
                                super::consumer_groups::consumer_group_state(g),
                            ),
                            group_type: KStr::from_static("consumer"),
                            ..Default::default()
                        }),
                )
                .collect(),
            ..Default::default()
        }
    }
}
