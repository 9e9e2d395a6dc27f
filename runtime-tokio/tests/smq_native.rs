//! An SMQ-native subscriber (Kelp's own gRPC client of the broker, no Kafka on the way) reads the
//! records Kelp wrote and sees the `_kafka_*` fields. Runs with `KELP_E2E_SMQ=host:port` (the second
//! pass of `scripts/test.sh`); without it there is no broker to read from, and it says so.

mod common;

use bytes::Bytes;
use common::{Client, Kelp, free_port, smq_namespace};
use kelp_core::smq::messaging_pb::seaweed_messaging_client::SeaweedMessagingClient;
use kelp_core::smq::messaging_pb::subscribe_message_request::{InitMessage, Message};
use kelp_core::smq::messaging_pb::subscribe_message_response::Message as Reply;
use kelp_core::smq::messaging_pb::{LookupTopicBrokersRequest, SubscribeMessageRequest};
use kelp_core::smq::record;
use kelp_core::smq::schema_pb::{OffsetType, PartitionOffset, RecordValue, Topic, value::Kind};
use prost::Message as _;
use std::time::Duration;

#[test]
fn an_smq_subscriber_sees_the_kafka_fields_of_records_kelp_wrote() {
    let Ok(broker) = std::env::var("KELP_E2E_SMQ") else {
        eprintln!(
            "an_smq_subscriber_sees_the_kafka_fields: no KELP_E2E_SMQ broker; nothing to read"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kelp = Kelp::start(dir.path(), free_port());
    let mut c = Client::connect(kelp.addr).unwrap();
    c.create("native");
    let values: Vec<String> = (0..3).map(|i| format!("value-{i}")).collect();
    assert_eq!(c.produce("native", &values).unwrap(), Some(0));

    let topic = Topic {
        namespace: smq_namespace(dir.path()),
        name: "native".into(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seen: Vec<RecordValue> = rt.block_on(async {
        let mut control = SeaweedMessagingClient::connect(format!("http://{broker}"))
            .await
            .unwrap();
        let assignment = control
            .lookup_topic_brokers(LookupTopicBrokersRequest {
                topic: Some(topic.clone()),
            })
            .await
            .unwrap()
            .into_inner()
            .broker_partition_assignments
            .remove(0);
        let mut leader =
            SeaweedMessagingClient::connect(format!("http://{}", assignment.leader_broker))
                .await
                .unwrap();
        let init = SubscribeMessageRequest {
            message: Some(Message::Init(InitMessage {
                consumer_group: "smq-native-test".into(),
                consumer_id: "reader".into(),
                client_id: "reader".into(),
                topic: Some(topic.clone()),
                partition_offset: Some(PartitionOffset {
                    partition: assignment.partition,
                    start_ts_ns: 0,
                    start_offset: 0,
                }),
                offset_type: OffsetType::ResetToEarliest as i32,
                sliding_window_size: 64,
                ..Default::default()
            })),
        };
        // keep the request stream open while reading
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(init).unwrap();
        let mut replies = leader
            .subscribe_message(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let mut seen = Vec::new();
        let read = async {
            while seen.len() < values.len() {
                let Some(reply) = replies.message().await.unwrap() else {
                    break;
                };
                if let Some(Reply::Data(m)) = reply.message {
                    // Kelp's partition marker at SMQ offset 0 is no Kafka record
                    if let Ok(rv) = RecordValue::decode(m.value.clone())
                        && rv.fields.contains_key(record::OFFSET)
                    {
                        seen.push(rv);
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("the subscriber got the records in time");
        drop(tx);
        seen
    });
    for (i, rv) in seen.iter().enumerate() {
        let f = &rv.fields;
        assert!(matches!(f[record::OFFSET].kind, Some(Kind::Int64Value(o)) if o == i as i64));
        assert!(matches!(
            f[record::PARTITION].kind,
            Some(Kind::Int32Value(0))
        ));
        assert!(matches!(
            f[record::TIMESTAMP].kind,
            Some(Kind::Int64Value(1))
        ));
        assert_eq!(
            f[record::VALUE].kind,
            Some(Kind::BytesValue(Bytes::from(values[i].clone())))
        );
    }
    eprintln!(
        "an SMQ subscriber read {} records with their _kafka_* fields",
        seen.len()
    );
    drop(kelp);
}

/// What a publish stream that breaks inside an idempotent batch leaves in SMQ (the batch's first
/// records, never acknowledged) waits beyond the log's end, and the producer's retry of the whole
/// batch completes it at the same offsets: the acknowledged offsets stay dense and no record is
/// read twice. The cut is made here by publishing the prefix straight to SMQ while Kelp is down
/// (as a Kelp killed mid-publish leaves it). (The in-memory broker of `core/tests/smq_backend.rs`
/// covers the rest: a cut made by a broken stream, and the prefix read as a gap when another
/// producer's append comes first.)
#[test]
fn a_batch_smq_holds_in_part_is_completed_by_its_retry_at_the_same_offsets() {
    use kelp_core::codec::compression::Compression;
    use kelp_core::codec::record_batch::{BatchHeader, NewRecord, RecordBatch, encode_batch};
    use kelp_core::smq::publish::PublishEvent;
    use kelp_core::smq::record::{ValueFormat, batch_messages};
    use kelp_core::types::Offset;

    let Ok(broker) = std::env::var("KELP_E2E_SMQ") else {
        eprintln!("a_batch_smq_holds_in_part: no KELP_E2E_SMQ broker; nothing to cut");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let kelp = Kelp::start(dir.path(), port);
    let mut c = Client::connect(kelp.addr).unwrap();
    c.create("cut");
    let before: Vec<String> = (0..3).map(|i| format!("a{i}")).collect();
    assert_eq!(c.produce("cut", &before).unwrap(), Some(0));
    kelp.kill9();

    let cut: Vec<String> = (0..5).map(|i| format!("b{i}")).collect();
    let producer = (88, 0, 0);
    let header = BatchHeader {
        base_timestamp: 1,
        max_timestamp: 1,
        producer_id: producer.0,
        producer_epoch: producer.1,
        base_sequence: producer.2,
        ..Default::default()
    };
    let records: Vec<NewRecord> = cut
        .iter()
        .map(|v| NewRecord {
            value: Some(Bytes::from(v.clone())),
            ..Default::default()
        })
        .collect();
    let batch =
        RecordBatch::parse(encode_batch(&header, Compression::None, &records).unwrap()).unwrap();
    let mut messages = Vec::new();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    batch_messages(
        &batch,
        Offset(3),
        0,
        now_ns,
        ValueFormat::Enriched,
        1 << 20,
        &mut messages,
    )
    .unwrap();
    messages.truncate(2);
    let topic = Topic {
        namespace: smq_namespace(dir.path()),
        name: "cut".into(),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stored = rt.block_on(async {
        // weed unloads the killed gateway's partition first (see `--smq-startup-grace-ms`)
        tokio::time::sleep(Duration::from_secs(1)).await;
        publish_at(&broker, topic, 3, messages).await
    });
    assert!(
        matches!(stored, PublishEvent::Stored { .. }),
        "the prefix stored: {stored:?}"
    );

    let kelp = Kelp::start(dir.path(), port);
    let mut c = Client::connect(kelp.addr).unwrap();
    // the producer's retry of the whole batch, then a retry of that (a duplicate)
    assert_eq!(c.produce_as("cut", &cut, producer).unwrap(), Some(3));
    assert_eq!(c.produce_as("cut", &cut, producer).unwrap(), Some(3));
    let expected: Vec<(i64, String)> = before
        .iter()
        .chain(&cut)
        .enumerate()
        .map(|(i, v)| (i as i64, v.clone()))
        .collect();
    assert_eq!(c.fetch_all("cut"), expected);
    drop(kelp);
    // and a restart finds the batch whole, its producer known
    let kelp = Kelp::start(dir.path(), port);
    let mut c = Client::connect(kelp.addr).unwrap();
    assert_eq!(c.produce_as("cut", &cut, producer).unwrap(), Some(3));
    assert_eq!(c.fetch_all("cut"), expected);
    eprintln!("a batch stored in part at 3..5 is completed by its retry at 3..8, once");
}

/// Publishes `messages` straight to partition 0 of `topic` (a topic of one partition), the first
/// at Kafka offset `first`, on a stream of its own; the outcome as the core's session sees it.
async fn publish_at(
    broker: &str,
    topic: Topic,
    first: i64,
    messages: Vec<kelp_core::smq::messaging_pb::DataMessage>,
) -> kelp_core::smq::publish::PublishEvent {
    use kelp_core::smq::mapping::SMQ_OFFSET_BASE;
    use kelp_core::smq::publish::{AppendId, PublishSession};
    let mut c = SeaweedMessagingClient::connect(format!("http://{broker}"))
        .await
        .unwrap();
    let lookup = LookupTopicBrokersRequest {
        topic: Some(topic.clone()),
    };
    let assignments = c
        .lookup_topic_brokers(lookup)
        .await
        .unwrap()
        .into_inner()
        .broker_partition_assignments;
    let a = &assignments[0];
    let mut leader = SeaweedMessagingClient::connect(format!("http://{}", a.leader_broker))
        .await
        .unwrap();
    let mut session = PublishSession::new(topic, a.partition.unwrap(), "test".into(), 16);
    session.push(AppendId(1), Some(first + SMQ_OFFSET_BASE), messages);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    while let Some(m) = session.poll_transmit() {
        tx.send(m).unwrap();
    }
    let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
    let mut responses = leader.publish_message(stream).await.unwrap().into_inner();
    loop {
        if let Some(event) = session.poll_event() {
            return event;
        }
        match responses.message().await {
            Ok(Some(r)) => session.handle_response(r),
            Ok(None) => session.handle_closed("ended".into()),
            Err(e) => session.handle_closed(e.to_string()),
        }
        while let Some(m) = session.poll_transmit() {
            let _ = tx.send(m);
        }
    }
}
