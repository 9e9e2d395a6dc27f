//! The gateway driven by a simulated client, clock and in-memory storage.

use super::*;
use crate::api::fetch::FetchRequest;
use crate::api::fetch::request::{FetchPartition, FetchTopic};
use crate::api::list_offsets::ListOffsetsRequest;
use crate::api::list_offsets::request::{ListOffsetsPartition, ListOffsetsTopic};
use crate::api::produce::ProduceRequest;
use crate::api::produce::request::{PartitionProduceData, TopicProduceData};
use crate::api::{create_topics, metadata};
use crate::codec::compression::Compression;
use crate::codec::encode_frame;
use crate::codec::header::RequestHeader;
use crate::codec::record_batch::{BatchHeader, Batches, NewRecord, encode_batch};
use crate::storage::memory::MemoryStorage;
use crate::types::{LogPosition, Offset};
use bytes::BytesMut;

struct Sim {
    gw: Gateway,
    storage: MemoryStorage,
    now: Now,
    /// Storage commands not yet performed (when `hold` is set).
    held: Vec<StorageCommand>,
    hold: bool,
    received: HashMap<ConnectionId, Vec<Bytes>>,
    closed: Vec<ConnectionId>,
    next_corr: i32,
}

const C: ConnectionId = ConnectionId(1);

impl Sim {
    fn new() -> Sim {
        Sim::with_config(Config::default())
    }

    fn describe(&mut self, topic: &str) -> Vec<(String, String, i8)> {
        let body = crate::api::describe_configs::DescribeConfigsRequest {
            resources: vec![
                crate::api::describe_configs::request::DescribeConfigsResource {
                    resource_type: 2,
                    resource_name: topic.into(),
                    configuration_keys: None,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        self.send(4, RequestBody::DescribeConfigs(body));
        let ResponseBody::DescribeConfigs(r) = self.take(ApiKey::DescribeConfigs, 4).body else {
            panic!()
        };
        r.results[0]
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                    c.config_source,
                )
            })
            .collect()
    }

    fn set_config(&mut self, topic: &str, name: &str, value: &str) -> i16 {
        use crate::api::incremental_alter_configs as iac;
        let body = iac::IncrementalAlterConfigsRequest {
            resources: vec![iac::request::AlterConfigsResource {
                resource_type: 2,
                resource_name: topic.into(),
                configs: vec![iac::request::AlterableConfig {
                    name: name.into(),
                    config_operation: 0,
                    value: Some(value.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        self.send(1, RequestBody::IncrementalAlterConfigs(body));
        let ResponseBody::IncrementalAlterConfigs(r) =
            self.take(ApiKey::IncrementalAlterConfigs, 1).body
        else {
            panic!()
        };
        r.responses[0].error_code
    }

    fn with_config(config: Config) -> Sim {
        let now = Now {
            mono: Millis(1_000),
            wall: TimestampMs(1_700_000_000_000),
        };
        let mut sim = Sim {
            gw: Gateway::new(config, Vec::new(), now),
            storage: MemoryStorage::new(),
            now,
            held: Vec::new(),
            hold: false,
            received: HashMap::new(),
            closed: Vec::new(),
            next_corr: 0,
        };
        sim.input(Input::Connected(C, KStr::from_static("/127.0.0.1")));
        sim
    }

    fn input(&mut self, input: Input) {
        self.gw.handle_input(input, self.now).unwrap();
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.gw.poll_output() {
            match out {
                Output::Transmit(conn, frame) => self
                    .received
                    .entry(conn)
                    .or_default()
                    .push(frame.to_bytes()),
                Output::Close(conn) => self.closed.push(conn),
                Output::Storage(cmd) if self.hold => self.held.push(cmd),
                Output::Storage(cmd) => {
                    let done = self.storage.perform(&cmd);
                    self.gw
                        .handle_input(Input::Storage(cmd.token(), done), self.now)
                        .unwrap();
                }
            }
        }
    }

    fn release(&mut self) {
        self.hold = false;
        for cmd in std::mem::take(&mut self.held) {
            let done = self.storage.perform(&cmd);
            self.gw
                .handle_input(Input::Storage(cmd.token(), done), self.now)
                .unwrap();
            self.drain();
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now.mono = self.now.mono.plus(ms);
        self.input(Input::Tick);
    }

    fn send(&mut self, version: i16, body: RequestBody) -> i32 {
        self.next_corr += 1;
        let request = Request {
            header: RequestHeader {
                api_key: body.api_key().code(),
                api_version: version,
                correlation_id: self.next_corr,
                client_id: Some("sim".into()),
                unknown_tagged_fields: Vec::new(),
            },
            body,
        };
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, |b| request.encode(b)).unwrap();
        self.input(Input::Received(C, buf.freeze()));
        self.next_corr
    }

    /// Takes the next response frame and decodes it as `api` at `version`.
    fn take(&mut self, api: ApiKey, version: i16) -> Response {
        let frames = self.received.entry(C).or_default();
        assert!(!frames.is_empty(), "no response waiting");
        let frame = frames.remove(0);
        Response::decode(&frame.slice(4..), api, version).unwrap()
    }

    fn pending_responses(&self) -> usize {
        self.received.get(&C).map_or(0, Vec::len)
    }

    fn create_topic(&mut self, name: &str, partitions: i32) {
        let body = create_topics::CreateTopicsRequest {
            topics: vec![create_topics::request::CreatableTopic {
                name: name.into(),
                num_partitions: partitions,
                replication_factor: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        self.send(7, RequestBody::CreateTopics(body));
        let ResponseBody::CreateTopics(r) = self.take(ApiKey::CreateTopics, 7).body else {
            panic!()
        };
        assert_eq!(r.topics[0].error_code, 0, "{r:?}");
    }

    fn produce(&mut self, topic: &str, partition: i32, acks: i16, values: &[&str]) -> i32 {
        let records: Vec<NewRecord> = values
            .iter()
            .enumerate()
            .map(|(i, v)| NewRecord {
                timestamp_delta: i as i64,
                value: Some(Bytes::copy_from_slice(v.as_bytes())),
                ..Default::default()
            })
            .collect();
        let header = BatchHeader {
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_000 + values.len() as i64 - 1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            ..Default::default()
        };
        let batch = encode_batch(&header, Compression::Lz4, &records).unwrap();
        let body = ProduceRequest {
            acks,
            timeout_ms: 1000,
            topic_data: vec![TopicProduceData {
                name: topic.into(),
                partition_data: vec![PartitionProduceData {
                    index: partition,
                    records: Some(batch),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        self.send(9, RequestBody::Produce(body))
    }

    /// Produces one idempotent batch of `n` records from producer 42.
    fn produce_idempotent(&mut self, epoch: i16, first_seq: i32, n: usize) {
        let records: Vec<NewRecord> = (0..n)
            .map(|i| NewRecord {
                value: Some(Bytes::from(format!("s{}", first_seq as usize + i))),
                ..Default::default()
            })
            .collect();
        let header = BatchHeader {
            base_timestamp: 1,
            max_timestamp: 1,
            producer_id: 42,
            producer_epoch: epoch,
            base_sequence: first_seq,
            ..Default::default()
        };
        let batch = encode_batch(&header, Compression::None, &records).unwrap();
        let body = ProduceRequest {
            acks: -1,
            timeout_ms: 1000,
            topic_data: vec![TopicProduceData {
                name: "t".into(),
                partition_data: vec![PartitionProduceData {
                    index: 0,
                    records: Some(batch),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        self.send(9, RequestBody::Produce(body));
    }

    fn produce_result(&mut self) -> (i16, i64) {
        let ResponseBody::Produce(r) = self.take(ApiKey::Produce, 9).body else {
            panic!()
        };
        let p = &r.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    fn fetch(&mut self, topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> i32 {
        let body = FetchRequest {
            max_wait_ms,
            min_bytes: 1,
            max_bytes: 1 << 20,
            topics: vec![FetchTopic {
                topic: topic.into(),
                partitions: vec![FetchPartition {
                    partition,
                    fetch_offset: offset,
                    partition_max_bytes: 1 << 20,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        self.send(12, RequestBody::Fetch(body))
    }

    /// (error, high watermark, values fetched)
    fn fetch_result(&mut self) -> (i16, i64, Vec<String>) {
        let ResponseBody::Fetch(r) = self.take(ApiKey::Fetch, 12).body else {
            panic!()
        };
        let p = &r.responses[0].partitions[0];
        let mut values = Vec::new();
        if let Some(records) = &p.records {
            for batch in Batches::new(records.clone()) {
                let batch = batch.unwrap();
                let records = batch.records(1 << 20).unwrap();
                for r in records.iter() {
                    values.push(String::from_utf8(r.unwrap().value.unwrap().to_vec()).unwrap());
                }
            }
        }
        (p.error_code, p.high_watermark, values)
    }
}

#[test]
fn api_versions_lists_served_apis_and_answers_unknown_versions_at_v0() {
    let mut sim = Sim::new();
    sim.send(3, RequestBody::ApiVersions(Default::default()));
    let ResponseBody::ApiVersions(r) = sim.take(ApiKey::ApiVersions, 3).body else {
        panic!()
    };
    assert_eq!(r.error_code, 0);
    let produce = r.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 13));
    assert!(
        r.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::JoinGroup.code()),
        "classic groups are served"
    );
    assert!(
        r.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::ConsumerGroupHeartbeat.code()),
        "KIP-848 groups are served"
    );

    // ApiVersions v99: answered at v0 with UNSUPPORTED_VERSION, connection kept.
    sim.input(Input::Received(
        C,
        Bytes::from_static(&[0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 42, 0xff, 0xff]),
    ));
    let r = sim.take(ApiKey::ApiVersions, 0);
    assert_eq!(r.header.correlation_id, 42);
    let ResponseBody::ApiVersions(r) = r.body else {
        panic!()
    };
    assert_eq!(r.error_code, ErrorCode::UNSUPPORTED_VERSION.0);
    assert!(sim.closed.is_empty());
}

#[test]
fn produce_then_fetch_gives_dense_offsets() {
    let mut sim = Sim::new();
    sim.create_topic("t", 3);
    sim.produce("t", 1, -1, &["a", "b"]);
    assert_eq!(sim.produce_result(), (0, 0));
    sim.produce("t", 1, 1, &["c"]);
    assert_eq!(sim.produce_result(), (0, 2));
    sim.fetch("t", 1, 0, 0);
    assert_eq!(
        sim.fetch_result(),
        (0, 3, vec!["a".into(), "b".into(), "c".into()])
    );
    sim.fetch("t", 1, 2, 0);
    let (_, _, values) = sim.fetch_result();
    assert!(
        values.ends_with(&["c".to_string()]),
        "the batch holding offset 2 is returned"
    );
    sim.fetch("t", 1, 4, 0);
    assert_eq!(sim.fetch_result().0, ErrorCode::OFFSET_OUT_OF_RANGE.0);
    sim.fetch("nope", 0, 0, 0);
    assert_eq!(
        sim.fetch_result().0,
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0
    );
}

#[test]
fn acks_zero_gets_no_response_but_later_responses_still_flow() {
    let mut sim = Sim::new();
    sim.create_topic("t", 1);
    sim.produce("t", 0, 0, &["x"]);
    assert_eq!(sim.pending_responses(), 0);
    sim.produce("t", 0, 1, &["y"]);
    assert_eq!(sim.produce_result(), (0, 1));
}

#[test]
fn responses_keep_request_order_when_storage_is_slow() {
    let mut sim = Sim::new();
    sim.create_topic("t", 1);
    sim.hold = true;
    let first = sim.produce("t", 0, 1, &["a"]);
    let second = sim.send(3, RequestBody::ApiVersions(Default::default()));
    assert_eq!(
        sim.pending_responses(),
        0,
        "ApiVersions waits behind the produce"
    );
    sim.release();
    assert_eq!(sim.take(ApiKey::Produce, 9).header.correlation_id, first);
    assert_eq!(
        sim.take(ApiKey::ApiVersions, 3).header.correlation_id,
        second
    );
}

#[test]
fn a_failed_append_leaves_no_offset_hole() {
    let mut sim = Sim::new();
    sim.create_topic("t", 1);
    sim.storage.fail_appends = true;
    sim.produce("t", 0, -1, &["lost"]);
    assert_eq!(sim.produce_result().0, ErrorCode::KAFKA_STORAGE_ERROR.0);
    sim.storage.fail_appends = false;
    sim.produce("t", 0, -1, &["kept"]);
    assert_eq!(sim.produce_result(), (0, 0));
    sim.fetch("t", 0, 0, 0);
    assert_eq!(sim.fetch_result(), (0, 1, vec!["kept".into()]));
}

#[test]
fn a_partly_stored_append_answers_the_stored_produces_and_keeps_offsets_dense() {
    let mut sim = Sim::new();
    sim.create_topic("t", 1);
    sim.hold = true;
    sim.produce("t", 0, -1, &["a"]);
    sim.produce("t", 0, -1, &["b", "c"]);
    sim.produce("t", 0, -1, &["d"]);
    // "a" goes alone; "b, c" and "d" wait and leave as one append of two batches
    for cmd in std::mem::take(&mut sim.held) {
        let done = sim.storage.perform(&cmd);
        sim.input(Input::Storage(cmd.token(), done));
    }
    // of which only the first batch is stored before the (SMQ) stream breaks
    sim.storage.partial_append = Some(1);
    sim.release();
    assert_eq!(sim.produce_result(), (0, 0));
    assert_eq!(sim.produce_result(), (0, 1), "b, c: stored, answered");
    assert_eq!(
        sim.produce_result().0,
        ErrorCode::KAFKA_STORAGE_ERROR.0,
        "d: not stored, retriable"
    );
    sim.produce("t", 0, -1, &["e"]);
    assert_eq!(
        sim.produce_result(),
        (0, 3),
        "d's offset is handed out again"
    );
    sim.fetch("t", 0, 0, 0);
    assert_eq!(
        sim.fetch_result(),
        (0, 4, vec!["a".into(), "b".into(), "c".into(), "e".into()])
    );
}

#[test]
fn records_found_beyond_the_ledger_are_adopted_and_appends_continue_after_them() {
    let mut sim = Sim::new();
    sim.create_topic("t", 1);
    sim.produce("t", 0, -1, &["a"]);
    assert_eq!(sim.produce_result(), (0, 0));
    sim.hold = true;
    sim.produce("t", 0, -1, &["b"]);
    // the backend already holds offsets 1 and 2 (stored, never acknowledged)
    let held = std::mem::take(&mut sim.held);
    assert_eq!(held.len(), 1);
    sim.hold = false;
    sim.input(Input::Storage(
        held[0].token(),
        StorageCompletion::Diverged {
            position: LogPosition::default(),
            end: Offset(3),
            producers: Vec::new(),
        },
    ));
    assert_eq!(sim.produce_result().0, ErrorCode::KAFKA_STORAGE_ERROR.0);
    sim.produce("t", 0, -1, &["b"]);
    assert_eq!(sim.produce_result(), (0, 3), "no offset is given twice");
}

#[test]
fn queued_produces_share_one_append() {
    let mut sim = Sim::new();
    sim.create_topic("t", 1);
    sim.hold = true;
    sim.produce("t", 0, -1, &["a"]);
    sim.produce("t", 0, -1, &["b", "c"]);
    sim.produce("t", 0, -1, &["d"]);
    let appends = sim
        .held
        .iter()
        .filter(|c| matches!(c, StorageCommand::Append { .. }))
        .count();
    assert_eq!(appends, 1, "the first goes alone, the others wait");
    sim.release();
    assert_eq!(sim.produce_result(), (0, 0));
    assert_eq!(sim.produce_result(), (0, 1));
    assert_eq!(sim.produce_result(), (0, 3));
}

#[test]
fn fetch_long_polls_until_data_or_deadline() {
    let mut sim = Sim::new();
    sim.create_topic("t", 1);
    sim.fetch("t", 0, 0, 500);
    assert_eq!(sim.pending_responses(), 0, "parked: nothing to read yet");
    assert_eq!(sim.gw.poll_timeout(), Some(Millis(1_500)));
    sim.produce("t", 0, 1, &["wake"]);
    // The fetch was first in line: it answers with the new record, then the produce answer follows.
    assert_eq!(sim.fetch_result(), (0, 1, vec!["wake".into()]));
    assert_eq!(sim.produce_result(), (0, 0));

    sim.fetch("t", 0, 1, 500);
    sim.advance(499);
    assert_eq!(sim.pending_responses(), 0);
    sim.advance(1);
    assert_eq!(sim.fetch_result(), (0, 1, vec![]));
    assert!(
        sim.gw.poll_timeout().unwrap() > Millis(2_000),
        "no fetch deadline is left"
    );
}

#[test]
fn list_offsets_earliest_latest_and_by_time() {
    let mut sim = Sim::new();
    sim.create_topic("t", 1);
    sim.produce("t", 0, 1, &["a", "b", "c"]);
    sim.produce_result();
    let lookup = |sim: &mut Sim, ts: i64| {
        let body = ListOffsetsRequest {
            replica_id: -1,
            topics: vec![ListOffsetsTopic {
                name: "t".into(),
                partitions: vec![ListOffsetsPartition {
                    partition_index: 0,
                    timestamp: ts,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        sim.send(7, RequestBody::ListOffsets(body));
        let ResponseBody::ListOffsets(r) = sim.take(ApiKey::ListOffsets, 7).body else {
            panic!()
        };
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    };
    assert_eq!(lookup(&mut sim, -2).1, 0);
    assert_eq!(lookup(&mut sim, -1).1, 3);
    assert_eq!(
        lookup(&mut sim, 1_700_000_000_001),
        (0, 1, 1_700_000_000_001)
    );
    assert_eq!(lookup(&mut sim, 1_800_000_000_000), (0, -1, -1));
    assert_eq!(lookup(&mut sim, -3), (0, 2, 1_700_000_000_002));
}

/// A topic keeps a copy of its name, not the request frame the name was read from.
#[test]
fn a_created_topic_does_not_keep_the_request_frame() {
    let mut sim = Sim::new();
    let frame = Bytes::from(vec![b'x'; 1 << 20]);
    let name = KStr::from_utf8(frame.slice(..5)).unwrap();
    let partitions = sim.gw.create_topic_now(&name, 3);
    assert_eq!(partitions.len(), 3);
    drop(name);
    assert!(frame.is_unique(), "the topic holds the frame");
}

#[test]
fn metadata_auto_creates_and_lists_topics() {
    let mut sim = Sim::new();
    let body = metadata::MetadataRequest {
        topics: Some(vec![metadata::request::MetadataRequestTopic {
            name: Some("auto".into()),
            ..Default::default()
        }]),
        allow_auto_topic_creation: true,
        ..Default::default()
    };
    sim.send(12, RequestBody::Metadata(body));
    let ResponseBody::Metadata(r) = sim.take(ApiKey::Metadata, 12).body else {
        panic!()
    };
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].partitions.len(), 1);
    assert_eq!(r.brokers[0].port, 9092);
    assert_eq!(r.topics[0].topic_id, topic_id_for("auto"));
}

#[test]
fn garbage_closes_only_that_connection() {
    let mut sim = Sim::new();
    sim.input(Input::Received(
        C,
        Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff]),
    ));
    assert_eq!(sim.closed, vec![C]);
    let other = ConnectionId(2);
    sim.input(Input::Connected(other, KStr::from_static("/127.0.0.1")));
    sim.input(Input::Received(
        other,
        Bytes::from_static(&[0, 0, 0, 4, 0, 0, 0, 0]),
    ));
    assert_eq!(sim.closed, vec![C, other], "a truncated header closes too");
}

#[test]
fn a_connection_over_its_in_flight_budget_is_not_read() {
    let mut sim = Sim::with_config(Config {
        max_in_flight_bytes_per_connection: 100,
        ..Config::default()
    });
    sim.create_topic("t", 1);
    assert!(sim.gw.wants_read(C));
    sim.hold = true;
    sim.produce(
        "t",
        0,
        1,
        &["a fairly long value to exceed one hundred bytes with the frame around it"],
    );
    assert!(!sim.gw.wants_read(C), "unanswered bytes exceed the budget");
    sim.release();
    sim.produce_result();
    assert!(sim.gw.wants_read(C));
}

#[test]
fn configs_are_described_altered_and_validated() {
    let mut sim = Sim::new();
    sim.create_topic("t", 1);
    let before = sim.describe("t");
    assert!(before.contains(&("retention.ms".into(), "604800000".into(), 5)));
    assert_eq!(sim.set_config("t", "retention.ms", "1000"), 0);
    assert!(
        sim.describe("t")
            .contains(&("retention.ms".into(), "1000".into(), 1))
    );
    assert_eq!(
        sim.set_config("t", "cleanup.policy", "compact"),
        ErrorCode::INVALID_CONFIG.0
    );
    assert_eq!(
        sim.set_config("t", "no.such.config", "1"),
        ErrorCode::INVALID_CONFIG.0
    );
    assert_eq!(
        sim.set_config("nope", "retention.ms", "1"),
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0
    );
    assert_eq!(sim.set_config("t", "max.message.bytes", "100"), 0);
    sim.produce(
        "t",
        0,
        1,
        &["a value that makes the batch larger than one hundred bytes in total......."],
    );
    assert_eq!(sim.produce_result().0, ErrorCode::MESSAGE_TOO_LARGE.0);
}

#[test]
fn retention_drops_whole_old_segments_by_size_and_time() {
    let mut sim = Sim::new();
    sim.storage = MemoryStorage::with_segment_bytes(150);
    sim.create_topic("t", 1);
    for i in 0..10 {
        sim.produce("t", 0, 1, &[&format!("value-{i}")]);
        assert_eq!(sim.produce_result(), (0, i));
    }
    let tp = TopicPartition {
        topic: "t".into(),
        partition: 0,
    };
    let segments = sim.storage.segment_count(&tp);
    assert!(segments >= 3, "segments rolled: {segments}");
    // By size: keep roughly the newest 300 bytes.
    assert_eq!(sim.set_config("t", "retention.bytes", "300"), 0);
    sim.advance(30_000);
    let start = sim.gw.partition_stats()[0].log_start_offset;
    assert!(start > 0, "old segments dropped");
    assert!(sim.storage.segment_count(&tp) < segments);
    sim.fetch("t", 0, 0, 0);
    assert_eq!(sim.fetch_result().0, ErrorCode::OFFSET_OUT_OF_RANGE.0);
    sim.fetch("t", 0, start, 0);
    let (err, hw, values) = sim.fetch_result();
    assert_eq!((err, hw), (0, 10));
    assert!(values.contains(&format!("value-{start}")));
    // By time: everything but the active segment is older than 1 ms.
    assert_eq!(sim.set_config("t", "retention.ms", "1"), 0);
    sim.now.wall = TimestampMs(sim.now.wall.0 + 10_000);
    sim.advance(30_000);
    assert_eq!(
        sim.storage.segment_count(&tp),
        1,
        "only the active segment stays"
    );
    sim.fetch("t", 0, 9, 0);
    assert_eq!(sim.fetch_result().2, vec!["value-9".to_string()]);
}

mod groups {
    use super::*;
    use crate::api::join_group::request::JoinGroupRequestProtocol;
    use crate::api::join_group::{JoinGroupRequest, JoinGroupResponse};
    use crate::api::offset_commit::OffsetCommitRequest;
    use crate::api::offset_commit::request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use crate::api::offset_fetch::OffsetFetchRequest;
    use crate::api::offset_fetch::request::OffsetFetchRequestGroup;
    use crate::api::sync_group::SyncGroupRequest;
    use crate::api::sync_group::request::SyncGroupRequestAssignment;

    const C2: ConnectionId = ConnectionId(2);

    /// Sends `body` on `conn` and returns its correlation id.
    fn send_on(sim: &mut Sim, conn: ConnectionId, version: i16, body: RequestBody) -> i32 {
        sim.next_corr += 1;
        let request = Request {
            header: RequestHeader {
                api_key: body.api_key().code(),
                api_version: version,
                correlation_id: sim.next_corr,
                client_id: Some("sim".into()),
                unknown_tagged_fields: Vec::new(),
            },
            body,
        };
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, |b| request.encode(b)).unwrap();
        sim.input(Input::Received(conn, buf.freeze()));
        sim.next_corr
    }

    fn take_on(
        sim: &mut Sim,
        conn: ConnectionId,
        api: ApiKey,
        version: i16,
    ) -> Option<ResponseBody> {
        let frames = sim.received.entry(conn).or_default();
        if frames.is_empty() {
            return None;
        }
        let frame = frames.remove(0);
        Some(
            Response::decode(&frame.slice(4..), api, version)
                .unwrap()
                .body,
        )
    }

    fn join(sim: &mut Sim, conn: ConnectionId, member_id: &str, instance: Option<&str>) {
        let body = JoinGroupRequest {
            group_id: "g".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 20_000,
            member_id: member_id.into(),
            group_instance_id: instance.map(KStr::from),
            protocol_type: "consumer".into(),
            protocols: vec![JoinGroupRequestProtocol {
                name: "range".into(),
                metadata: Bytes::from_static(b"meta"),
                ..Default::default()
            }],
            ..Default::default()
        };
        send_on(sim, conn, 9, RequestBody::JoinGroup(body));
    }

    fn join_result(sim: &mut Sim, conn: ConnectionId) -> Option<JoinGroupResponse> {
        match take_on(sim, conn, ApiKey::JoinGroup, 9)? {
            ResponseBody::JoinGroup(r) => Some(r),
            _ => None,
        }
    }

    /// Joins with the KIP-394 round trip; returns the member id.
    fn join_new(sim: &mut Sim, conn: ConnectionId, instance: Option<&str>) -> String {
        join(sim, conn, "", instance);
        let r = join_result(sim, conn).expect("MEMBER_ID_REQUIRED at once");
        assert_eq!(r.error_code, ErrorCode::MEMBER_ID_REQUIRED.0);
        let id = r.member_id.to_string();
        join(sim, conn, &id, instance);
        id
    }

    fn sync(
        sim: &mut Sim,
        conn: ConnectionId,
        member: &str,
        generation: i32,
        assignments: &[(&str, &str)],
    ) {
        let body = SyncGroupRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.into(),
            assignments: assignments
                .iter()
                .map(|(m, a)| SyncGroupRequestAssignment {
                    member_id: (*m).into(),
                    assignment: Bytes::copy_from_slice(a.as_bytes()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        send_on(sim, conn, 5, RequestBody::SyncGroup(body));
    }

    fn sync_result(sim: &mut Sim, conn: ConnectionId) -> Option<(i16, Bytes)> {
        match take_on(sim, conn, ApiKey::SyncGroup, 5)? {
            ResponseBody::SyncGroup(r) => Some((r.error_code, r.assignment)),
            _ => None,
        }
    }

    fn heartbeat(sim: &mut Sim, conn: ConnectionId, member: &str, generation: i32) -> i16 {
        let body = crate::api::heartbeat::HeartbeatRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.into(),
            ..Default::default()
        };
        send_on(sim, conn, 4, RequestBody::Heartbeat(body));
        match take_on(sim, conn, ApiKey::Heartbeat, 4) {
            Some(ResponseBody::Heartbeat(r)) => r.error_code,
            other => panic!("{other:?}"),
        }
    }

    fn two_member_group(sim: &mut Sim) -> (String, String, i32) {
        sim.input(Input::Connected(C2, KStr::from_static("/127.0.0.1")));
        let a = join_new(sim, C, None);
        let b = join_new(sim, C2, None);
        assert!(
            join_result(sim, C).is_none(),
            "the first rebalance waits for the initial delay"
        );
        sim.advance(3_000);
        let ra = join_result(sim, C).unwrap();
        let rb = join_result(sim, C2).unwrap();
        assert_eq!((ra.error_code, rb.error_code), (0, 0));
        assert_eq!(ra.generation_id, 1);
        let (leader, follower, lc, fc) = if ra.leader.as_str() == a {
            (a, b, C, C2)
        } else {
            (b, a, C2, C)
        };
        let leader_members = if lc == C {
            ra.members.len()
        } else {
            rb.members.len()
        };
        assert_eq!(leader_members, 2, "the leader learns every member");
        sync(sim, fc, &follower, 1, &[]);
        assert!(
            sync_result(sim, fc).is_none(),
            "followers wait for the leader's assignment"
        );
        sync(
            sim,
            lc,
            &leader,
            1,
            &[(&leader, "for-leader"), (&follower, "for-follower")],
        );
        assert_eq!(
            sync_result(sim, lc).unwrap(),
            (0, Bytes::from_static(b"for-leader"))
        );
        assert_eq!(
            sync_result(sim, fc).unwrap(),
            (0, Bytes::from_static(b"for-follower"))
        );
        (leader, follower, 1)
    }

    #[test]
    fn a_join_storm_forms_one_generation() {
        let mut sim = Sim::new();
        let conns: Vec<ConnectionId> = (10..30).map(ConnectionId).collect();
        let mut ids = Vec::new();
        for c in &conns {
            sim.input(Input::Connected(*c, KStr::from_static("/127.0.0.1")));
            ids.push(join_new(&mut sim, *c, None));
            sim.advance(100);
        }
        sim.advance(3_000);
        let results: Vec<JoinGroupResponse> = conns
            .iter()
            .map(|c| join_result(&mut sim, *c).expect("every member answered"))
            .collect();
        assert!(
            results
                .iter()
                .all(|r| r.error_code == 0 && r.generation_id == 1),
            "one generation for all"
        );
        let leaders: Vec<&JoinGroupResponse> =
            results.iter().filter(|r| r.leader == r.member_id).collect();
        assert_eq!(leaders.len(), 1);
        assert_eq!(leaders[0].members.len(), 20);
        assert!(
            results
                .iter()
                .filter(|r| r.leader != r.member_id)
                .all(|r| r.members.is_empty())
        );
    }

    #[test]
    fn a_leader_timing_out_mid_sync_sends_followers_back_to_join() {
        let mut sim = Sim::new();
        sim.input(Input::Connected(C2, KStr::from_static("/127.0.0.1")));
        let a = join_new(&mut sim, C, None);
        let b = join_new(&mut sim, C2, None);
        sim.advance(3_000);
        let ra = join_result(&mut sim, C).unwrap();
        let rb = join_result(&mut sim, C2).unwrap();
        let (follower, fc) = if ra.leader.as_str() == a {
            (b, C2)
        } else {
            (a, C)
        };
        let _ = rb;
        sync(&mut sim, fc, &follower, 1, &[]);
        assert!(sync_result(&mut sim, fc).is_none(), "waits for the leader");
        // The leader never syncs nor heart-beats: its session (10 s) runs out.
        sim.advance(10_001);
        assert_eq!(
            sync_result(&mut sim, fc).map(|r| r.0),
            Some(ErrorCode::REBALANCE_IN_PROGRESS.0)
        );
        join(&mut sim, fc, &follower, None);
        let again = join_result(&mut sim, fc).expect("alone now: the rebalance completes at once");
        assert_eq!(
            (
                again.error_code,
                again.generation_id,
                again.leader.to_string()
            ),
            (0, 2, follower.clone())
        );
    }

    #[test]
    fn a_leader_leaving_during_sync_sends_followers_back_to_join() {
        let mut sim = Sim::new();
        sim.input(Input::Connected(C2, KStr::from_static("/127.0.0.1")));
        let a = join_new(&mut sim, C, None);
        let b = join_new(&mut sim, C2, None);
        sim.advance(3_000);
        let ra = join_result(&mut sim, C).unwrap();
        join_result(&mut sim, C2).unwrap();
        let (leader, lc, follower, fc) = if ra.leader.as_str() == a {
            (a, C, b, C2)
        } else {
            (b, C2, a, C)
        };
        sync(&mut sim, fc, &follower, 1, &[]);
        let body = crate::api::leave_group::LeaveGroupRequest {
            group_id: "g".into(),
            members: vec![crate::api::leave_group::request::MemberIdentity {
                member_id: leader.as_str().into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        send_on(&mut sim, lc, 5, RequestBody::LeaveGroup(body));
        let Some(ResponseBody::LeaveGroup(left)) = take_on(&mut sim, lc, ApiKey::LeaveGroup, 5)
        else {
            panic!()
        };
        assert_eq!(left.members[0].error_code, 0);
        assert_eq!(
            sync_result(&mut sim, fc).map(|r| r.0),
            Some(ErrorCode::REBALANCE_IN_PROGRESS.0)
        );
        join(&mut sim, fc, &follower, None);
        let again = join_result(&mut sim, fc).unwrap();
        assert_eq!(
            (again.generation_id, again.leader.to_string()),
            (2, follower)
        );
    }

    #[test]
    fn join_and_sync_form_a_generation() {
        let mut sim = Sim::new();
        let (leader, follower, generation) = two_member_group(&mut sim);
        assert_eq!(
            heartbeat(&mut sim, C, &leader, generation)
                .max(heartbeat(&mut sim, C2, &follower, generation)),
            0
        );
        assert_eq!(
            heartbeat(&mut sim, C, &leader, generation + 1),
            ErrorCode::ILLEGAL_GENERATION.0
        );
        assert_eq!(
            heartbeat(&mut sim, C, "stranger", generation),
            ErrorCode::UNKNOWN_MEMBER_ID.0
        );
        sim.create_topic("t", 1);
        assert_eq!(
            commit(&mut sim, generation + 1, &leader, 3),
            ErrorCode::ILLEGAL_GENERATION.0,
            "a fenced generation may not commit"
        );
        assert_eq!(commit(&mut sim, generation, &leader, 3), 0);
    }

    #[test]
    fn a_silent_member_times_out_and_the_rest_rebalance() {
        let mut sim = Sim::new();
        let (leader, _follower, generation) = two_member_group(&mut sim);
        // The leader keeps heart-beating (over C: heartbeats are not tied to a connection); the
        // follower goes silent.
        let (alive, alive_conn) = (leader, C);
        // Only the leader keeps heart-beating.
        for _ in 0..4 {
            sim.advance(3_000);
            let code = heartbeat(&mut sim, alive_conn, &alive, generation);
            if code == ErrorCode::REBALANCE_IN_PROGRESS.0 {
                join(&mut sim, alive_conn, &alive, None);
                let r = join_result(&mut sim, alive_conn)
                    .expect("alone, the rebalance completes at once");
                assert_eq!(r.generation_id, generation + 1);
                assert_eq!(r.members.len(), 1);
                return;
            }
            assert_eq!(code, 0);
        }
        panic!("the silent member was never removed");
    }

    #[test]
    fn a_static_member_restarting_gets_its_generation_back_without_rebalance() {
        let mut sim = Sim::new();
        // Static members skip the MEMBER_ID_REQUIRED round trip.
        join(&mut sim, C, "", Some("instance-1"));
        sim.advance(3_000);
        let r = join_result(&mut sim, C).unwrap();
        let id = r.member_id.to_string();
        sync(&mut sim, C, &id, r.generation_id, &[(&id, "mine")]);
        assert_eq!(sync_result(&mut sim, C).unwrap().0, 0);
        // The process restarts: a new connection, no member id, the same instance id.
        sim.input(Input::Connected(C2, KStr::from_static("/127.0.0.1")));
        join(&mut sim, C2, "", Some("instance-1"));
        let again = join_result(&mut sim, C2).expect("answered at once: no rebalance");
        assert_eq!(
            (again.error_code, again.generation_id),
            (0, r.generation_id)
        );
        let new_id = again.member_id.to_string();
        assert_ne!(new_id, id, "a new member id, as Kafka gives");
        sync(&mut sim, C2, &new_id, r.generation_id, &[]);
        assert_eq!(
            sync_result(&mut sim, C2).unwrap(),
            (0, Bytes::from_static(b"mine")),
            "its assignment back"
        );
        // The old process, if it still runs, is fenced.
        let body = crate::api::heartbeat::HeartbeatRequest {
            group_id: "g".into(),
            generation_id: r.generation_id,
            member_id: id.as_str().into(),
            group_instance_id: Some("instance-1".into()),
            ..Default::default()
        };
        send_on(&mut sim, C, 4, RequestBody::Heartbeat(body));
        let Some(ResponseBody::Heartbeat(hb)) = take_on(&mut sim, C, ApiKey::Heartbeat, 4) else {
            panic!()
        };
        assert_eq!(hb.error_code, ErrorCode::FENCED_INSTANCE_ID.0);
    }

    fn commit(sim: &mut Sim, generation: i32, member: &str, offset: i64) -> i16 {
        let body = OffsetCommitRequest {
            group_id: "g".into(),
            generation_id_or_member_epoch: generation,
            member_id: member.into(),
            topics: vec![OffsetCommitRequestTopic {
                name: "t".into(),
                partitions: vec![OffsetCommitRequestPartition {
                    partition_index: 0,
                    committed_offset: offset,
                    committed_metadata: Some("m".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        sim.send(9, RequestBody::OffsetCommit(body));
        let ResponseBody::OffsetCommit(r) = sim.take(ApiKey::OffsetCommit, 9).body else {
            panic!()
        };
        r.topics[0].partitions[0].error_code
    }

    fn fetch_committed(sim: &mut Sim) -> (i16, i64) {
        let body = OffsetFetchRequest {
            groups: vec![OffsetFetchRequestGroup {
                group_id: "g".into(),
                topics: None,
                ..Default::default()
            }],
            ..Default::default()
        };
        sim.send(9, RequestBody::OffsetFetch(body));
        let ResponseBody::OffsetFetch(r) = sim.take(ApiKey::OffsetFetch, 9).body else {
            panic!()
        };
        let g = &r.groups[0];
        (
            g.error_code,
            g.topics
                .first()
                .map_or(-1, |t| t.partitions[0].committed_offset),
        )
    }

    #[test]
    fn commits_are_durable_fenced_and_restored_after_restart() {
        let mut sim = Sim::new();
        sim.create_topic("t", 1);
        assert_eq!(
            commit(&mut sim, -1, "", 5),
            0,
            "a commit outside any group is accepted"
        );
        assert_eq!(
            commit(&mut sim, 3, "ghost", 6),
            ErrorCode::UNKNOWN_MEMBER_ID.0,
            "an unknown member may not commit"
        );
        assert_eq!(commit(&mut sim, -1, "", 7), 0);
        assert_eq!(fetch_committed(&mut sim), (0, 7));
        // Restart: a new gateway over the same storage, told what recovery found.
        let recovered = sim
            .gw
            .partition_stats()
            .into_iter()
            .map(|p| crate::storage::RecoveredPartition {
                partition: p.partition,
                log_start_offset: Offset(p.log_start_offset),
                next_offset: Offset(p.high_watermark),
                index: vec![crate::ledger::IndexEntry {
                    offset: Offset(0),
                    position: LogPosition::default(),
                    max_timestamp: TimestampMs(0),
                    bytes: 0,
                }],
                topic_config: Vec::new(),
                producers: Default::default(),
            })
            .collect();
        sim.hold = true;
        sim.gw = Gateway::new(Config::default(), recovered, sim.now);
        sim.drain();
        sim.input(Input::Connected(C, KStr::from_static("/127.0.0.1")));
        sim.send(
            9,
            RequestBody::OffsetFetch(OffsetFetchRequest {
                groups: vec![OffsetFetchRequestGroup {
                    group_id: "g".into(),
                    topics: None,
                    ..Default::default()
                }],
                ..Default::default()
            }),
        );
        let ResponseBody::OffsetFetch(r) = sim.take(ApiKey::OffsetFetch, 9).body else {
            panic!()
        };
        assert_eq!(
            r.groups[0].error_code,
            ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.0,
            "loading first"
        );
        sim.release();
        assert_eq!(
            fetch_committed(&mut sim),
            (0, 7),
            "the last commit survives the restart"
        );
    }

    #[test]
    fn offsets_of_empty_groups_expire_after_the_retention() {
        let mut sim = Sim::with_config(Config {
            offsets_retention_ms: 60_000,
            ..Config::default()
        });
        sim.create_topic("t", 1);
        assert_eq!(commit(&mut sim, -1, "", 5), 0);
        sim.now.wall = TimestampMs(sim.now.wall.0 + 59_000);
        sim.advance(30_000);
        assert_eq!(
            fetch_committed(&mut sim),
            (0, 5),
            "kept within the retention"
        );
        sim.now.wall = TimestampMs(sim.now.wall.0 + 2_000);
        sim.advance(30_000);
        assert_eq!(fetch_committed(&mut sim), (0, -1), "expired");
    }

    #[test]
    fn offsets_and_empty_groups_can_be_deleted() {
        use crate::api::delete_groups::DeleteGroupsRequest;
        use crate::api::offset_delete::OffsetDeleteRequest;
        use crate::api::offset_delete::request::{
            OffsetDeleteRequestPartition as OffsetDeletePartition,
            OffsetDeleteRequestTopic as OffsetDeleteTopic,
        };
        let mut sim = Sim::new();
        sim.create_topic("t", 1);
        assert_eq!(commit(&mut sim, -1, "", 5), 0);
        let body = OffsetDeleteRequest {
            group_id: "g".into(),
            topics: vec![OffsetDeleteTopic {
                name: "t".into(),
                partitions: vec![OffsetDeletePartition { partition_index: 0 }],
            }],
        };
        sim.send(0, RequestBody::OffsetDelete(body));
        let ResponseBody::OffsetDelete(r) = sim.take(ApiKey::OffsetDelete, 0).body else {
            panic!()
        };
        assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
        assert_eq!(fetch_committed(&mut sim), (0, -1), "the offset is gone");
        let delete = |sim: &mut Sim| {
            sim.send(
                2,
                RequestBody::DeleteGroups(DeleteGroupsRequest {
                    groups_names: vec!["g".into()],
                    ..Default::default()
                }),
            );
            let ResponseBody::DeleteGroups(r) = sim.take(ApiKey::DeleteGroups, 2).body else {
                panic!()
            };
            r.results[0].error_code
        };
        assert_eq!(delete(&mut sim), 0);
        assert_eq!(delete(&mut sim), ErrorCode::GROUP_ID_NOT_FOUND.0);
        // A group with members is not deleted (the member joins on its own connection, where its
        // JoinGroup waits for the rebalance).
        sim.input(Input::Connected(C2, KStr::from_static("/127.0.0.1")));
        let _ = join_new(&mut sim, C2, None);
        assert_eq!(delete(&mut sim), ErrorCode::NON_EMPTY_GROUP.0);
    }
}

#[test]
fn idempotent_retries_are_stored_once() {
    let mut sim = Sim::new();
    sim.create_topic("t", 1);
    sim.produce_idempotent(0, 0, 3);
    assert_eq!(sim.produce_result(), (0, 0));
    sim.produce_idempotent(0, 0, 3);
    assert_eq!(
        sim.produce_result(),
        (0, 0),
        "a retry gets the original offset"
    );
    sim.produce_idempotent(0, 3, 2);
    assert_eq!(sim.produce_result(), (0, 3));
    // A retry while the original is still on its way to storage.
    sim.hold = true;
    sim.produce_idempotent(0, 5, 1);
    sim.produce_idempotent(0, 5, 1);
    sim.release();
    assert_eq!(sim.produce_result(), (0, 5));
    assert_eq!(sim.produce_result(), (0, 5));
    sim.produce_idempotent(0, 9, 1);
    assert_eq!(
        sim.produce_result().0,
        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER.0
    );
    sim.produce_idempotent(1, 0, 1);
    assert_eq!(
        sim.produce_result(),
        (0, 6),
        "a bumped epoch starts again at sequence 0"
    );
    sim.produce_idempotent(0, 6, 1);
    assert_eq!(sim.produce_result().0, ErrorCode::INVALID_PRODUCER_EPOCH.0);
    sim.fetch("t", 0, 0, 0);
    let (_, hw, values) = sim.fetch_result();
    assert_eq!(hw, 7);
    assert_eq!(values, vec!["s0", "s1", "s2", "s3", "s4", "s5", "s0"]);
}

#[test]
fn poll_timeout_never_points_into_the_past() {
    // A driver sleeps until poll_timeout and feeds Tick; a deadline already passed with nothing to
    // do would make it spin. Drive a rebalance that waits for a slow member and check at each step.
    let mut sim = Sim::new();
    let c2 = ConnectionId(2);
    sim.input(Input::Connected(c2, KStr::from_static("/127.0.0.1")));
    let join = |sim: &mut Sim, conn: ConnectionId, member: &str| {
        let body = crate::api::join_group::JoinGroupRequest {
            group_id: "g".into(),
            session_timeout_ms: 6_000,
            rebalance_timeout_ms: 60_000,
            member_id: member.into(),
            protocol_type: "consumer".into(),
            protocols: vec![crate::api::join_group::request::JoinGroupRequestProtocol {
                name: "range".into(),
                metadata: Bytes::new(),
                ..Default::default()
            }],
            ..Default::default()
        };
        sim.next_corr += 1;
        let request = Request {
            header: RequestHeader {
                api_key: 11,
                api_version: 3,
                correlation_id: sim.next_corr,
                client_id: None,
                unknown_tagged_fields: Vec::new(),
            },
            body: RequestBody::JoinGroup(body),
        };
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, |b| request.encode(b)).unwrap();
        sim.input(Input::Received(conn, buf.freeze()));
    };
    // v3: no MEMBER_ID_REQUIRED round trip. Two members form generation 1 after the delay.
    join(&mut sim, C, "");
    join(&mut sim, c2, "");
    sim.advance(3_000);
    assert_eq!(sim.received.get(&C).map_or(0, Vec::len), 1);
    let frame = sim.received.get_mut(&C).unwrap().remove(0);
    let ResponseBody::JoinGroup(r) = Response::decode(&frame.slice(4..), ApiKey::JoinGroup, 3)
        .unwrap()
        .body
    else {
        panic!()
    };
    let (member, generation) = (r.member_id.to_string(), r.generation_id);
    // A third member arrives: a rebalance starts and waits for the others to rejoin. The first
    // keeps heart-beating without rejoining (a slow consumer) for longer than the newcomer's
    // session timeout, while the newcomer's JoinGroup is parked.
    let c3 = ConnectionId(3);
    sim.input(Input::Connected(c3, KStr::from_static("/127.0.0.1")));
    join(&mut sim, c3, "");
    for _ in 0..40 {
        let deadline = sim.gw.poll_timeout().unwrap();
        assert!(
            deadline > sim.now.mono,
            "deadline {deadline:?} at {:?}",
            sim.now.mono
        );
        sim.advance((deadline.0 - sim.now.mono.0).min(1_000));
        let hb = crate::api::heartbeat::HeartbeatRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.as_str().into(),
            ..Default::default()
        };
        sim.send(0, RequestBody::Heartbeat(hb));
    }
}

#[test]
fn kip848_members_get_disjoint_assignments_through_heartbeats() {
    use crate::api::consumer_group_heartbeat::ConsumerGroupHeartbeatRequest;
    use crate::api::consumer_group_heartbeat::request::TopicPartitions;
    let mut sim = Sim::new();
    sim.create_topic("t", 4);
    let beat = |sim: &mut Sim, member: &str, epoch: i32, owned: Option<Vec<i32>>| {
        let body = ConsumerGroupHeartbeatRequest {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: (epoch == 0).then(|| vec!["t".into()]),
            topic_partitions: owned.map(|ps| {
                vec![TopicPartitions {
                    topic_id: topic_id_for("t"),
                    partitions: ps,
                    ..Default::default()
                }]
            }),
            ..Default::default()
        };
        sim.send(1, RequestBody::ConsumerGroupHeartbeat(body));
        let ResponseBody::ConsumerGroupHeartbeat(r) =
            sim.take(ApiKey::ConsumerGroupHeartbeat, 1).body
        else {
            panic!()
        };
        assert_eq!(r.error_code, 0, "{r:?}");
        let assigned = r.assignment.map(|a| {
            a.topic_partitions
                .iter()
                .flat_map(|t| t.partitions.clone())
                .collect::<Vec<i32>>()
        });
        (r.member_epoch, assigned)
    };
    let (e1, a1) = beat(&mut sim, "a", 0, None);
    assert_eq!((e1, a1), (1, Some(vec![0, 1, 2, 3])));
    let (e2, b1) = beat(&mut sim, "b", 0, None);
    assert_eq!(
        (e2, b1),
        (2, Some(vec![])),
        "b is at the new epoch, waiting while a owns everything"
    );
    let (ea, a2) = beat(&mut sim, "a", 1, Some(vec![0, 1, 2, 3]));
    assert_eq!(ea, 1, "a must first let go");
    let keep = a2.expect("a is told to revoke");
    assert_eq!(keep.len(), 2);
    let (ea, _) = beat(&mut sim, "a", 1, Some(keep.clone()));
    assert_eq!(ea, 2, "revocation acknowledged: a reaches the group epoch");
    let (eb, b2) = beat(&mut sim, "b", 2, Some(vec![]));
    let mine = b2.expect("b gets the freed partitions");
    assert_eq!(eb, 2);
    assert!(mine.iter().all(|p| !keep.contains(p)) && mine.len() == 2);
    // A stale epoch is fenced.
    let body = ConsumerGroupHeartbeatRequest {
        group_id: "g".into(),
        member_id: "a".into(),
        member_epoch: 7,
        ..Default::default()
    };
    sim.send(1, RequestBody::ConsumerGroupHeartbeat(body));
    let ResponseBody::ConsumerGroupHeartbeat(r) = sim.take(ApiKey::ConsumerGroupHeartbeat, 1).body
    else {
        panic!()
    };
    assert_eq!(r.error_code, ErrorCode::FENCED_MEMBER_EPOCH.0);
}

#[test]
fn kip848_a_member_that_never_revokes_is_removed_after_its_rebalance_timeout() {
    use crate::api::consumer_group_heartbeat::ConsumerGroupHeartbeatRequest;
    let mut sim = Sim::new();
    sim.create_topic("t", 4);
    let beat = |sim: &mut Sim, member: &str, epoch: i32| {
        let body = ConsumerGroupHeartbeatRequest {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: 10_000,
            subscribed_topic_names: (epoch == 0).then(|| vec!["t".into()]),
            ..Default::default()
        };
        sim.send(1, RequestBody::ConsumerGroupHeartbeat(body));
        let ResponseBody::ConsumerGroupHeartbeat(r) =
            sim.take(ApiKey::ConsumerGroupHeartbeat, 1).body
        else {
            panic!()
        };
        (
            r.error_code,
            r.member_epoch,
            r.assignment.map(|a| {
                a.topic_partitions
                    .iter()
                    .map(|t| t.partitions.len())
                    .sum::<usize>()
            }),
        )
    };
    assert_eq!(beat(&mut sim, "a", 0), (0, 1, Some(4)));
    assert_eq!(beat(&mut sim, "b", 0).2, Some(0));
    assert_eq!(beat(&mut sim, "a", 1).2, Some(2), "a is told to revoke two");
    // a goes on heart-beating but never reports the revocation; b keeps asking.
    for _ in 0..5 {
        sim.advance(2_000);
        beat(&mut sim, "a", 1);
        assert_eq!(
            beat(&mut sim, "b", 2).2,
            None,
            "nothing for b while a holds on"
        );
    }
    sim.advance(1_000);
    assert_eq!(
        beat(&mut sim, "a", 1).0,
        ErrorCode::UNKNOWN_MEMBER_ID.0,
        "a was removed"
    );
    assert_eq!(beat(&mut sim, "b", 2).2, Some(4), "b takes everything");
}

#[test]
fn the_high_watermark_never_exposes_unwritten_data() {
    let mut sim = Sim::new();
    sim.create_topic("t", 1);
    sim.produce("t", 0, 1, &["a"]);
    sim.produce_result();
    sim.hold = true;
    sim.produce("t", 0, 1, &["b"]);
    // The append is with the storage, not done: a fetch sees only what was written.
    let c2 = ConnectionId(2);
    sim.input(Input::Connected(c2, KStr::from_static("/127.0.0.1")));
    sim.next_corr += 1;
    let body = FetchRequest {
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes: 1 << 20,
        topics: vec![FetchTopic {
            topic: "t".into(),
            partitions: vec![FetchPartition {
                partition: 0,
                fetch_offset: 0,
                partition_max_bytes: 1 << 20,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let request = Request {
        header: RequestHeader {
            api_key: 1,
            api_version: 12,
            correlation_id: sim.next_corr,
            client_id: None,
            unknown_tagged_fields: Vec::new(),
        },
        body: RequestBody::Fetch(body),
    };
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, |b| request.encode(b)).unwrap();
    sim.input(Input::Received(c2, buf.freeze()));
    // Its read is held too; perform only the read, not the append.
    let read = sim
        .held
        .iter()
        .position(|c| matches!(c, StorageCommand::Read { .. }))
        .unwrap();
    let cmd = sim.held.remove(read);
    let StorageCommand::Read { end, .. } = &cmd else {
        unreachable!()
    };
    assert_eq!(*end, Offset(1), "reads stop at the high watermark");
    let done = sim.storage.perform(&cmd);
    sim.gw
        .handle_input(Input::Storage(cmd.token(), done), sim.now)
        .unwrap();
    sim.drain();
    let frame = sim.received.get_mut(&c2).unwrap().remove(0);
    let ResponseBody::Fetch(r) = Response::decode(&frame.slice(4..), ApiKey::Fetch, 12)
        .unwrap()
        .body
    else {
        panic!()
    };
    assert_eq!(r.responses[0].partitions[0].high_watermark, 1);
    sim.release();
    assert_eq!(sim.produce_result(), (0, 1));
}

#[test]
fn interleaved_producers_get_dense_unique_offsets_whatever_the_completion_order() {
    // Many connections produce to two partitions; the storage completes commands in a random order
    // across partitions (in order within one, as the contract says). Every acknowledged record must
    // hold a distinct offset, and each partition's offsets must be exactly 0..n.
    for seed in 0..200u64 {
        let mut rng = crate::codec::testing::Gen::new(seed);
        let mut sim = Sim::new();
        sim.create_topic("t", 2);
        let conns: Vec<ConnectionId> = (2..6).map(ConnectionId).collect();
        for c in &conns {
            sim.input(Input::Connected(*c, KStr::from_static("/127.0.0.1")));
        }
        sim.hold = true;
        let mut sent = 0;
        let mut answers: Vec<(i32, i64, usize)> = Vec::new();
        for _ in 0..40 {
            if rng.one_in(2) && sent < 30 {
                let conn = conns[(rng.u32() % 4) as usize];
                let partition = (rng.u32() % 2) as i32;
                let n = 1 + (rng.u32() % 3) as usize;
                let values: Vec<String> = (0..n).map(|i| format!("{seed}-{sent}-{i}")).collect();
                let refs: Vec<&str> = values.iter().map(String::as_str).collect();
                let records: Vec<NewRecord> = refs
                    .iter()
                    .map(|v| NewRecord {
                        value: Some(Bytes::copy_from_slice(v.as_bytes())),
                        ..Default::default()
                    })
                    .collect();
                let header = BatchHeader {
                    producer_id: -1,
                    producer_epoch: -1,
                    base_sequence: -1,
                    ..Default::default()
                };
                let batch = encode_batch(&header, Compression::None, &records).unwrap();
                let body = ProduceRequest {
                    acks: 1,
                    timeout_ms: 1000,
                    topic_data: vec![TopicProduceData {
                        name: "t".into(),
                        partition_data: vec![PartitionProduceData {
                            index: partition,
                            records: Some(batch),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                sim.next_corr += 1;
                let request = Request {
                    header: RequestHeader {
                        api_key: 0,
                        api_version: 9,
                        correlation_id: sim.next_corr,
                        client_id: None,
                        unknown_tagged_fields: Vec::new(),
                    },
                    body: RequestBody::Produce(body),
                };
                let mut buf = BytesMut::new();
                encode_frame(&mut buf, |b| request.encode(b)).unwrap();
                sim.input(Input::Received(conn, buf.freeze()));
                answers.push((partition, -1, n));
                sent += 1;
            } else if !sim.held.is_empty() {
                // Complete the oldest command of a random partition.
                let partition = (rng.u32() % 2) as i32;
                if let Some(i) = sim.held.iter().position(|c| matches!(c, StorageCommand::Append { partition: p, .. } if p.partition == partition)) {
                    let cmd = sim.held.remove(i);
                    let done = sim.storage.perform(&cmd);
                    sim.gw.handle_input(Input::Storage(cmd.token(), done), sim.now).unwrap();
                    sim.drain();
                }
            }
        }
        sim.release();
        let mut offsets: BTreeMap<i32, Vec<(i64, usize)>> = BTreeMap::new();
        for c in &conns {
            for frame in sim.received.remove(c).unwrap_or_default() {
                let ResponseBody::Produce(r) =
                    Response::decode(&frame.slice(4..), ApiKey::Produce, 9)
                        .unwrap()
                        .body
                else {
                    panic!()
                };
                let p = &r.responses[0].partition_responses[0];
                assert_eq!(p.error_code, 0, "seed {seed}");
                offsets.entry(p.index).or_default().push((p.base_offset, 0));
            }
        }
        let acked: usize = offsets.values().map(Vec::len).sum();
        assert_eq!(acked, sent, "seed {seed}: every produce answered once");
        for (partition, list) in offsets.iter_mut() {
            list.sort();
            let hw = sim.gw.partition_stats()[*partition as usize].high_watermark;
            let records: usize = answers
                .iter()
                .filter(|a| a.0 == *partition)
                .map(|a| a.2)
                .sum();
            assert_eq!(
                hw as usize, records,
                "seed {seed}: dense, no gap, no overlap"
            );
            let starts: Vec<i64> = list.iter().map(|x| x.0).collect();
            let mut dedup = starts.clone();
            dedup.dedup();
            assert_eq!(starts, dedup, "seed {seed}: no two batches share an offset");
        }
    }
}

/// A fetch response's large record batches are spliced into its frame, not copied, and the rest
/// fits the buffer reserved for it at every version (the fields of Kelp's own answers, aborted
/// transactions included for read_committed, stay within the per-entry allowance); the parts
/// together are the bytes the copying encoder writes.
#[test]
fn a_fetch_frame_splices_its_batches_and_fits_the_buffer_reserved_for_the_rest() {
    use crate::api::fetch::FetchResponse;
    use crate::api::fetch::response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
    let partition = |i: i32, len: usize| PartitionData {
        partition_index: i,
        high_watermark: 1 << 40,
        last_stable_offset: 1 << 40,
        log_start_offset: 1 << 30,
        aborted_transactions: Some(vec![AbortedTransaction::default()]),
        records: Some(Bytes::from(vec![7u8; len])),
        ..Default::default()
    };
    let body = ResponseBody::Fetch(FetchResponse {
        responses: vec![
            FetchableTopicResponse {
                topic: KStr::from("a-topic-with-a-rather-long-name-for-a-fetch"),
                partitions: vec![partition(0, 1 << 20), partition(1, 0), partition(2, 300)],
                ..Default::default()
            },
            FetchableTopicResponse {
                topic: KStr::from("t"),
                partitions: (0..50).map(|i| partition(i, 100)).collect(),
                ..Default::default()
            },
        ],
        ..Default::default()
    });
    let capacity = frame_capacity(&body);
    let fetch = ApiKey::Fetch.versions();
    for version in fetch.min..=fetch.max {
        let response = Response {
            header: ResponseHeader {
                correlation_id: 1,
                unknown_tagged_fields: Vec::new(),
            },
            body: body.clone(),
        };
        let mut copied = BytesMut::new();
        encode_frame::<CodecError>(&mut copied, |b| response.encode(b, version)).unwrap();
        let frame =
            encode_frame_parts::<CodecError>(capacity, |b| response.encode_to(b, version)).unwrap();
        assert_eq!(frame.to_bytes(), copied, "v{version}");
        let big = match &body {
            ResponseBody::Fetch(f) => f.responses[0].partitions[0].records.clone().unwrap(),
            _ => unreachable!(),
        };
        let (spliced, written): (Vec<&Bytes>, Vec<&Bytes>) = frame
            .parts()
            .iter()
            .partition(|p| p.as_ptr() == big.as_ptr());
        assert_eq!(spliced.len(), 1, "v{version}: the 1 MiB batch is spliced");
        let written: usize = written.iter().map(|p| p.len()).sum();
        assert!(
            written <= capacity,
            "v{version}: {written} bytes, {capacity} reserved"
        );
        // and the reserve is an estimate, not a multiple
        assert!(capacity - written < 16 * 1024, "v{version}");
    }
}
