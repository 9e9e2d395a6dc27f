//! KIP-848 consumer groups: the server computes assignments and hands them to members through
//! their heartbeats, one reconciliation step at a time.
//!
//! Epochs: the group epoch moves when membership or subscriptions change, and a target assignment
//! is computed for it (server-side assignor: `uniform` or `range`). A member's epoch reaches the group
//! epoch once it holds exactly its target. On the way, a partition moves only after its previous
//! owner has given it up: a member first gets its assignment minus what it must revoke, and only when
//! it reports the revocation done does it get partitions others freed. So no partition is ever owned
//! by two members.

use crate::codec::KStr;
use crate::types::Millis;
use std::collections::{BTreeMap, BTreeSet};

/// A set of partitions: (topic name, partition).
pub type Partitions = BTreeSet<(KStr, i32)>;

/// One member of a KIP-848 group.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConsumerMember {
    pub(crate) epoch: i32,
    pub(crate) previous_epoch: i32,
    pub(crate) instance_id: Option<KStr>,
    pub(crate) rack_id: Option<KStr>,
    pub(crate) client_id: KStr,
    pub(crate) subscribed: Vec<KStr>,
    pub(crate) assignor: Option<KStr>,
    /// What it was last told it owns.
    pub(crate) assigned: Partitions,
    /// What it should own at the group epoch.
    pub(crate) target: Partitions,
    /// Partitions it was told to give up and has not yet reported given up: nobody else gets them.
    pub(crate) revoking: Partitions,
    /// When it was first told to revoke what it still holds back; past its rebalance timeout the
    /// member is removed so that the others can go on.
    pub(crate) revoking_since: Option<Millis>,
    pub(crate) rebalance_timeout_ms: u64,
    pub(crate) last_seen: Millis,
}

/// A KIP-848 consumer group.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConsumerGroup {
    pub(crate) epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) members: BTreeMap<KStr, ConsumerMember>,
    /// Partition counts of the subscribed topics when the targets were computed.
    pub(crate) topology: Vec<(KStr, i32)>,
}

/// Splits partitions among members. `uniform` spreads every subscribed partition evenly (sorted
/// round robin); `range` gives each member a contiguous range of each topic, as the classic range
/// assignor does.
pub fn assign(
    assignor: &str,
    members: &BTreeMap<KStr, Vec<KStr>>,
    partitions_of: impl Fn(&KStr) -> i32,
) -> BTreeMap<KStr, Partitions> {
    let mut out: BTreeMap<KStr, Partitions> = members
        .keys()
        .map(|m| (m.clone(), Partitions::new()))
        .collect();
    let topics: BTreeSet<&KStr> = members.values().flatten().collect();
    if assignor == "range" {
        for topic in topics {
            let subscribers: Vec<&KStr> = members
                .iter()
                .filter(|(_, t)| t.contains(topic))
                .map(|(m, _)| m)
                .collect();
            let n = partitions_of(topic).max(0) as usize;
            if subscribers.is_empty() {
                continue;
            }
            let (per, extra) = (n / subscribers.len(), n % subscribers.len());
            let mut next = 0;
            for (i, m) in subscribers.iter().enumerate() {
                let take = per + usize::from(i < extra);
                for p in next..next + take {
                    out.entry((*m).clone())
                        .or_default()
                        .insert((topic.clone(), p as i32));
                }
                next += take;
            }
        }
        return out;
    }
    // uniform: every (topic, partition), in order, to the subscribed member holding the fewest so far.
    for topic in topics {
        for p in 0..partitions_of(topic).max(0) {
            let pick = members
                .iter()
                .filter(|(_, t)| t.contains(topic))
                .map(|(m, _)| m)
                .min_by_key(|m| (out.get(*m).map_or(0, BTreeSet::len), (*m).clone()));
            if let Some(m) = pick {
                out.entry(m.clone()).or_default().insert((topic.clone(), p));
            }
        }
    }
    out
}

impl ConsumerGroup {
    /// Recomputes every member's target for a new group epoch.
    pub(crate) fn retarget(&mut self, partitions_of: impl Fn(&KStr) -> i32) {
        self.epoch += 1;
        let assignor = self
            .members
            .values()
            .find_map(|m| m.assignor.clone())
            .unwrap_or_else(|| KStr::from_static("uniform"));
        let subscriptions: BTreeMap<KStr, Vec<KStr>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.subscribed.clone()))
            .collect();
        let targets = assign(assignor.as_str(), &subscriptions, partitions_of);
        for (id, m) in self.members.iter_mut() {
            m.target = targets.get(id).cloned().unwrap_or_default();
        }
        self.assignment_epoch = self.epoch;
    }

    /// The member reports what it owns now (a heartbeat's `topic_partitions`): revocations it has
    /// finished release those partitions for others.
    pub(crate) fn owned_reported(&mut self, member: &KStr, owned: &Partitions) {
        if let Some(m) = self.members.get_mut(member) {
            m.revoking.retain(|p| owned.contains(p));
            if m.revoking.is_empty() {
                m.revoking_since = None;
            }
        }
    }

    /// One reconciliation step for `member`: returns its new assignment if it changed.
    pub(crate) fn reconcile(&mut self, member: &KStr, now: Millis) -> Option<Partitions> {
        let taken: Partitions = self
            .members
            .iter()
            .filter(|(id, _)| *id != member)
            .flat_map(|(_, m)| m.assigned.iter().chain(&m.revoking).cloned())
            .collect();
        let group_epoch = self.epoch;
        let m = self.members.get_mut(member)?;
        let keep: Partitions = m.assigned.intersection(&m.target).cloned().collect();
        let new = if keep.len() < m.assigned.len() {
            // Revoke first; nothing is added until the member has let go.
            m.revoking.extend(m.assigned.difference(&keep).cloned());
            m.revoking_since.get_or_insert(now);
            keep
        } else if !m.revoking.is_empty() {
            keep
        } else {
            let addable = m.target.iter().filter(|p| !taken.contains(*p)).cloned();
            keep.into_iter().chain(addable).collect()
        };
        let changed = new != m.assigned;
        m.assigned = new;
        // Once it owns nothing outside its target (and has let go of what it gave up), the member
        // is at the group epoch, even while partitions others still hold are on their way to it.
        if m.revoking.is_empty() && m.assigned.is_subset(&m.target) && m.epoch != group_epoch {
            m.previous_epoch = m.epoch;
            m.epoch = group_epoch;
        }
        changed.then(|| m.assigned.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<KStr, Vec<KStr>> {
        members
            .iter()
            .map(|(m, t)| (KStr::from(*m), t.iter().map(|x| KStr::from(*x)).collect()))
            .collect()
    }

    #[test]
    fn assignors_cover_every_partition_once() {
        let s = subs(&[("a", &["t", "u"]), ("b", &["t"]), ("c", &["t", "u"])]);
        for assignor in ["uniform", "range"] {
            let out = assign(assignor, &s, |t| if t.as_str() == "t" { 7 } else { 2 });
            let all: Vec<&(KStr, i32)> = out.values().flatten().collect();
            assert_eq!(all.len(), 9, "{assignor}");
            let set: BTreeSet<_> = all.iter().collect();
            assert_eq!(set.len(), 9, "{assignor}: no partition twice");
            assert!(
                !out[&KStr::from("b")].iter().any(|(t, _)| t.as_str() == "u"),
                "{assignor}: only subscribed topics"
            );
        }
        let uniform = assign("uniform", &subs(&[("a", &["t"]), ("b", &["t"])]), |_| 4);
        assert_eq!(
            (
                uniform[&KStr::from("a")].len(),
                uniform[&KStr::from("b")].len()
            ),
            (2, 2)
        );
    }

    #[test]
    fn partitions_move_only_after_revocation() {
        let mut g = ConsumerGroup::default();
        g.members.insert(
            "a".into(),
            ConsumerMember {
                subscribed: vec!["t".into()],
                ..Default::default()
            },
        );
        g.retarget(|_| 4);
        assert_eq!(g.reconcile(&"a".into(), Millis(0)).unwrap().len(), 4);
        assert_eq!(g.members[&KStr::from("a")].epoch, 1);
        g.members.insert(
            "b".into(),
            ConsumerMember {
                subscribed: vec!["t".into()],
                ..Default::default()
            },
        );
        g.retarget(|_| 4);
        // b gets nothing while a still owns everything, but is at the new epoch already.
        assert_eq!(g.reconcile(&"b".into(), Millis(0)), None);
        assert_eq!(g.members[&KStr::from("b")].epoch, 2);
        // a is told to revoke two; they are not free until a reports them gone.
        assert_eq!(g.reconcile(&"a".into(), Millis(0)).unwrap().len(), 2);
        assert_eq!(g.members[&KStr::from("a")].epoch, 1);
        assert_eq!(g.reconcile(&"b".into(), Millis(0)), None);
        let kept = g.members[&KStr::from("a")].assigned.clone();
        g.owned_reported(&"a".into(), &kept);
        assert_eq!(g.reconcile(&"a".into(), Millis(0)), None);
        assert_eq!(g.members[&KStr::from("a")].epoch, 2);
        // now b gets the freed two.
        assert_eq!(g.reconcile(&"b".into(), Millis(0)).unwrap().len(), 2);
        assert_eq!(g.members[&KStr::from("b")].epoch, 2);
        let a = &g.members[&KStr::from("a")].assigned;
        let b = &g.members[&KStr::from("b")].assigned;
        assert!(a.is_disjoint(b));
    }
}
