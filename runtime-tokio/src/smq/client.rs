//! gRPC access to the SeaweedMQ brokers: channels per broker, topic assignments, reads.
//!
//! Control-plane calls go to the configured broker (which forwards them to the balancer);
//! `PublishMessage`, `FetchMessage` and `GetPartitionRangeInfo` go to the partition's leader from
//! `LookupTopicBrokers`, cached per topic and forgotten after an error so that the next call looks
//! it up again (the leader may have moved).

use crate::runtime::Rt;
use kelp_core::smq::mapping::{SMQ_OFFSET_BASE, partition_index, partition_range};
use kelp_core::smq::messaging_pb::seaweed_messaging_client::SeaweedMessagingClient;
use kelp_core::smq::messaging_pb::{
    BrokerPartitionAssignment, ConfigureTopicRequest, FetchMessageRequest, FetchMessageResponse,
    FindBrokerLeaderRequest, GetPartitionRangeInfoRequest, ListTopicsRequest,
    LookupTopicBrokersRequest,
};
use kelp_core::smq::schema_pb;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// A client of one broker.
pub type Client = SeaweedMessagingClient<Channel>;

/// Longest unary call.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an SMQ call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SmqError {
    /// No connection to the broker.
    #[error("cannot reach SMQ broker {addr}: {message}")]
    Connect { addr: String, message: String },
    /// The call failed.
    #[error("SMQ {call} failed: {message}")]
    Call { call: &'static str, message: String },
    /// The topic or partition is not where Kelp expects it.
    #[error("SMQ topic {topic}: {message}")]
    Topic { topic: String, message: String },
}

impl SmqError {
    fn call(call: &'static str, status: tonic::Status) -> SmqError {
        SmqError::Call {
            call,
            message: format!("{:?}: {}", status.code(), status.message()),
        }
    }
}

/// One partition of an SMQ topic: its ring range (with generation) and leader.
#[derive(Clone, Debug)]
pub struct Assignment {
    /// The SMQ partition (range and generation), as requests name it.
    pub partition: schema_pb::Partition,
    /// The leader broker's gRPC address.
    pub leader: String,
}

/// The brokers and what Kelp knows of their topics.
pub struct Smq {
    /// The runtime the calls and the tasks around them run on.
    pub rt: Rt,
    bootstrap: String,
    channels: Mutex<HashMap<String, Client>>,
    /// Per topic (`namespace/name`): assignments indexed by Kafka partition.
    topics: Mutex<HashMap<String, Arc<Vec<Assignment>>>>,
    /// The broker answered the readiness probe and nothing failed since.
    ready: AtomicBool,
}

fn key(topic: &schema_pb::Topic) -> String {
    format!("{}/{}", topic.namespace, topic.name)
}

impl Smq {
    /// Brokers reached through `bootstrap` (`host:port`).
    pub fn new(rt: Rt, bootstrap: String) -> Smq {
        Smq {
            rt,
            bootstrap,
            channels: Mutex::new(HashMap::new()),
            topics: Mutex::new(HashMap::new()),
            ready: AtomicBool::new(false),
        }
    }

    /// A client of the broker at `addr` (the channel is shared and reconnects by itself).
    pub fn client(&self, addr: &str) -> Result<Client, SmqError> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        // No HTTP/2 keep-alive pings: the broker disconnects clients that ping more often than
        // every 20 s. Lazy: the first call connects.
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| SmqError::Connect {
                addr: addr.to_string(),
                message: e.to_string(),
            })?
            .tcp_nodelay(true);
        let channel = self.rt.grpc_channel(endpoint, Duration::from_secs(3));
        let client = SeaweedMessagingClient::new(channel)
            .max_decoding_message_size(kelp_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(kelp_proto::MAX_MESSAGE_BYTES);
        channels.insert(addr.to_string(), client.clone());
        Ok(client)
    }

    /// A unary call's answer, unless it fails or [`RPC_TIMEOUT`] passes first.
    async fn unary<T>(
        &self,
        call: &'static str,
        request: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, SmqError> {
        match self.rt.timeout(RPC_TIMEOUT, request).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(SmqError::call(call, status)),
            Err(_) => Err(SmqError::Call {
                call,
                message: "timed out".into(),
            }),
        }
    }

    fn control(&self) -> Result<Client, SmqError> {
        self.client(&self.bootstrap)
    }

    /// One readiness check: the broker names a leader and serves a harmless control-plane call.
    async fn probe(&self) -> Result<String, SmqError> {
        let mut c = self.control()?;
        let attempt = async {
            let leader = c
                .find_broker_leader(FindBrokerLeaderRequest::default())
                .await
                .map_err(|s| SmqError::call("FindBrokerLeader", s))?
                .into_inner()
                .broker;
            if leader.is_empty() {
                return Err(SmqError::Call {
                    call: "FindBrokerLeader",
                    message: "no leader yet".into(),
                });
            }
            c.list_topics(ListTopicsRequest {})
                .await
                .map_err(|s| SmqError::call("ListTopics", s))?;
            Ok(leader)
        };
        let leader =
            self.rt
                .timeout(RPC_TIMEOUT, attempt)
                .await
                .map_err(|_| SmqError::Call {
                    call: "FindBrokerLeader",
                    message: "timed out".into(),
                })??;
        self.ready.store(true, Ordering::Relaxed);
        Ok(leader)
    }

    /// Waits until the broker names a leader and serves control-plane calls.
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), SmqError> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let last = match self.probe().await {
                Ok(leader) => {
                    tracing::info!(broker = %self.bootstrap, %leader, "SMQ broker ready");
                    return Ok(());
                }
                Err(e) => e.to_string(),
            };
            if std::time::Instant::now() >= deadline {
                return Err(SmqError::Connect {
                    addr: self.bootstrap.clone(),
                    message: format!("not ready after {limit:?}: {last}"),
                });
            }
            tracing::info!(broker = %self.bootstrap, state = %last, "waiting for the SMQ broker");
            self.rt.sleep(Duration::from_millis(500)).await;
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
            .map_err(|e| SmqError::Connect {
                addr: self.bootstrap.clone(),
                message: format!("broker not ready: {e}"),
            })
    }

    /// Creates `topic` with `count` partitions (or finds it with that many), and caches where its
    /// partitions are.
    pub async fn configure(
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
        let response = self
            .unary("ConfigureTopic", self.control()?.configure_topic(request))
            .await?;
        self.remember(topic, &response.broker_partition_assignments, Some(count))
    }

    /// Where `topic`'s partitions are (looked up once, then cached).
    pub async fn assignments(
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
        let response = self
            .unary(
                "LookupTopicBrokers",
                self.control()?.lookup_topic_brokers(request),
            )
            .await?;
        self.remember(topic, &response.broker_partition_assignments, None)
    }

    fn cached(&self, topic: &schema_pb::Topic) -> Option<Arc<Vec<Assignment>>> {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.get(&key(topic)).cloned()
    }

    /// Forgets `topic`'s assignments and whether the broker is ready (after an error: the leader
    /// may have moved, the broker may be restarting).
    pub fn forget(&self, topic: &schema_pb::Topic) {
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
                .filter(|i| {
                    partition_range(*i, count).is_some_and(|(_, stop)| stop == p.range_stop)
                })
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
        let list: Vec<Assignment> = slots
            .into_iter()
            .collect::<Option<_>>()
            .ok_or_else(|| bad("two assignments for one range".into()))?;
        let list = Arc::new(list);
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.insert(key(topic), list.clone());
        Ok(list)
    }

    /// Partition `index` of `topic`.
    pub async fn partition(
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
    pub async fn fetch(
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
        let response = self
            .unary(
                "FetchMessage",
                self.client(&a.leader)?.fetch_message(request),
            )
            .await
            .inspect_err(|_| self.forget(topic))?;
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
    pub async fn end_offset(
        &self,
        topic: &schema_pb::Topic,
        index: i32,
    ) -> Result<Option<i64>, SmqError> {
        let hwm = self.high_watermark(topic, index).await?;
        Ok((hwm >= SMQ_OFFSET_BASE).then_some(hwm - SMQ_OFFSET_BASE))
    }

    /// The partition's SMQ high watermark (the SMQ offset the next record gets).
    pub async fn high_watermark(
        &self,
        topic: &schema_pb::Topic,
        index: i32,
    ) -> Result<i64, SmqError> {
        let a = self.partition(topic, index).await?;
        let request = GetPartitionRangeInfoRequest {
            topic: Some(topic.clone()),
            partition: Some(a.partition),
        };
        let response = self
            .unary(
                "GetPartitionRangeInfo",
                self.client(&a.leader)?.get_partition_range_info(request),
            )
            .await
            .inspect_err(|_| self.forget(topic))?;
        if !response.error.is_empty() {
            return Err(SmqError::Call {
                call: "GetPartitionRangeInfo",
                message: response.error,
            });
        }
        Ok(response
            .offset_range
            .map_or(0, |r| r.high_water_mark.max(0)))
    }
}
