//! Cluster and topic administration: ApiVersions, Metadata, DescribeCluster, DescribeConfigs,
//! InitProducerId, CreateTopics, DeleteTopics and CreatePartitions.
//!
//! Kelp is a one-node cluster: node `node_id` leads every partition with leader epoch 0, and the
//! replica and in-sync sets are that node alone.

use super::offsets::LEADER_EPOCH;
use super::partition::{PartitionState, Topic, Waiter};
use super::{Gateway, Pending, PendingState, RequestKey, Slot, TokenUse};
use crate::ErrorCode;
use crate::api::create_partitions::response::CreatePartitionsTopicResult;
use crate::api::create_partitions::{CreatePartitionsRequest, CreatePartitionsResponse};
use crate::api::create_topics::response::CreatableTopicResult;
use crate::api::create_topics::{CreateTopicsRequest, CreateTopicsResponse};
use crate::api::delete_topics::response::DeletableTopicResult;
use crate::api::delete_topics::{DeleteTopicsRequest, DeleteTopicsResponse};
use crate::api::describe_cluster::response::DescribeClusterBroker;
use crate::api::describe_cluster::{DescribeClusterRequest, DescribeClusterResponse};
use crate::api::init_producer_id::{InitProducerIdRequest, InitProducerIdResponse};
use crate::api::metadata::response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use crate::api::metadata::{MetadataRequest, MetadataResponse};
use crate::api::{ApiKey, ResponseBody, api_versions};
use crate::codec::{KStr, Uuid};
use crate::storage::{StorageCommand, StorageCompletion};
use crate::types::TopicPartition;

/// The APIs the gateway answers today; ApiVersions advertises exactly these.
pub(crate) const SERVED: [ApiKey; 28] = [
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::DeleteRecords,
    ApiKey::InitProducerId,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::CreatePartitions,
    ApiKey::DescribeCluster,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
    ApiKey::ConsumerGroupHeartbeat,
    ApiKey::ConsumerGroupDescribe,
];

/// The ApiVersions answer: every served API with its advertised versions.
pub(crate) fn api_versions_response(error: ErrorCode) -> api_versions::ApiVersionsResponse {
    api_versions::ApiVersionsResponse {
        error_code: error.0,
        api_keys: SERVED
            .iter()
            .map(|api| api_versions::response::ApiVersion {
                api_key: api.code(),
                min_version: api.advertised().min,
                max_version: api.advertised().max,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Kafka's topic name rule: 1 to 249 of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub(crate) fn valid_topic_name(name: &KStr) -> bool {
    let s = name.as_str();
    !s.is_empty()
        && s.len() <= 249
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// An admin request waiting for its storage commands.
pub(crate) struct AdminState {
    response: ResponseBody,
    outstanding: usize,
}

impl Gateway {
    pub(super) fn topic_name_by_id(&self, id: Uuid) -> Option<KStr> {
        self.topics
            .iter()
            .find(|(_, t)| t.id == id)
            .map(|(n, _)| n.clone())
    }

    pub(super) fn partition(&self, tp: &TopicPartition) -> Option<&PartitionState> {
        let i = usize::try_from(tp.partition).ok()?;
        self.topics.get(&tp.topic)?.partitions.get(i)
    }

    pub(super) fn partition_mut(&mut self, tp: &TopicPartition) -> Option<&mut PartitionState> {
        let i = usize::try_from(tp.partition).ok()?;
        self.topics.get_mut(&tp.topic)?.partitions.get_mut(i)
    }

    pub(super) fn partition_exists(&self, topic: &KStr, partition: i32) -> bool {
        self.partition(&TopicPartition {
            topic: topic.clone(),
            partition,
        })
        .is_some()
    }

    /// Creates a topic in memory and asks the storage for its logs; the storage keeps per-partition
    /// order, so appends emitted later land after the log exists.
    pub(super) fn create_topic_now(&mut self, name: &KStr, partitions: i32) -> Vec<TopicPartition> {
        // A copy: `name` is usually a slice of the request that named the topic (a produce
        // request that auto-creates it can be megabytes), which the topic would keep for good.
        let name = &KStr::from(name.as_str());
        self.topics
            .insert(name.clone(), Topic::new(name, partitions.max(0) as usize));
        (0..partitions)
            .map(|partition| TopicPartition {
                topic: name.clone(),
                partition,
            })
            .collect()
    }

    /// Creates a topic nobody waits for (auto-creation, Kelp's own offsets topic).
    pub(super) fn auto_create_topic(&mut self, name: &KStr, partitions: i32) {
        for tp in self.create_topic_now(name, partitions) {
            self.storage_for(None, |token| StorageCommand::CreatePartition {
                token,
                partition: tp,
                topic_partitions: partitions,
            });
        }
    }

    fn storage_for(
        &mut self,
        waiter: Option<(RequestKey, Slot)>,
        command: impl FnOnce(crate::storage::StorageToken) -> StorageCommand,
    ) {
        let token = self.token(match waiter {
            Some((key, slot)) => TokenUse::Request(key, slot),
            None => TokenUse::Detached,
        });
        self.storage(command(token));
    }

    pub(super) fn metadata(&mut self, request: MetadataRequest, version: i16) -> MetadataResponse {
        let names: Vec<KStr> = match request.topics {
            // Kelp's own offsets topic is not listed, as Kafka's clients hide `__consumer_offsets`.
            None => self
                .topics
                .keys()
                .filter(|t| t.as_str() != super::OFFSETS_TOPIC)
                .cloned()
                .collect(),
            Some(topics) => topics
                .into_iter()
                .filter_map(|t| t.name.or_else(|| self.topic_name_by_id(t.topic_id)))
                .collect(),
        };
        let auto_create =
            self.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
        let mut response = MetadataResponse {
            brokers: vec![self.broker()],
            cluster_id: Some(KStr::from(self.config.cluster_id.as_str())),
            controller_id: self.config.node_id,
            ..Default::default()
        };
        for name in names {
            if !valid_topic_name(&name) {
                response.topics.push(MetadataResponseTopic {
                    error_code: ErrorCode::INVALID_TOPIC_EXCEPTION.0,
                    name: Some(name),
                    ..Default::default()
                });
                continue;
            }
            if !self.topics.contains_key(&name) && auto_create {
                self.auto_create_topic(&name, self.config.default_partitions.max(1));
            }
            let topic = match self.topics.get(&name) {
                Some(t) => self.describe_topic(&name, t),
                None => MetadataResponseTopic {
                    error_code: ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
                    name: Some(name),
                    ..Default::default()
                },
            };
            response.topics.push(topic);
        }
        response
    }

    fn broker(&self) -> MetadataResponseBroker {
        MetadataResponseBroker {
            node_id: self.config.node_id,
            host: KStr::from(self.config.advertised_host.as_str()),
            port: self.config.advertised_port,
            rack: None,
            ..Default::default()
        }
    }

    fn describe_topic(&self, name: &KStr, topic: &Topic) -> MetadataResponseTopic {
        let node = self.config.node_id;
        MetadataResponseTopic {
            name: Some(name.clone()),
            topic_id: topic.id,
            partitions: (0..topic.partitions.len() as i32)
                .map(|partition_index| MetadataResponsePartition {
                    partition_index,
                    leader_id: node,
                    leader_epoch: LEADER_EPOCH,
                    replica_nodes: vec![node],
                    isr_nodes: vec![node],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    pub(super) fn describe_cluster(
        &self,
        _request: DescribeClusterRequest,
    ) -> DescribeClusterResponse {
        DescribeClusterResponse {
            cluster_id: KStr::from(self.config.cluster_id.as_str()),
            controller_id: self.config.node_id,
            brokers: vec![DescribeClusterBroker {
                broker_id: self.config.node_id,
                host: KStr::from(self.config.advertised_host.as_str()),
                port: self.config.advertised_port,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// Hands out producer ids and epochs for idempotent producers (see [`crate::producer`]).
    pub(super) fn init_producer_id(
        &mut self,
        request: InitProducerIdRequest,
    ) -> InitProducerIdResponse {
        if request.transactional_id.is_some() {
            // Transactions are not supported: tell the client plainly instead of pretending.
            return InitProducerIdResponse {
                error_code: ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.0,
                ..Default::default()
            };
        }
        // A producer re-initialising (KIP-360) keeps its id with the next epoch, which fences its
        // older self; a new producer gets a new id.
        if request.producer_id >= 0
            && request.producer_epoch >= 0
            && request.producer_epoch < i16::MAX - 1
        {
            return InitProducerIdResponse {
                producer_id: request.producer_id,
                producer_epoch: request.producer_epoch + 1,
                ..Default::default()
            };
        }
        self.next_producer_id += 1;
        InitProducerIdResponse {
            producer_id: self.next_producer_id,
            producer_epoch: 0,
            ..Default::default()
        }
    }

    pub(super) fn create_topics(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        request: CreateTopicsRequest,
    ) -> Option<ResponseBody> {
        let mut response = CreateTopicsResponse::default();
        let mut creates = Vec::new();
        let mut created = Vec::new();
        for (ti, topic) in request.topics.into_iter().enumerate() {
            let partitions = if topic.num_partitions == -1 {
                self.config.default_partitions.max(1)
            } else {
                topic.num_partitions
            };
            let mut r = CreatableTopicResult {
                name: topic.name.clone(),
                num_partitions: partitions,
                replication_factor: 1,
                configs: Some(Vec::new()),
                ..Default::default()
            };
            let error = if !valid_topic_name(&topic.name) {
                Some(ErrorCode::INVALID_TOPIC_EXCEPTION)
            } else if self.topics.contains_key(&topic.name) {
                Some(ErrorCode::TOPIC_ALREADY_EXISTS)
            } else if partitions < 1 || !topic.assignments.is_empty() {
                Some(ErrorCode::INVALID_PARTITIONS)
            } else if !matches!(topic.replication_factor, -1 | 1) {
                Some(ErrorCode::INVALID_REPLICATION_FACTOR)
            } else {
                None
            };
            let mut config = super::configs::TopicConfig::default();
            let config_error = topic.configs.iter().find_map(|c| {
                config
                    .set(c.name.as_str(), c.value.as_ref().map(KStr::as_str))
                    .err()
            });
            let error = error.or(config_error.as_ref().map(|_| ErrorCode::INVALID_CONFIG));
            match error {
                Some(code) => {
                    r.error_code = code.0;
                    r.error_message = Some(KStr::from(
                        config_error.clone().unwrap_or_else(|| format!("{code:?}")),
                    ));
                    r.num_partitions = -1;
                    r.replication_factor = -1;
                    r.configs = None;
                }
                None => {
                    r.topic_id = crate::broker::topic_id_for(topic.name.as_str());
                    if !request.validate_only {
                        let tps = self.create_topic_now(&topic.name, partitions);
                        creates.extend(tps.into_iter().map(|tp| (ti, tp)));
                        if let Some(t) = self.topics.get_mut(&topic.name) {
                            t.config = config;
                        }
                        created.push(topic.name.clone());
                    }
                }
            }
            response.topics.push(r);
        }
        let answer = self.admin_wait(
            key,
            correlation_id,
            version,
            frame_len,
            ResponseBody::CreateTopics(response),
            creates,
            create_partition,
        );
        // After the creates: the storage keeps per-partition order, so partition 0 exists by then.
        for name in created {
            if self
                .topics
                .get(&name)
                .is_some_and(|t| !t.config.entries().is_empty())
            {
                self.store_topic_config(&name);
            }
        }
        answer
    }

    pub(super) fn delete_topics(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        request: DeleteTopicsRequest,
    ) -> Option<ResponseBody> {
        let wanted: Vec<(Option<KStr>, Uuid)> = if version >= 6 {
            request
                .topics
                .into_iter()
                .map(|t| (t.name, t.topic_id))
                .collect()
        } else {
            request
                .topic_names
                .into_iter()
                .map(|n| (Some(n), Uuid::ZERO))
                .collect()
        };
        let mut response = DeleteTopicsResponse::default();
        let mut deletes = Vec::new();
        for (ti, (name, id)) in wanted.into_iter().enumerate() {
            let resolved = name.clone().or_else(|| self.topic_name_by_id(id));
            let mut r = DeletableTopicResult {
                name: resolved.clone().or(name),
                topic_id: id,
                ..Default::default()
            };
            match resolved.and_then(|n| self.topics.remove(&n).map(|t| (n, t))) {
                None => {
                    r.error_code = if id != Uuid::ZERO {
                        ErrorCode::UNKNOWN_TOPIC_ID.0
                    } else {
                        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0
                    }
                }
                Some((name, topic)) => {
                    r.topic_id = topic.id;
                    for (i, p) in topic.partitions.into_iter().enumerate() {
                        self.abandon_partition(p);
                        deletes.push((
                            ti,
                            TopicPartition {
                                topic: name.clone(),
                                partition: i as i32,
                            },
                        ));
                    }
                }
            }
            response.responses.push(r);
        }
        self.admin_wait(
            key,
            correlation_id,
            version,
            frame_len,
            ResponseBody::DeleteTopics(response),
            deletes,
            |token, tp, _| StorageCommand::DeletePartition {
                token,
                partition: tp,
            },
        )
    }

    /// A deleted partition's waiting producers get an error; its parked fetches run again and see
    /// the topic gone.
    fn abandon_partition(&mut self, p: PartitionState) {
        for q in p.queued.into_iter().chain(p.in_flight) {
            match q.waiter {
                Some(Waiter::Produce(key, slot)) => {
                    self.produce_part_done(key, slot, Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION))
                }
                Some(Waiter::GroupWrite(key)) => self.group_write_done(key, false),
                None => {}
            }
        }
        for key in p.watchers {
            self.rerun_fetch(key);
        }
    }

    pub(super) fn create_partitions(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        request: CreatePartitionsRequest,
    ) -> Option<ResponseBody> {
        let mut response = CreatePartitionsResponse::default();
        let mut creates = Vec::new();
        for (ti, topic) in request.topics.into_iter().enumerate() {
            let mut r = CreatePartitionsTopicResult {
                name: topic.name.clone(),
                ..Default::default()
            };
            match self.topics.get_mut(&topic.name) {
                None => r.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
                Some(_) if self.config.partitions_fixed => {
                    r.error_code = ErrorCode::INVALID_PARTITIONS.0;
                    r.error_message = Some(KStr::from_static(
                        "this gateway's storage cannot add partitions to a topic",
                    ));
                }
                Some(t) if topic.count as i64 <= t.partitions.len() as i64 => {
                    r.error_code = ErrorCode::INVALID_PARTITIONS.0;
                    r.error_message = Some(KStr::from(format!(
                        "topic has {} partitions; asked for {}",
                        t.partitions.len(),
                        topic.count
                    )));
                }
                Some(t) => {
                    if !request.validate_only {
                        let old = t.partitions.len();
                        t.partitions
                            .resize_with(topic.count as usize, PartitionState::default);
                        creates.extend((old..topic.count as usize).map(|i| {
                            (
                                ti,
                                TopicPartition {
                                    topic: topic.name.clone(),
                                    partition: i as i32,
                                },
                            )
                        }));
                    }
                }
            }
            response.results.push(r);
        }
        self.admin_wait(
            key,
            correlation_id,
            version,
            frame_len,
            ResponseBody::CreatePartitions(response),
            creates,
            create_partition,
        )
    }

    /// Issues one storage command per partition and answers when all are done (or at once).
    #[allow(clippy::too_many_arguments)]
    fn admin_wait(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        response: ResponseBody,
        work: Vec<(usize, TopicPartition)>,
        command: impl Fn(crate::storage::StorageToken, TopicPartition, i32) -> StorageCommand,
    ) -> Option<ResponseBody> {
        if work.is_empty() {
            return Some(response);
        }
        let state = AdminState {
            response,
            outstanding: work.len(),
        };
        self.pending.insert(
            key,
            Pending {
                correlation_id,
                version,
                frame_len,
                state: PendingState::Admin(state),
            },
        );
        for (ti, tp) in work {
            // the topic's partition count (after any creation), which SMQ's create needs
            let count = self.topics.get(&tp.topic).map_or(0, |t| t.partitions.len());
            self.storage_for(Some((key, (ti, 0))), |token| {
                command(token, tp, count as i32)
            });
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn admin_done(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        mut state: AdminState,
        slot: Slot,
        done: StorageCompletion,
    ) {
        if let StorageCompletion::Failed(e) = done {
            let message = Some(KStr::from(e.to_string()));
            let code = ErrorCode::KAFKA_STORAGE_ERROR.0;
            match &mut state.response {
                ResponseBody::CreateTopics(r) => {
                    if let Some(t) = r.topics.get_mut(slot.0) {
                        t.error_code = code;
                        t.error_message = message;
                    }
                }
                ResponseBody::DeleteTopics(r) => {
                    if let Some(t) = r.responses.get_mut(slot.0) {
                        t.error_code = code;
                        t.error_message = message;
                    }
                }
                ResponseBody::CreatePartitions(r) => {
                    if let Some(t) = r.results.get_mut(slot.0) {
                        t.error_code = code;
                        t.error_message = message;
                    }
                }
                _ => {}
            }
        }
        state.outstanding -= 1;
        if state.outstanding == 0 {
            self.respond(key, correlation_id, version, frame_len, state.response);
        } else {
            self.pending.insert(
                key,
                Pending {
                    correlation_id,
                    version,
                    frame_len,
                    state: PendingState::Admin(state),
                },
            );
        }
    }
}

/// The storage command creating partition `partition` of a topic of `topic_partitions`.
fn create_partition(
    token: crate::storage::StorageToken,
    partition: TopicPartition,
    topic_partitions: i32,
) -> StorageCommand {
    StorageCommand::CreatePartition {
        token,
        partition,
        topic_partitions,
    }
}
