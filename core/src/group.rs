//! Consumer groups of the classic protocol: members, generations and the rebalance state machine,
//! and the committed offsets of each group.
//!
//! States and their transitions (Kafka's, kept in one place):
//!
//! ```text
//! Empty --join--> PreparingRebalance --all joined / timeout--> CompletingRebalance
//! CompletingRebalance --leader's SyncGroup--> Stable
//! Stable | CompletingRebalance --join (new member, changed protocols), leave, session timeout--> PreparingRebalance
//! PreparingRebalance --everyone gone--> Empty
//! ```
//!
//! The coordinator logic that answers requests lives in `broker::groups`; this module holds the
//! state it works on, with no knowledge of connections or storage.

use crate::codec::KStr;
use crate::types::Millis;
use bytes::Bytes;
use std::collections::BTreeMap;

/// A classic group's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// No members (possibly committed offsets).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl GroupState {
    /// The name Kafka reports (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// A request parked until the group moves on (a JoinGroup during a rebalance, a follower's
/// SyncGroup waiting for the leader).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Parked {
    pub(crate) key: crate::broker::RequestKey,
    pub(crate) correlation_id: i32,
    pub(crate) version: i16,
    pub(crate) frame_len: usize,
}

/// One member of a classic group.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub(crate) instance_id: Option<KStr>,
    pub(crate) client_id: KStr,
    pub(crate) client_host: KStr,
    pub(crate) session_timeout_ms: u64,
    pub(crate) rebalance_timeout_ms: u64,
    /// (protocol name, metadata) in the member's order of preference.
    pub(crate) protocols: Vec<(KStr, Bytes)>,
    pub(crate) assignment: Bytes,
    pub(crate) last_seen: Millis,
    pub(crate) join: Option<Parked>,
    pub(crate) sync: Option<Parked>,
}

impl Member {
    pub(crate) fn metadata_for(&self, protocol: &KStr) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset to consume.
    pub offset: i64,
    /// The leader epoch of the record before it, or -1.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: Option<KStr>,
    /// When it was committed (wall clock), for offset retention.
    pub commit_timestamp: crate::types::TimestampMs,
}

/// A classic consumer group.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub(crate) state: GroupState,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<KStr>,
    pub(crate) protocol: Option<KStr>,
    pub(crate) leader: Option<KStr>,
    pub(crate) members: BTreeMap<KStr, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED and not yet used, with their expiry.
    pub(crate) pending_members: BTreeMap<KStr, Millis>,
    /// A rebalance completes at this time even if members are missing.
    pub(crate) rebalance_deadline: Millis,
    /// A new group's first rebalance waits this long for more members (Kafka's
    /// `group.initial.rebalance.delay.ms`).
    pub(crate) initial_delay_until: Millis,
    pub(crate) offsets: BTreeMap<(KStr, i32), CommittedOffset>,
}

impl Group {
    pub(crate) fn new() -> Group {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            rebalance_deadline: Millis(0),
            initial_delay_until: Millis(0),
            offsets: BTreeMap::new(),
        }
    }

    /// The protocol every member supports, by the members' combined preference (each member votes
    /// for its most preferred protocol among the common ones; ties go to the leader's order).
    pub(crate) fn choose_protocol(&self) -> Option<KStr> {
        let first = self.members.values().next()?;
        let common: Vec<&KStr> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let mut votes: BTreeMap<&KStr, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(p, _)| common.contains(&p)) {
                *votes.entry(name).or_default() += 1;
            }
        }
        common
            .iter()
            .max_by_key(|n| {
                (
                    votes.get(*n).copied().unwrap_or(0),
                    std::cmp::Reverse(common.iter().position(|c| c == *n)),
                )
            })
            .map(|n| (*n).clone())
    }

    /// Topics the members subscribe to, read from the consumer protocol's subscription metadata
    /// (version INT16, then an array of topic names); other protocol types subscribe to nothing.
    pub(crate) fn subscribed_topics(&self) -> Vec<KStr> {
        use crate::codec::wire;
        if self
            .protocol_type
            .as_ref()
            .is_none_or(|t| t.as_str() != "consumer")
        {
            return Vec::new();
        }
        let mut topics = Vec::new();
        for m in self.members.values() {
            let Some(meta) = self.protocol.as_ref().map(|p| m.metadata_for(p)) else {
                continue;
            };
            let src = wire::Src::new(&meta);
            let Ok((rest, _version)) = wire::i16(&meta) else {
                continue;
            };
            let Ok((mut rest, count)) = wire::i32(rest) else {
                continue;
            };
            for _ in 0..count.clamp(0, 10_000) {
                match wire::string(&src, rest, false) {
                    Ok((after, name)) => {
                        rest = after;
                        topics.push(name);
                    }
                    Err(_) => break,
                }
            }
        }
        topics.sort();
        topics.dedup();
        topics
    }

    /// Whether a request from `member_id` claiming static `instance` comes from a process that
    /// another (newer) member id of that instance has replaced: Kafka fences it.
    pub(crate) fn fences(&self, instance: Option<&KStr>, member_id: &KStr) -> bool {
        instance.is_some_and(|i| {
            self.members
                .iter()
                .any(|(id, m)| m.instance_id.as_ref() == Some(i) && id != member_id)
        })
    }

    /// Whether a joining member's protocols can live with the group's.
    pub(crate) fn accepts(&self, protocol_type: &KStr, protocols: &[(KStr, Bytes)]) -> bool {
        if protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type
            .as_ref()
            .is_none_or(|t| t == protocol_type)
            && protocols.iter().any(|(n, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(protocols: &[&str]) -> Member {
        Member {
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocols: protocols
                .iter()
                .map(|p| (KStr::from(*p), Bytes::new()))
                .collect(),
            assignment: Bytes::new(),
            last_seen: Millis(0),
            join: None,
            sync: None,
        }
    }

    #[test]
    fn the_protocol_is_one_every_member_supports() {
        let mut g = Group::new();
        g.members
            .insert("a".into(), member(&["range", "cooperative-sticky"]));
        g.members
            .insert("b".into(), member(&["cooperative-sticky", "range"]));
        g.members
            .insert("c".into(), member(&["cooperative-sticky"]));
        assert_eq!(g.choose_protocol().unwrap().as_str(), "cooperative-sticky");
        assert!(g.accepts(
            &"consumer".into(),
            &[("cooperative-sticky".into(), Bytes::new())]
        ));
        assert!(!g.accepts(&"consumer".into(), &[("roundrobin".into(), Bytes::new())]));
    }
}
