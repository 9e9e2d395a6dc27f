//! Contract test of Kelp's SeaweedMQ gRPC definitions against a real `weed` broker.
//!
//! Needs a `weed` binary: `KELP_WEED_BIN`, or the one `scripts/smq/build-weed.sh` puts in
//! `${KELP_CACHE:-$HOME/.cache/kelp-tests}/weed/<pinned version>/weed`. Without one the test prints
//! `SKIPPED: smq_contract: …` and passes, unless `KELP_E2E_REQUIRE=1` (then it fails).
//!
//! It starts `weed server` (master, volume, filer and MQ broker in one process) in a temp dir, on free
//! loopback ports picked here (every HTTP and gRPC port is passed explicitly, so nothing uses weed's
//! defaults), with telemetry off, waits for `FindBrokerLeader`, then checks ConfigureTopic,
//! LookupTopicBrokers (the partition ranges), pipelined PublishMessage (hello then one ack per record with
//! dense offsets), FetchMessage and GetPartitionRangeInfo. Then, recorded but not asserted, it closes the
//! publish stream (the broker unloads the partition), reads again, publishes once more and reads again;
//! and it kills weed. What it observes goes to stderr (`cargo test -p kelp-proto --test smq_contract --
//! --nocapture` shows it). About 35 s, nearly all of it weed's startup.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kelp_proto::messaging_pb::publish_message_request::{InitMessage, Message};
use kelp_proto::messaging_pb::seaweed_messaging_client::SeaweedMessagingClient;
use kelp_proto::messaging_pb::{
    BrokerPartitionAssignment, ConfigureTopicRequest, DataMessage, FetchMessageRequest,
    FetchMessageResponse, FindBrokerLeaderRequest, GetPartitionRangeInfoRequest,
    GetTopicConfigurationRequest, ListTopicsRequest, LookupTopicBrokersRequest,
    PublishMessageRequest, PublishMessageResponse, TopicExistsRequest,
};
use kelp_proto::schema_pb::{Partition, Topic};
use kelp_proto::{MAX_MESSAGE_BYTES, RING_SIZE};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

/// Must match `PINNED_VERSION` in scripts/smq/build-weed.sh.
const WEED_VERSION: &str = "v0.0.0-20261109003541-7506e5f91cd6";
const HOW_TO_BUILD: &str = "build weed with scripts/smq/build-weed.sh (needs Go and the module proxy) or set KELP_WEED_BIN";
/// Bound on the whole test, startup included.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

type Client = SeaweedMessagingClient<Channel>;

fn weed_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KELP_WEED_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let cache = std::env::var_os("KELP_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kelp-tests")))?;
    Some(cache.join("weed").join(WEED_VERSION).join("weed")).filter(|p| p.is_file())
}

/// Free loopback ports, all held until every one is picked so none repeats.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The running `weed server`; killed (and reaped) when dropped, also on a panic.
struct Weed {
    child: Child,
    log: PathBuf,
    broker: String,
    /// gRPC unix sockets weed creates in /tmp whatever the flags (a SIGKILL leaves them behind).
    sockets: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Weed {
    fn start(bin: &PathBuf) -> Weed {
        let dir = tempfile::Builder::new()
            .prefix("kelp-smq-contract-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let log = dir.path().join("weed.log");
        let p = free_ports(7);
        let args = [
            "server".to_string(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-master.peers=none".into(),
            format!("-master.port={}", p[0]),
            format!("-master.port.grpc={}", p[1]),
            format!("-volume.port={}", p[2]),
            format!("-volume.port.grpc={}", p[3]),
            format!("-filer.port={}", p[4]),
            format!("-filer.port.grpc={}", p[5]),
            format!(
                "-filer.localSocket={}",
                dir.path().join("filer.sock").display()
            ),
            "-filer".into(),
            "-mq.broker".into(),
            format!("-mq.broker.port={}", p[6]),
            // Never report anywhere: nothing may leave the machine.
            "-master.telemetry=false".into(),
        ];
        let out = std::fs::File::create(&log).expect("weed.log");
        let child = Command::new(bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        eprintln!("weed: pid {} args {}", child.id(), args.join(" "));
        Weed {
            child,
            log,
            broker: format!("127.0.0.1:{}", p[6]),
            sockets: [("master", p[1]), ("volume", p[3]), ("filer", p[5])]
                .iter()
                .map(|(svc, port)| PathBuf::from(format!("/tmp/seaweedfs-{svc}-grpc-{port}.sock")))
                .collect(),
            _dir: dir,
        }
    }

    fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "weed exited early ({status}); log tail:\n{}",
                self.log_tail()
            );
        }
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
        if std::thread::panicking() {
            eprintln!("weed log tail:\n{}", self.log_tail());
        }
    }
}

/// A client as Kelp should configure it: large decode limit, no HTTP/2 keep-alive pings (the broker
/// disconnects clients that ping more often than every 20 s), bounded connect and call times.
async fn connect(addr: &str) -> Result<Client, tonic::transport::Error> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .timeout(RPC_TIMEOUT)
        .connect()
        .await?;
    Ok(SeaweedMessagingClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

async fn wait_for_leader(weed: &mut Weed) -> String {
    let started = Instant::now();
    let deadline = started + READY_TIMEOUT;
    let mut prev = String::new();
    loop {
        weed.check_alive();
        let last = match connect(&weed.broker).await {
            Ok(mut c) => match c
                .find_broker_leader(FindBrokerLeaderRequest::default())
                .await
            {
                // The filer can name the balancer lock's owner a moment before the broker itself knows
                // it; until then control-plane calls fail with "dial tcp: missing address".
                Ok(r) if !r.get_ref().broker.is_empty() => {
                    match c.list_topics(ListTopicsRequest {}).await {
                        Ok(_) => return r.into_inner().broker,
                        Err(s) => format!(
                            "leader {} but ListTopics: {:?}: {}",
                            r.get_ref().broker,
                            s.code(),
                            s.message()
                        ),
                    }
                }
                Ok(_) => "empty broker".to_string(),
                Err(s) => format!("{:?}: {}", s.code(), s.message()),
            },
            Err(e) => format!("connect: {e}"),
        };
        if last != prev {
            eprintln!("waiting for the broker ({:?}): {last}", started.elapsed());
        }
        if Instant::now() >= deadline {
            panic!(
                "no broker leader after {READY_TIMEOUT:?} (last: {last}); log tail:\n{}",
                weed.log_tail()
            );
        }
        prev = last;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn range(a: &BrokerPartitionAssignment) -> (i32, i32, i32) {
    let p = a.partition.as_ref().expect("assignment without partition");
    (p.ring_size, p.range_start, p.range_stop)
}

#[test]
fn smq_contract() {
    let Some(bin) = weed_binary() else {
        if std::env::var("KELP_E2E_REQUIRE").as_deref() == Ok("1") {
            panic!("smq_contract: no weed binary and KELP_E2E_REQUIRE=1: {HOW_TO_BUILD}");
        }
        // Straight to stderr, past the test harness's capture, so a skip is always visible.
        let _ = writeln!(std::io::stderr(), "SKIPPED: smq_contract: {HOW_TO_BUILD}");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut weed = Weed::start(&bin);
    rt.block_on(async {
        tokio::time::timeout(TEST_TIMEOUT, contract(&mut weed))
            .await
            .unwrap_or_else(|_| panic!("smq_contract: timed out after {TEST_TIMEOUT:?}"))
    });
    drop(weed);
}

async fn contract(weed: &mut Weed) {
    let started = Instant::now();
    let leader = wait_for_leader(weed).await;
    eprintln!("FindBrokerLeader: {leader:?} after {:?}", started.elapsed());
    assert_eq!(leader, weed.broker, "a single broker leads itself");
    let mut c = connect(&weed.broker).await.expect("connect to broker");

    // ConfigureTopic: a fresh topic with 3 partitions.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let topic = Topic {
        namespace: "kafka".into(),
        name: format!("contract-{}-{nanos}", std::process::id()),
    };
    let configured = c
        .configure_topic(ConfigureTopicRequest {
            topic: Some(topic.clone()),
            partition_count: 3,
            ..Default::default()
        })
        .await
        .expect("ConfigureTopic")
        .into_inner();
    eprintln!("ConfigureTopic: {configured:?}");
    assert_eq!(configured.broker_partition_assignments.len(), 3);

    let exists = c
        .topic_exists(TopicExistsRequest {
            topic: Some(topic.clone()),
        })
        .await
        .expect("TopicExists");
    assert!(exists.get_ref().exists, "TopicExists after ConfigureTopic");
    let listed = c
        .list_topics(ListTopicsRequest {})
        .await
        .expect("ListTopics")
        .into_inner();
    assert!(
        listed.topics.contains(&topic),
        "ListTopics lists the new topic: {listed:?}"
    );

    // LookupTopicBrokers: three ranges covering the 2520-slot ring.
    let looked_up = c
        .lookup_topic_brokers(LookupTopicBrokersRequest {
            topic: Some(topic.clone()),
        })
        .await
        .expect("LookupTopicBrokers")
        .into_inner();
    eprintln!("LookupTopicBrokers: {looked_up:?}");
    assert_eq!(looked_up.topic.as_ref(), Some(&topic));
    let mut assignments = looked_up.broker_partition_assignments.clone();
    assignments.sort_by_key(|a| range(a).1);
    let ranges: Vec<(i32, i32, i32)> = assignments.iter().map(range).collect();
    eprintln!("partition ranges (ring_size, start, stop): {ranges:?}");
    assert_eq!(
        ranges,
        vec![
            (RING_SIZE, 0, 840),
            (RING_SIZE, 840, 1680),
            (RING_SIZE, 1680, 2520)
        ],
        "3 partitions split the ring evenly"
    );
    for a in &assignments {
        assert_eq!(
            a.leader_broker, weed.broker,
            "the only broker leads every partition"
        );
    }
    let generation = assignments[0].partition.as_ref().unwrap().unix_time_ns;
    assert!(
        assignments
            .iter()
            .all(|a| a.partition.as_ref().unwrap().unix_time_ns == generation)
    );

    let conf = c
        .get_topic_configuration(GetTopicConfigurationRequest {
            topic: Some(topic.clone()),
        })
        .await
        .expect("GetTopicConfiguration")
        .into_inner();
    eprintln!(
        "GetTopicConfiguration: partition_count {} created_at_ns {} last_updated_ns {} retention {:?} \
         assignments {}",
        conf.partition_count,
        conf.created_at_ns,
        conf.last_updated_ns,
        conf.retention,
        conf.broker_partition_assignments.len()
    );
    assert_eq!(conf.partition_count, 3);

    // PublishMessage on partition 0, at its leader: send init and 10 records without waiting, then read
    // the hello and the 10 acks.
    let p0: Partition = assignments[0].partition.unwrap();
    let mut pc = connect(&assignments[0].leader_broker)
        .await
        .expect("connect to partition leader");
    let base_ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let records: Vec<DataMessage> = (0..10).map(|i| record(i, base_ts)).collect();
    let (tx, mut acks) = publish(&mut pc, &topic, &p0, &records).await;
    for (i, r) in records.iter().enumerate() {
        let ack = acks
            .message()
            .await
            .expect("ack")
            .unwrap_or_else(|| panic!("stream ended before ack {i}"));
        assert!(
            ack.error.is_empty() && ack.error_code == 0,
            "ack {i} carries an error: {ack:?}"
        );
        assert_eq!(ack.assigned_offset, i as i64, "ack {i}: {ack:?}");
        assert_eq!(ack.ack_ts_ns, r.ts_ns, "ack {i} echoes the record's ts_ns");
    }
    eprintln!(
        "PublishMessage: 10 acks, assigned_offset 0..9 in order, ack_ts_ns = each record's ts_ns"
    );

    // FetchMessage while the publish stream is still open.
    let fetch = |start_offset: i64| FetchMessageRequest {
        topic: Some(topic.clone()),
        partition: Some(p0),
        start_offset,
        max_bytes: 1 << 20,
        max_messages: 100,
        max_wait_ms: 0,
        min_bytes: 0,
        consumer_group: "kelp-contract".into(),
        consumer_id: "kelp-contract-1".into(),
    };
    let fetched = pc
        .fetch_message(fetch(0))
        .await
        .expect("FetchMessage(0)")
        .into_inner();
    describe_fetch("FetchMessage(0)", &fetched);
    assert!(
        fetched.error.is_empty() && fetched.error_code == 0,
        "{fetched:?}"
    );
    assert_eq!(fetched.messages.len(), 10);
    for (i, (got, sent)) in fetched.messages.iter().zip(&records).enumerate() {
        assert_eq!(
            (&got.key, &got.value, got.ts_ns),
            (&sent.key, &sent.value, sent.ts_ns),
            "message {i}"
        );
    }
    assert_eq!(
        (
            fetched.next_offset,
            fetched.high_water_mark,
            fetched.log_start_offset
        ),
        (10, 10, 0)
    );

    let tail = pc
        .fetch_message(fetch(5))
        .await
        .expect("FetchMessage(5)")
        .into_inner();
    describe_fetch("FetchMessage(5)", &tail);
    assert_eq!(tail.messages.len(), 5);
    assert_eq!(tail.messages[0].value, records[5].value);
    assert_eq!((tail.next_offset, tail.high_water_mark), (10, 10));

    let at_end = pc
        .fetch_message(fetch(10))
        .await
        .expect("FetchMessage(10)")
        .into_inner();
    describe_fetch("FetchMessage(10)", &at_end);
    assert!(
        at_end.messages.is_empty() && at_end.error.is_empty(),
        "{at_end:?}"
    );
    assert_eq!((at_end.next_offset, at_end.high_water_mark), (10, 10));

    let range_info = GetPartitionRangeInfoRequest {
        topic: Some(topic.clone()),
        partition: Some(p0),
    };
    let info = c
        .get_partition_range_info(range_info.clone())
        .await
        .expect("GetPartitionRangeInfo")
        .into_inner();
    eprintln!("GetPartitionRangeInfo: {info:?}");
    assert!(info.error.is_empty(), "{info:?}");
    let offsets = info.offset_range.expect("offset_range");
    assert_eq!(
        (
            offsets.earliest_offset,
            offsets.latest_offset,
            offsets.high_water_mark
        ),
        (0, 9, 10)
    );
    assert_eq!(info.record_count, 10);

    // What follows is recorded, not asserted: the broker unloads a partition when its last publisher
    // goes (flushing it to the filer first) and reloads it on the next call.
    drop(tx);
    let rest = acks.message().await;
    eprintln!("after closing the publish stream, the broker's side ends with: {rest:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    observe_fetch(
        &mut pc,
        "FetchMessage(0) after the publisher left",
        fetch(0),
    )
    .await;
    observe_range(
        &mut c,
        "GetPartitionRangeInfo after the publisher left",
        range_info.clone(),
    )
    .await;

    // A second publisher on the same partition: which offset does the broker hand out next?
    let more = vec![record(10, base_ts)];
    let (tx2, mut acks2) = publish(&mut pc, &topic, &p0, &more).await;
    match acks2.message().await {
        Ok(Some(ack)) => {
            eprintln!("second publisher's first ack: {ack:?} (10 would continue the partition)")
        }
        other => eprintln!("second publisher's first ack: {other:?}"),
    }
    observe_fetch(
        &mut pc,
        "FetchMessage(0) with the second publisher open",
        fetch(0),
    )
    .await;
    observe_fetch(
        &mut pc,
        "FetchMessage(10) with the second publisher open",
        fetch(10),
    )
    .await;
    observe_range(
        &mut c,
        "GetPartitionRangeInfo with the second publisher open",
        range_info,
    )
    .await;
    drop(tx2);
    let _ = acks2.message().await;

    weed.check_alive();
    eprintln!("smq_contract: done in {:?}", started.elapsed());
}

fn record(i: i64, base_ts: i64) -> DataMessage {
    DataMessage {
        key: format!("key-{i}").into_bytes().into(),
        value: format!("value-{i}").into_bytes().into(),
        ts_ns: base_ts + i,
        ctrl: None,
    }
}

/// Opens a publish stream on `partition`, sends `init` and all `records` before reading anything, then
/// reads and checks the broker's hello. Returns the sender (dropping it closes the stream) and the acks.
async fn publish(
    pc: &mut Client,
    topic: &Topic,
    partition: &Partition,
    records: &[DataMessage],
) -> (
    tokio::sync::mpsc::Sender<PublishMessageRequest>,
    tonic::Streaming<PublishMessageResponse>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<PublishMessageRequest>(records.len() + 1);
    let init = InitMessage {
        topic: Some(topic.clone()),
        partition: Some(*partition),
        ack_interval: 1,
        // Not the follower LookupTopicBrokers reports (with one broker, that is the leader itself).
        follower_broker: String::new(),
        publisher_name: "kelp-contract".into(),
    };
    tx.send(PublishMessageRequest {
        message: Some(Message::Init(init)),
    })
    .await
    .unwrap();
    for r in records {
        tx.send(PublishMessageRequest {
            message: Some(Message::Data(r.clone())),
        })
        .await
        .unwrap();
    }
    let mut acks = pc
        .publish_message(ReceiverStream::new(rx))
        .await
        .expect("PublishMessage")
        .into_inner();
    let hello = acks
        .message()
        .await
        .expect("hello")
        .expect("stream ended before the hello");
    eprintln!("PublishMessage hello: {hello:?}");
    assert!(
        hello.error.is_empty() && hello.error_code == 0,
        "hello carries an error: {hello:?}"
    );
    (tx, acks)
}

fn describe_fetch(label: &str, r: &FetchMessageResponse) {
    let values: Vec<String> = r
        .messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.value).into_owned())
        .collect();
    eprintln!(
        "{label}: {} messages {values:?}, high_water_mark {}, log_start_offset {}, end_of_partition {}, \
         next_offset {}, error {:?} ({})",
        r.messages.len(),
        r.high_water_mark,
        r.log_start_offset,
        r.end_of_partition,
        r.next_offset,
        r.error,
        r.error_code
    );
}

async fn observe_fetch(pc: &mut Client, label: &str, req: FetchMessageRequest) {
    match pc.fetch_message(req).await {
        Ok(r) => describe_fetch(label, r.get_ref()),
        Err(s) => eprintln!("{label}: {:?}: {}", s.code(), s.message()),
    }
}

async fn observe_range(c: &mut Client, label: &str, req: GetPartitionRangeInfoRequest) {
    match c.get_partition_range_info(req).await {
        Ok(r) => eprintln!("{label}: {:?}", r.get_ref()),
        Err(s) => eprintln!("{label}: {:?}: {}", s.code(), s.message()),
    }
}
