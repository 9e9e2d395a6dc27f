//! The gateway state machine: every decision of the broker, none of its I/O.
//!
//! A driver (the tokio or smol runtime, or your own event loop) feeds [`Input`]s with the current
//! time and drains [`Output`]s:
//!
//! ```text
//! loop {
//!     gateway.handle_input(input, now);            // bytes, connection events, storage completions, Tick
//!     while let Some(out) = gateway.poll_output() {
//!         match out {
//!             Output::Transmit(conn, frame) => write frame's parts to conn, in order,
//!             Output::Close(conn) => close conn,
//!             Output::Storage(cmd) => perform cmd, later feed Input::Storage(token, result),
//!         }
//!     }
//!     arm a timer for gateway.poll_timeout(); when it fires feed Input::Tick
//! }
//! ```
//!
//! Waiting is state, not sleeping: a Fetch long-poll is a parked request with a deadline, woken by a
//! produce to one of its partitions or by the `Tick` after its deadline.
//!
//! Durability rule: a Produce with acks >= 1 is answered only after its append completed, and with
//! acks=all (under the default flush policy) only after the driver made it durable (`sync`).

mod admin;
mod configs;
mod connection;
mod consumer_groups;
mod fetch;
mod group_offsets;
mod groups;
pub mod metrics;
mod offsets;
mod partition;
mod produce;

use crate::ErrorCode;
use crate::api::{ApiKey, RequestBody, ResponseBody};
use crate::codec::encode_buf::splices;
use crate::codec::header::{Request, RequestPrefix, Response, ResponseHeader};
use crate::codec::{CodecError, Frame, KStr, encode_frame_parts};
use crate::storage::{StorageCommand, StorageCompletion, StorageToken};
use crate::types::{ConnectionId, Millis, TimestampMs, TopicPartition};
use bytes::Bytes;
use connection::Connection;
use partition::Topic;
use std::collections::{BTreeMap, HashMap, VecDeque};

pub use configs::TopicConfig;
pub use group_offsets::OFFSETS_TOPIC;
pub use partition::topic_id_for;

/// How the gateway behaves; the runtime fills it from CLI flags, env vars and the config file.
#[derive(Clone, Debug)]
pub struct Config {
    /// This gateway's node id in Metadata.
    pub node_id: i32,
    /// Host clients should connect to (Metadata's broker address).
    pub advertised_host: String,
    /// Port clients should connect to.
    pub advertised_port: i32,
    /// Cluster id reported in Metadata and DescribeCluster.
    pub cluster_id: String,
    /// Largest request frame accepted, checked before any allocation.
    pub max_frame_bytes: usize,
    /// Most request bytes read from one connection and not yet answered; past it the connection
    /// stops being read until answers go out (the driver asks [`Gateway::wants_read`]). 16 MiB by
    /// default: enough for group commit to gather thousands of records per fsync (librdkafka's
    /// 1 KiB acks=all produce ran as fast as with 64 MiB), while a producer that outruns the disk
    /// holds at most that much of the gateway's memory (with 64 MiB the benchmark's peak RSS
    /// reached 115 MiB; with 16 MiB 53-55 MiB).
    pub max_in_flight_bytes_per_connection: usize,
    /// Create unknown topics on Metadata (when the client allows it) and Produce.
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic, and of CreateTopics asking for -1.
    pub default_partitions: i32,
    /// fsync before answering acks=all (the default) or leave flushing to the driver's interval.
    pub sync_on_acks_all: bool,
    /// Cap on a batch's decompressed size when Kelp must look inside (time lookups).
    pub max_decompressed_batch_bytes: usize,
    /// How often retention (`retention.ms`, `retention.bytes`) is checked.
    pub retention_check_interval_ms: u64,
    /// How long a new group's first rebalance waits for more members
    /// (Kafka's `group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: u64,
    /// How long committed offsets of a group without members are kept
    /// (Kafka's `offsets.retention.minutes`, 7 days).
    pub offsets_retention_ms: u64,
    /// KIP-848 heartbeat interval told to members (Kafka's default is 5 s; shorter settles faster).
    pub consumer_heartbeat_interval_ms: u64,
    /// KIP-848 member session timeout (Kafka's `group.consumer.session.timeout.ms`).
    pub consumer_session_timeout_ms: u64,
    /// A topic's partition count cannot grow (SMQ re-ranges a topic's partitions when their count
    /// changes): CreatePartitions is refused with INVALID_PARTITIONS.
    pub partitions_fixed: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 0,
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            cluster_id: "kelp-cluster".into(),
            max_frame_bytes: crate::codec::frame::DEFAULT_MAX_FRAME_SIZE,
            max_in_flight_bytes_per_connection: 16 * 1024 * 1024,
            auto_create_topics: true,
            default_partitions: 1,
            sync_on_acks_all: true,
            max_decompressed_batch_bytes: crate::codec::record_batch::DEFAULT_MAX_DECOMPRESSED,
            retention_check_interval_ms: 30_000,
            group_initial_rebalance_delay_ms: 3_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            consumer_heartbeat_interval_ms: 2_000,
            consumer_session_timeout_ms: 45_000,
            partitions_fixed: false,
        }
    }
}

/// The current time, in both senses the broker needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for deadlines.
    pub mono: Millis,
    /// Wall-clock time, for Kafka timestamps.
    pub wall: TimestampMs,
}

/// Something that happened, fed to [`Gateway::handle_input`].
#[derive(Debug)]
pub enum Input {
    /// A client connected from `peer` (its host as Kafka reports it, e.g. `/127.0.0.1`).
    Connected(ConnectionId, KStr),
    /// Bytes arrived on a connection.
    Received(ConnectionId, Bytes),
    /// A connection closed (by the peer or the driver).
    Closed(ConnectionId),
    /// A storage command finished.
    Storage(StorageToken, StorageCompletion),
    /// Time passed (a deadline from [`Gateway::poll_timeout`] may have come).
    Tick,
}

/// Something the driver must do, drained with [`Gateway::poll_output`].
#[derive(Debug, PartialEq)]
#[must_use]
pub enum Output {
    /// Write this frame's parts to the connection, in order, after everything written to it
    /// before. A fetch response comes as several parts (its record batches are not copied into
    /// it): hand them to one vectored write (`writev`).
    Transmit(ConnectionId, Frame),
    /// Close the connection (after writing what was transmitted before).
    Close(ConnectionId),
    /// Perform this storage command and report its completion.
    Storage(StorageCommand),
}

/// Misuse of the gateway by its driver (never caused by client bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// A completion for a token the gateway never issued or already completed.
    #[error("unknown storage token {0:?}")]
    UnknownToken(StorageToken),
    /// Input for a connection the gateway does not know.
    #[error("unknown connection {0}")]
    UnknownConnection(ConnectionId),
}

/// Names one request: its connection and its sequence number there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RequestKey {
    pub(crate) conn: ConnectionId,
    pub(crate) seq: u64,
}

/// What a storage token is for.
#[derive(Clone, Debug)]
enum TokenUse {
    /// An append to a partition, serving the requests queued on it.
    Append(TopicPartition),
    /// Part `slot` of a pending request.
    Request(RequestKey, Slot),
    /// Nobody waits for it (log start truncation after DeleteRecords).
    Detached,
    /// A chunk of the offsets log read at start-up: from this offset, up to that one.
    OffsetsLoad(crate::types::Offset, crate::types::Offset),
}

/// Which part of a pending request a completion belongs to: (topic index, partition index).
pub(crate) type Slot = (usize, usize);

/// A request that waits for storage or time.
struct Pending {
    correlation_id: i32,
    version: i16,
    /// Bytes of the request frame, released from the connection's in-flight budget when answered.
    frame_len: usize,
    state: PendingState,
}

enum PendingState {
    Produce(produce::ProduceState),
    Fetch(fetch::FetchState),
    ListOffsets(offsets::ListOffsetsState),
    Admin(admin::AdminState),
    GroupWrite(group_offsets::GroupWrite),
}

/// Counters for the stats endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests decoded.
    pub requests: u64,
    /// Request bytes read.
    pub bytes_in: u64,
    /// Response bytes written.
    pub bytes_out: u64,
    /// Connections closed because of bad input.
    pub protocol_errors: u64,
    /// Time from a request's arrival to its answer, per API.
    pub latency: BTreeMap<ApiKey, Latency>,
}

/// Request latencies of one API, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Requests answered.
    pub count: u64,
    /// Sum of their latencies.
    pub total_ms: u64,
    /// The largest.
    pub max_ms: u64,
}

/// A partition's figures for the stats endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionStats {
    /// The partition.
    pub partition: TopicPartition,
    /// First stored offset.
    pub log_start_offset: i64,
    /// High watermark.
    pub high_watermark: i64,
    /// Sparse index entries held in memory.
    pub ledger_entries: usize,
}

/// The broker state machine. See the module docs for how to drive it.
pub struct Gateway {
    config: Config,
    now: Now,
    conns: HashMap<ConnectionId, Connection>,
    topics: BTreeMap<KStr, Topic>,
    pending: HashMap<RequestKey, Pending>,
    tokens: HashMap<StorageToken, TokenUse>,
    outputs: VecDeque<Output>,
    next_token: u64,
    next_producer_id: i64,
    stats: Stats,
    /// Arrival time and API of every request not yet answered.
    started: HashMap<RequestKey, (Millis, ApiKey)>,
    /// When retention runs next.
    next_retention: Millis,
    /// Classic consumer groups and their committed offsets.
    groups: BTreeMap<KStr, crate::group::Group>,
    /// True while the offsets log is read back at start-up.
    offsets_loading: bool,
    /// Numbers fresh member ids.
    next_member: u64,
    /// KIP-848 consumer groups (their offsets live with `groups`).
    consumer_groups: BTreeMap<KStr, crate::consumer_group::ConsumerGroup>,
}

impl Gateway {
    /// A gateway over the partitions recovery found (see [`crate::storage::log`]).
    pub fn new(
        config: Config,
        recovered: Vec<crate::storage::RecoveredPartition>,
        now: Now,
    ) -> Gateway {
        let mut topics: BTreeMap<KStr, Topic> = BTreeMap::new();
        for r in recovered {
            let topic = topics
                .entry(r.partition.topic.clone())
                .or_insert_with(|| Topic::new(&r.partition.topic, 0));
            topic.restore_partition(r);
        }
        let retention_interval = config.retention_check_interval_ms;
        let mut gateway = Gateway {
            config,
            now,
            conns: HashMap::new(),
            topics,
            pending: HashMap::new(),
            tokens: HashMap::new(),
            outputs: VecDeque::new(),
            next_token: 0,
            // Producer ids from the wall clock, so ids handed out before a restart are not reused.
            next_producer_id: now.wall.0.max(0),
            stats: Stats::default(),
            started: HashMap::new(),
            next_retention: now.mono.plus(retention_interval),
            groups: BTreeMap::new(),
            offsets_loading: false,
            next_member: 0,
            consumer_groups: BTreeMap::new(),
        };
        // Committed offsets come back from the offsets log before groups are served.
        gateway.load_offsets();
        gateway
    }

    /// Feeds one input at time `now`.
    pub fn handle_input(&mut self, input: Input, now: Now) -> Result<(), DriverError> {
        self.now = now;
        match input {
            Input::Connected(conn, peer) => {
                self.conns
                    .insert(conn, Connection::new(self.config.max_frame_bytes, peer));
            }
            Input::Received(conn, bytes) => self.receive(conn, &bytes)?,
            Input::Closed(conn) => self.forget_connection(conn),
            Input::Storage(token, done) => self.storage_done(token, done)?,
            Input::Tick => self.tick(),
        }
        Ok(())
    }

    /// The next thing the driver must do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the driver must feed [`Input::Tick`] next, if anything waits for time.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let fetches = self.pending.values().filter_map(|p| match &p.state {
            PendingState::Fetch(f) if f.parked => Some(f.deadline),
            _ => None,
        });
        fetches
            .chain(std::iter::once(self.next_retention))
            .chain(self.groups_deadline())
            .chain(self.consumer_groups_deadline())
            .min()
    }

    /// Whether the driver should keep reading from `conn` (false while its unanswered requests
    /// exceed the in-flight budget: backpressure instead of unbounded memory).
    pub fn wants_read(&self, conn: ConnectionId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.in_flight_bytes <= self.config.max_in_flight_bytes_per_connection)
    }

    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Per-partition figures: watermarks and ledger size.
    pub fn partition_stats(&self) -> Vec<PartitionStats> {
        self.topics
            .iter()
            .flat_map(|(name, t)| {
                t.partitions
                    .iter()
                    .enumerate()
                    .map(move |(i, p)| PartitionStats {
                        partition: TopicPartition {
                            topic: name.clone(),
                            partition: i as i32,
                        },
                        log_start_offset: p.ledger.log_start_offset().0,
                        high_watermark: p.ledger.high_watermark().0,
                        ledger_entries: p.ledger.index_len(),
                    })
            })
            .collect()
    }

    /// Whether requests or appends are still in progress (parked fetches do not count: they are
    /// answered at their deadline anyway). A draining driver waits for this to become false.
    pub fn has_work_in_flight(&self) -> bool {
        self.pending
            .values()
            .any(|p| !matches!(&p.state, PendingState::Fetch(f) if f.parked))
            || self
                .topics
                .values()
                .flat_map(|t| &t.partitions)
                .any(|p| p.ledger.append_in_flight() || !p.queued.is_empty())
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    fn token(&mut self, purpose: TokenUse) -> StorageToken {
        self.next_token += 1;
        let token = StorageToken(self.next_token);
        self.tokens.insert(token, purpose);
        token
    }

    fn storage(&mut self, command: StorageCommand) {
        self.outputs.push_back(Output::Storage(command));
    }

    fn receive(&mut self, conn: ConnectionId, bytes: &[u8]) -> Result<(), DriverError> {
        let c = self
            .conns
            .get_mut(&conn)
            .ok_or(DriverError::UnknownConnection(conn))?;
        c.receive(bytes);
        self.stats.bytes_in += bytes.len() as u64;
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return Ok(());
            };
            match c.next_frame() {
                Ok(Some(frame)) => self.on_frame(conn, frame),
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.protocol_error(conn, &e);
                    return Ok(());
                }
            }
        }
    }

    /// Bad bytes from a client: Kafka closes the connection; so do we, and forget its requests.
    fn protocol_error(&mut self, conn: ConnectionId, _error: &CodecError) {
        self.stats.protocol_errors += 1;
        self.forget_connection(conn);
        self.outputs.push_back(Output::Close(conn));
    }

    fn forget_connection(&mut self, conn: ConnectionId) {
        self.conns.remove(&conn);
        self.pending.retain(|k, _| k.conn != conn);
        self.started.retain(|k, _| k.conn != conn);
    }

    fn on_frame(&mut self, conn: ConnectionId, frame: Bytes) {
        let Ok(prefix) = RequestPrefix::peek(&frame) else {
            return self.protocol_error(conn, &CodecError::Truncated);
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let seq = c.start_request();
        c.in_flight_bytes += frame.len();
        let key = RequestKey { conn, seq };
        self.stats.requests += 1;
        match Request::decode(&frame) {
            Ok(request) => self.dispatch(key, request, frame.len()),
            // Kafka answers an ApiVersions it cannot parse at v0 with UNSUPPORTED_VERSION and the
            // list of versions, so that the client can retry with one it shares.
            Err(CodecError::UnsupportedVersion { api_key, .. })
                if api_key == ApiKey::ApiVersions.code() =>
            {
                let body = admin::api_versions_response(ErrorCode::UNSUPPORTED_VERSION);
                self.respond(
                    key,
                    prefix.correlation_id,
                    0,
                    frame.len(),
                    ResponseBody::ApiVersions(body),
                );
            }
            Err(e) => self.protocol_error(conn, &e),
        }
    }

    fn dispatch(&mut self, key: RequestKey, request: Request, frame_len: usize) {
        let correlation_id = request.header.correlation_id;
        let version = request.header.api_version;
        self.started
            .insert(key, (self.now.mono, request.body.api_key()));
        let immediate = match request.body {
            RequestBody::ApiVersions(_) => Some(ResponseBody::ApiVersions(
                admin::api_versions_response(ErrorCode::NONE),
            )),
            RequestBody::Metadata(r) => Some(ResponseBody::Metadata(self.metadata(r, version))),
            RequestBody::DescribeCluster(r) => {
                Some(ResponseBody::DescribeCluster(self.describe_cluster(r)))
            }
            RequestBody::InitProducerId(r) => {
                Some(ResponseBody::InitProducerId(self.init_producer_id(r)))
            }
            RequestBody::DescribeConfigs(r) => {
                Some(ResponseBody::DescribeConfigs(self.describe_configs(r)))
            }
            RequestBody::AlterConfigs(r) => Some(ResponseBody::AlterConfigs(self.alter_configs(r))),
            RequestBody::IncrementalAlterConfigs(r) => Some(ResponseBody::IncrementalAlterConfigs(
                self.incremental_alter_configs(r),
            )),
            RequestBody::OffsetForLeaderEpoch(r) => Some(ResponseBody::OffsetForLeaderEpoch(
                self.offset_for_leader_epoch(r),
            )),
            RequestBody::Produce(r) => self.produce(key, correlation_id, version, frame_len, r),
            RequestBody::FindCoordinator(r) => Some(ResponseBody::FindCoordinator(
                self.find_coordinator(r, version),
            )),
            RequestBody::JoinGroup(r) => {
                let client_id = request.header.client_id.clone().unwrap_or_default();
                let host = self
                    .conns
                    .get(&key.conn)
                    .map(|c| c.peer.clone())
                    .unwrap_or_default();
                let parked = crate::group::Parked {
                    key,
                    correlation_id,
                    version,
                    frame_len,
                };
                self.join_group(parked, r, client_id, host);
                None
            }
            RequestBody::SyncGroup(r) => {
                self.sync_group(key, correlation_id, version, frame_len, r);
                None
            }
            RequestBody::Heartbeat(r) => Some(ResponseBody::Heartbeat(self.heartbeat(r))),
            RequestBody::LeaveGroup(r) => {
                Some(ResponseBody::LeaveGroup(self.leave_group(r, version)))
            }
            RequestBody::OffsetCommit(r) => {
                self.offset_commit(key, correlation_id, version, frame_len, r)
            }
            RequestBody::OffsetFetch(r) => {
                Some(ResponseBody::OffsetFetch(self.offset_fetch(r, version)))
            }
            RequestBody::DescribeGroups(r) => {
                Some(ResponseBody::DescribeGroups(self.describe_groups(r)))
            }
            RequestBody::ListGroups(r) => Some(ResponseBody::ListGroups(self.list_groups(r))),
            RequestBody::ConsumerGroupHeartbeat(r) => Some(ResponseBody::ConsumerGroupHeartbeat(
                self.consumer_group_heartbeat(r),
            )),
            RequestBody::ConsumerGroupDescribe(r) => Some(ResponseBody::ConsumerGroupDescribe(
                self.consumer_group_describe(r),
            )),
            RequestBody::DeleteGroups(r) => {
                self.delete_groups(key, correlation_id, version, frame_len, r)
            }
            RequestBody::OffsetDelete(r) => {
                self.offset_delete(key, correlation_id, version, frame_len, r)
            }
            RequestBody::Fetch(r) => self.fetch(key, correlation_id, version, frame_len, r),
            RequestBody::ListOffsets(r) => {
                self.list_offsets(key, correlation_id, version, frame_len, r)
            }
            RequestBody::CreateTopics(r) => {
                self.create_topics(key, correlation_id, version, frame_len, r)
            }
            RequestBody::DeleteTopics(r) => {
                self.delete_topics(key, correlation_id, version, frame_len, r)
            }
            RequestBody::CreatePartitions(r) => {
                self.create_partitions(key, correlation_id, version, frame_len, r)
            }
            RequestBody::DeleteRecords(r) => {
                Some(ResponseBody::DeleteRecords(self.delete_records(r)))
            }
            // Not advertised in ApiVersions yet (their issues have not landed): a client sending one
            // anyway gets the connection closed, as Kafka does for an API it does not serve.
            other => {
                let _ = other;
                return self
                    .protocol_error(key.conn, &CodecError::UnknownApiKey(request.header.api_key));
            }
        };
        if let Some(body) = immediate {
            self.respond(key, correlation_id, version, frame_len, body);
        }
    }

    /// Encodes and queues the response of `key` (sent once every earlier response has gone).
    fn respond(
        &mut self,
        key: RequestKey,
        correlation_id: i32,
        version: i16,
        frame_len: usize,
        body: ResponseBody,
    ) {
        let response = Response {
            header: ResponseHeader {
                correlation_id,
                unknown_tagged_fields: Vec::new(),
            },
            body,
        };
        match encode_frame_parts(frame_capacity(&response.body), |b| {
            response.encode_to(b, version)
        }) {
            Ok(frame) => self.finish(key, frame_len, Some(frame)),
            // Only values Kelp built itself are encoded here; failing means a bug, not bad input.
            Err(_) => self.protocol_error(key.conn, &CodecError::TooLongToEncode(0)),
        }
    }

    /// Completes request `key` with `response` (`None`: no response, e.g. acks=0).
    fn finish(&mut self, key: RequestKey, frame_len: usize, response: Option<Frame>) {
        if let Some((start, api)) = self.started.remove(&key) {
            let ms = self.now.mono.0.saturating_sub(start.0);
            let l = self.stats.latency.entry(api).or_default();
            l.count += 1;
            l.total_ms += ms;
            l.max_ms = l.max_ms.max(ms);
        }
        let Some(c) = self.conns.get_mut(&key.conn) else {
            return;
        };
        c.in_flight_bytes = c.in_flight_bytes.saturating_sub(frame_len);
        for frame in c.finish(key.seq, response) {
            self.stats.bytes_out += frame.len() as u64;
            self.outputs.push_back(Output::Transmit(key.conn, frame));
        }
    }

    fn storage_done(
        &mut self,
        token: StorageToken,
        done: StorageCompletion,
    ) -> Result<(), DriverError> {
        match self
            .tokens
            .remove(&token)
            .ok_or(DriverError::UnknownToken(token))?
        {
            TokenUse::Append(tp) => self.append_done(tp, done),
            TokenUse::Detached => {}
            TokenUse::OffsetsLoad(offset, end) => self.offsets_loaded(offset, end, done),
            TokenUse::Request(key, slot) => {
                let Some(pending) = self.pending.remove(&key) else {
                    return Ok(());
                };
                match pending.state {
                    PendingState::Fetch(state) => self.fetch_read_done(
                        key,
                        pending.correlation_id,
                        pending.version,
                        pending.frame_len,
                        state,
                        slot,
                        done,
                    ),
                    PendingState::ListOffsets(state) => self.list_offsets_done(
                        key,
                        pending.correlation_id,
                        pending.version,
                        pending.frame_len,
                        state,
                        slot,
                        done,
                    ),
                    PendingState::Admin(state) => self.admin_done(
                        key,
                        pending.correlation_id,
                        pending.version,
                        pending.frame_len,
                        state,
                        slot,
                        done,
                    ),
                    state @ (PendingState::Produce(_) | PendingState::GroupWrite(_)) => {
                        // These complete through their partition's append token.
                        self.pending.insert(key, Pending { state, ..pending });
                    }
                }
            }
        }
        Ok(())
    }

    fn tick(&mut self) {
        let now = self.now.mono;
        if now >= self.next_retention {
            self.next_retention = now.plus(self.config.retention_check_interval_ms.max(1));
            self.enforce_retention();
            self.expire_offsets();
        }
        self.tick_groups();
        self.tick_consumer_groups();
        let due: Vec<RequestKey> = self
            .pending
            .iter()
            .filter(|(_, p)| matches!(&p.state, PendingState::Fetch(f) if f.parked && f.deadline <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.rerun_fetch(key);
        }
    }
}

/// Bytes to reserve for a response's frame, besides the record batches spliced in (see
/// [`crate::codec::EncodeBuf`]). Batches too small to splice are copied into the frame, so they
/// count; an estimate that falls short costs a doubling of the buffer, nothing else.
fn frame_capacity(body: &ResponseBody) -> usize {
    /// Frame size, header, and a response's fixed fields.
    const FIXED: usize = 64;
    /// A topic's or a partition's fields besides its name and records (ids, offsets, epochs).
    const PER_ENTRY: usize = 96;
    match body {
        ResponseBody::Fetch(f) => {
            FIXED
                + f.responses
                    .iter()
                    .map(|t| {
                        PER_ENTRY
                            + t.topic.len()
                            + t.partitions
                                .iter()
                                .map(|p| PER_ENTRY + p.records.as_ref().map_or(0, copied_len))
                                .sum::<usize>()
                    })
                    .sum::<usize>()
        }
        _ => 256,
    }
}

/// The bytes of a record batch that the encoder copies into the frame.
fn copied_len(records: &Bytes) -> usize {
    if splices(records.len()) {
        0
    } else {
        records.len()
    }
}

#[cfg(test)]
mod tests;
