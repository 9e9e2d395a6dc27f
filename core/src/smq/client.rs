//! What the backend knows of the SMQ brokers: which broker leads each partition, whether the
//! bootstrap broker is ready, and the typed calls made through [`Io`].
//!
//! Control-plane calls go to the bootstrap broker (which forwards them to the balancer);
//! `PublishMessage`, `SubscribeMessage`, `FetchMessage` and `GetPartitionRangeInfo` go to the
//! partition's leader from `LookupTopicBrokers`, cached per topic and forgotten after an error so
//! that the next call looks it up again (the leader may have moved).

use super::io::{Call, Io, Reply};
use super::mapping::{SMQ_OFFSET_BASE, partition_index, partition_range};
use super::messaging_pb::{
    BrokerPartitionAssignment, ConfigureTopicRequest, FetchMessageRequest, FetchMessageResponse,
    GetPartitionRangeInfoRequest, LookupTopicBrokersRequest,
};
use super::schema_pb;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why an SMQ call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmqError {
    /// The broker is not reachable or not ready.
    #[error("cannot reach SMQ broker: {0}")]
    Connect(String),
    /// The call failed.
    #[error("SMQ {call} failed: {message}")]
    Call {
        /// The gRPC method.
        call: &'static str,
        /// Why, in the runtime's or the broker's words.
        message: String,
    },
    /// The topic or partition is not where Kelp expects it.
    #[error("SMQ topic {topic}: {message}")]
    Topic {
        /// `namespace/name`.
        topic: String,
        /// What is wrong.
        message: String,
    },
}

/// One partition of an SMQ topic: its ring range (with generation) and leader.
#[derive(Clone, Debug)]
pub(crate) struct Assignment {
    /// The SMQ partition (range and generation), as requests name it.
    pub(crate) partition: schema_pb::Partition,
    /// The leader broker's gRPC address.
    pub(crate) leader: String,
}

/// The brokers and what Kelp knows of their topics.
pub(crate) struct Smq {
    pub(crate) io: Io,
    /// Per topic (`namespace/name`): assignments indexed by Kafka partition.
    topics: Mutex<HashMap<String, Arc<Vec<Assignment>>>>,
    /// The broker answered the readiness probe and nothing failed since.
    ready: AtomicBool,
}

pub(crate) fn key(topic: &schema_pb::Topic) -> String {
    format!("{}/{}", topic.namespace, topic.name)
}

fn unexpected(call: &'static str, reply: Reply) -> SmqError {
    let message = match reply {
        Reply::Failed(m) => m,
        other => format!("unexpected reply {other:?}"),
    };
    SmqError::Call { call, message }
}

impl Smq {
    pub(crate) fn new(io: Io) -> Smq {
        Smq {
            io,
            topics: Mutex::new(HashMap::new()),
            ready: AtomicBool::new(false),
        }
    }

    /// One readiness check: the broker names a leader and serves a harmless control-plane call.
    async fn probe(&self) -> Result<String, SmqError> {
        match self.io.call(Call::Probe).await {
            Reply::Leader(leader) if !leader.is_empty() => {
                self.ready.store(true, Ordering::Relaxed);
                Ok(leader)
            }
            Reply::Leader(_) => Err(SmqError::Call {
                call: "FindBrokerLeader",
                message: "no leader yet".into(),
            }),
            other => Err(unexpected("FindBrokerLeader", other)),
        }
    }

    /// Waits until the broker names a leader and serves control-plane calls.
    pub(crate) async fn wait_ready(&self, limit: Duration) -> Result<(), SmqError> {
        let deadline = self.io.now().mono.plus(limit.as_millis() as u64);
        loop {
            let last = match self.probe().await {
                Ok(leader) => {
                    tracing::info!(%leader, "SMQ broker ready");
                    return Ok(());
                }
                Err(e) => e.to_string(),
            };
            if self.io.now().mono >= deadline {
                return Err(SmqError::Connect(format!(
                    "not ready after {limit:?}: {last}"
                )));
            }
            tracing::info!(state = %last, "waiting for the SMQ broker");
            self.io.sleep(Duration::from_millis(500)).await;
        }
    }

    /// Fails fast unless the broker is known ready, checking again after an error. weed 4.x
    /// crashes (a nil lock client) when `LookupTopicBrokers` and other calls reach a broker that
    /// has not yet found its balancer, which is the case for a while after it restarts: no call but
    /// the readiness probe goes out until the probe passes.
    async fn ensure_ready(&self) -> Result<(), SmqError> {
        if self.ready.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.probe()
            .await
            .map(|_| ())
            .map_err(|e| SmqError::Connect(format!("broker not ready: {e}")))
    }

    /// Creates `topic` with `count` partitions (or finds it with that many), and caches where its
    /// partitions are.
    pub(crate) async fn configure(
        &self,
        topic: &schema_pb::Topic,
        count: i32,
    ) -> Result<Arc<Vec<Assignment>>, SmqError> {
        if count <= 0 {
            // the broker process can crash on a partition count of 0
            return Err(SmqError::Topic {
                topic: key(topic),
                message: format!("partition count {count}"),
            });
        }
        self.ensure_ready().await?;
        let request = ConfigureTopicRequest {
            topic: Some(topic.clone()),
            partition_count: count,
            ..Default::default()
        };
        match self.io.call(Call::ConfigureTopic(request)).await {
            Reply::Assignments(found) => self.remember(topic, &found, Some(count)),
            other => Err(unexpected("ConfigureTopic", other)),
        }
    }

    /// Where `topic`'s partitions are (looked up once, then cached).
    async fn assignments(
        &self,
        topic: &schema_pb::Topic,
    ) -> Result<Arc<Vec<Assignment>>, SmqError> {
        if let Some(a) = self.cached(topic) {
            return Ok(a);
        }
        self.ensure_ready().await?;
        let request = LookupTopicBrokersRequest {
            topic: Some(topic.clone()),
        };
        match self.io.call(Call::LookupTopicBrokers(request)).await {
            Reply::Assignments(found) => self.remember(topic, &found, None),
            other => Err(unexpected("LookupTopicBrokers", other)),
        }
    }

    fn cached(&self, topic: &schema_pb::Topic) -> Option<Arc<Vec<Assignment>>> {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.get(&key(topic)).cloned()
    }

    /// Forgets `topic`'s assignments and whether the broker is ready (after an error: the leader
    /// may have moved, the broker may be restarting).
    pub(crate) fn forget(&self, topic: &schema_pb::Topic) {
        self.ready.store(false, Ordering::Relaxed);
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.remove(&key(topic));
    }

    fn remember(
        &self,
        topic: &schema_pb::Topic,
        found: &[BrokerPartitionAssignment],
        want: Option<i32>,
    ) -> Result<Arc<Vec<Assignment>>, SmqError> {
        let list = Arc::new(by_kafka_partition(topic, found, want)?);
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.insert(key(topic), list.clone());
        Ok(list)
    }

    /// Partition `index` of `topic`.
    pub(crate) async fn partition(
        &self,
        topic: &schema_pb::Topic,
        index: i32,
    ) -> Result<Assignment, SmqError> {
        self.ensure_ready().await?;
        let all = self.assignments(topic).await?;
        all.get(index.max(0) as usize)
            .cloned()
            .filter(|_| index >= 0)
            .ok_or_else(|| SmqError::Topic {
                topic: key(topic),
                message: format!("no partition {index} (it has {})", all.len()),
            })
    }

    /// Reads from Kafka offset `start` (a stateless read; the broker does not wait for data).
    pub(crate) async fn fetch(
        &self,
        topic: &schema_pb::Topic,
        index: i32,
        start: i64,
        max_bytes: usize,
        max_messages: usize,
    ) -> Result<FetchMessageResponse, SmqError> {
        let a = self.partition(topic, index).await?;
        let request = FetchMessageRequest {
            topic: Some(topic.clone()),
            partition: Some(a.partition),
            start_offset: start.saturating_add(SMQ_OFFSET_BASE),
            max_bytes: max_bytes.min(i32::MAX as usize) as i32,
            max_messages: max_messages.min(i32::MAX as usize) as i32,
            max_wait_ms: 0,
            min_bytes: 0,
            consumer_group: String::new(),
            consumer_id: "kelp".into(),
        };
        let call = Call::FetchMessage {
            broker: a.leader,
            request,
        };
        let response = match self.io.call(call).await {
            Reply::Fetched(r) => r,
            other => {
                self.forget(topic);
                return Err(unexpected("FetchMessage", other));
            }
        };
        if !response.error.is_empty() {
            return Err(SmqError::Call {
                call: "FetchMessage",
                message: format!("{} (code {})", response.error, response.error_code),
            });
        }
        Ok(response)
    }

    /// The Kafka offset the partition's next record gets; `None` while the partition has not been
    /// started with its marker record (see [`SMQ_OFFSET_BASE`]).
    pub(crate) async fn end_offset(
        &self,
        topic: &schema_pb::Topic,
        index: i32,
    ) -> Result<Option<i64>, SmqError> {
        let a = self.partition(topic, index).await?;
        let request = GetPartitionRangeInfoRequest {
            topic: Some(topic.clone()),
            partition: Some(a.partition),
        };
        let call = Call::GetPartitionRangeInfo {
            broker: a.leader,
            request,
        };
        let response = match self.io.call(call).await {
            Reply::RangeInfo(r) => r,
            other => {
                self.forget(topic);
                return Err(unexpected("GetPartitionRangeInfo", other));
            }
        };
        if !response.error.is_empty() {
            return Err(SmqError::Call {
                call: "GetPartitionRangeInfo",
                message: response.error,
            });
        }
        let hwm = response
            .offset_range
            .map_or(0, |r| r.high_water_mark.max(0));
        Ok((hwm >= SMQ_OFFSET_BASE).then_some(hwm - SMQ_OFFSET_BASE))
    }
}

/// `found` indexed by Kafka partition: each range must be one Kelp would have made for a topic of
/// `found.len()` partitions (and that count `want`, when given).
fn by_kafka_partition(
    topic: &schema_pb::Topic,
    found: &[BrokerPartitionAssignment],
    want: Option<i32>,
) -> Result<Vec<Assignment>, SmqError> {
    let count = found.len() as i32;
    let bad = |message: String| SmqError::Topic {
        topic: key(topic),
        message,
    };
    if count == 0 {
        return Err(bad("no partitions".into()));
    }
    if let Some(want) = want
        && want != count
    {
        return Err(bad(format!(
            "has {count} partitions, not {want} (SMQ re-ranges a topic's partitions when \
             their count changes, so Kelp neither adds partitions nor reuses such a topic)"
        )));
    }
    let mut slots: Vec<Option<Assignment>> = vec![None; found.len()];
    for a in found {
        let p = a.partition.unwrap_or_default();
        let i = partition_index(p.range_start, count)
            .filter(|i| partition_range(*i, count).is_some_and(|(_, stop)| stop == p.range_stop))
            .ok_or_else(|| {
                bad(format!(
                    "unexpected range {}..{}",
                    p.range_start, p.range_stop
                ))
            })?;
        slots[i as usize] = Some(Assignment {
            partition: p,
            leader: a.leader_broker.clone(),
        });
    }
    slots
        .into_iter()
        .collect::<Option<_>>()
        .ok_or_else(|| bad("two assignments for one range".into()))
}
