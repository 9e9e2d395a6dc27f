//! The SMQ storage backend ([`SmqBackend`]) against an in-memory SeaweedMQ broker that answers its
//! calls as weed does (offsets assigned in order, one ack per message, a hello on each publish
//! stream), with a simulated clock. It can also misbehave the ways weed does after a crash: lose
//! acknowledged records, store records whose acks never come, refuse streams. Each test checks
//! what a Kafka client would see: completions, the records read back, what a restart restores.
//!
//! The real broker is exercised by the end-to-end suite (`scripts/test.sh`, the SMQ pass); this one
//! makes the recovery paths happen on purpose, deterministically.

use bytes::Bytes;
use kelp_core::broker::Now;
use kelp_core::codec::compression::Compression;
use kelp_core::codec::record_batch::{BatchHeader, Batches, NewRecord, encode_batch};
use kelp_core::smq::backend::{SmqBackend, SmqConfig};
use kelp_core::smq::io::{Call, CallId, Reply, SmqOutput, StreamId, StreamItem};
use kelp_core::smq::mapping::{partition_index, partition_range};
use kelp_core::smq::messaging_pb::publish_message_request::Message as Outgoing;
use kelp_core::smq::messaging_pb::subscribe_message_request::Message as SubscribeInit;
use kelp_core::smq::messaging_pb::{
    BrokerPartitionAssignment, DataMessage, FetchMessageResponse, GetPartitionRangeInfoResponse,
    OffsetRangeInfo, PublishMessageResponse,
};
use kelp_core::smq::schema_pb;
use kelp_core::storage::{
    AppendBatch, RecoveredPartition, StorageCommand, StorageCompletion, StorageToken,
};
use kelp_core::types::{LogPosition, Millis, Offset, TimestampMs, TopicPartition};
use std::collections::{BTreeMap, HashMap, VecDeque};

const LEADER: &str = "127.0.0.1:17777";

/// A partition: its messages, SMQ offset k at index k.
#[derive(Default)]
struct Partition {
    messages: Vec<DataMessage>,
}

enum Event {
    Reply(CallId, Reply),
    Item(StreamId, StreamItem),
}

/// The in-memory broker.
#[derive(Default)]
struct Broker {
    topics: BTreeMap<String, Vec<Partition>>,
    /// Publish streams: topic key and partition.
    publishers: HashMap<StreamId, (String, usize)>,
    /// Subscriptions: topic key, partition, next SMQ offset.
    subscriptions: HashMap<StreamId, (String, usize, usize)>,
    /// What goes back to the backend, in order.
    inbox: VecDeque<Event>,
    /// Fault: messages to these topics are stored but never acknowledged.
    withhold_acks: Vec<String>,
    /// Fault: publish streams are refused.
    refuse_streams: bool,
    /// Fault: a topic's partition stores at most this many messages; publishes beyond are lost
    /// unacknowledged (a publish cut short by a crash).
    store_limit: HashMap<String, usize>,
    /// Calls made, by kind (for the breaker test).
    opens: usize,
    /// Fault: a subscription ends after delivering this many records (as the runtime ends one whose
    /// read-ahead buffer overflows).
    subscription_limit: Option<usize>,
    /// Records each subscription delivered.
    delivered: HashMap<StreamId, usize>,
    /// Subscriptions opened and FetchMessage calls answered.
    subscribes: usize,
    fetches: usize,
}

fn key(topic: &Option<schema_pb::Topic>) -> String {
    topic
        .as_ref()
        .map(|t| format!("{}/{}", t.namespace, t.name))
        .unwrap_or_default()
}

fn index(partition: &Option<schema_pb::Partition>, count: usize) -> usize {
    let start = partition.as_ref().map_or(-1, |p| p.range_start);
    partition_index(start, count as i32).expect("a range Kelp made") as usize
}

impl Broker {
    fn assignments(&self, topic: &str) -> Vec<BrokerPartitionAssignment> {
        let count = self.topics[topic].len() as i32;
        (0..count)
            .map(|i| {
                let (start, stop) = partition_range(i, count).expect("a valid count");
                BrokerPartitionAssignment {
                    partition: Some(schema_pb::Partition {
                        ring_size: 2520,
                        range_start: start,
                        range_stop: stop,
                        unix_time_ns: 1,
                    }),
                    leader_broker: LEADER.into(),
                    follower_broker: String::new(),
                }
            })
            .collect()
    }

    /// Messages partition 0 of `topic` holds.
    fn stored(&self, topic: &str) -> usize {
        self.topics[topic][0].messages.len()
    }

    fn partition(&mut self, topic: &str, p: usize) -> &mut Partition {
        self.topics
            .get_mut(topic)
            .and_then(|t| t.get_mut(p))
            .expect("a partition the backend looked up")
    }

    fn reply(&mut self, id: CallId, reply: Reply) {
        self.inbox.push_back(Event::Reply(id, reply));
    }

    fn call(&mut self, id: CallId, call: Call) {
        match call {
            Call::Probe => self.reply(id, Reply::Leader(LEADER.into())),
            Call::ConfigureTopic(r) => {
                let k = key(&r.topic);
                self.topics.entry(k.clone()).or_insert_with(|| {
                    (0..r.partition_count)
                        .map(|_| Partition::default())
                        .collect()
                });
                let a = self.assignments(&k);
                self.reply(id, Reply::Assignments(a));
            }
            Call::LookupTopicBrokers(r) => {
                let k = key(&r.topic);
                let reply = if self.topics.contains_key(&k) {
                    Reply::Assignments(self.assignments(&k))
                } else {
                    Reply::Failed(format!("NotFound: topic {k}"))
                };
                self.reply(id, reply);
            }
            Call::GetPartitionRangeInfo { request, .. } => {
                let k = key(&request.topic);
                let p = index(&request.partition, self.topics[&k].len());
                let hwm = self.partition(&k, p).messages.len() as i64;
                let info = GetPartitionRangeInfoResponse {
                    offset_range: Some(OffsetRangeInfo {
                        high_water_mark: hwm,
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                self.reply(id, Reply::RangeInfo(info));
            }
            Call::FetchMessage { request, .. } => {
                self.fetches += 1;
                let k = key(&request.topic);
                let p = index(&request.partition, self.topics[&k].len());
                let all = &self.partition(&k, p).messages;
                let start = (request.start_offset.max(0) as usize).min(all.len());
                let end = (start + request.max_messages.max(0) as usize).min(all.len());
                let response = FetchMessageResponse {
                    messages: all[start..end].to_vec(),
                    high_water_mark: all.len() as i64,
                    ..Default::default()
                };
                self.reply(id, Reply::Fetched(response));
            }
            Call::OpenPublish { stream, init, .. } => {
                self.opens += 1;
                if self.refuse_streams {
                    return self.reply(id, Reply::Failed("Unavailable: refused".into()));
                }
                let Some(Outgoing::Init(init)) = init.message else {
                    return self.reply(id, Reply::Failed("no init".into()));
                };
                let k = key(&init.topic);
                let p = index(&init.partition, self.topics[&k].len());
                self.publishers.insert(stream, (k, p));
                self.reply(id, Reply::Opened);
                let hello = StreamItem::Response(PublishMessageResponse::default());
                self.inbox.push_back(Event::Item(stream, hello));
            }
            Call::Publish { stream, request } => {
                let Some((k, p)) = self.publishers.get(&stream).cloned() else {
                    return;
                };
                let Some(Outgoing::Data(m)) = request.message else {
                    return;
                };
                let ts = m.ts_ns;
                let limit = self.store_limit.get(&k).copied();
                let messages = &mut self.partition(&k, p).messages;
                if limit.is_some_and(|l| messages.len() >= l) {
                    return;
                }
                messages.push(m);
                let ack = PublishMessageResponse {
                    ack_ts_ns: ts,
                    assigned_offset: messages.len() as i64 - 1,
                    ..Default::default()
                };
                if !self.withhold_acks.contains(&k) {
                    self.inbox
                        .push_back(Event::Item(stream, StreamItem::Response(ack)));
                }
            }
            Call::Subscribe { stream, init, .. } => {
                let Some(SubscribeInit::Init(init)) = init.message else {
                    return;
                };
                let k = key(&init.topic);
                let at = init.partition_offset.expect("an offset");
                let p = index(&at.partition, self.topics[&k].len());
                self.subscriptions
                    .insert(stream, (k, p, at.start_offset.max(0) as usize));
                self.subscribes += 1;
            }
            Call::Take { stream, max, .. } => {
                let delivered = self.delivered.entry(stream).or_default();
                let left = self.subscription_limit.map_or(max, |l| l - *delivered);
                let Some((k, p, next)) = self.subscriptions.get(&stream).cloned() else {
                    self.reply(id, Reply::Ended);
                    return;
                };
                if left == 0 {
                    self.reply(id, Reply::Ended);
                    return;
                }
                *delivered += max.min(left);
                let all = &self.partition(&k, p).messages;
                let end = (next + max.min(left)).min(all.len());
                let got = all[next.min(end)..end].to_vec();
                self.subscriptions.insert(stream, (k, p, end));
                self.reply(id, Reply::Records(got));
            }
            Call::Close { stream } => {
                if self.publishers.remove(&stream).is_some() {
                    self.inbox
                        .push_back(Event::Item(stream, StreamItem::Ended(Ok(()))));
                }
                self.subscriptions.remove(&stream);
            }
        }
    }

    /// A crash: every publish stream breaks, and the last `lost` messages of `topic`'s partition
    /// `p` are gone (acknowledged but not yet flushed).
    fn crash(&mut self, topic: &str, p: usize, lost: usize) {
        let broken: Vec<StreamId> = self.publishers.drain().map(|(s, _)| s).collect();
        for s in broken {
            let ended = StreamItem::Ended(Err("Unavailable: broker restarting".into()));
            self.inbox.push_back(Event::Item(s, ended));
        }
        let messages = &mut self.partition(topic, p).messages;
        messages.truncate(messages.len() - lost);
    }
}

/// A backend, the broker, and the simulated clock.
struct Sim {
    backend: SmqBackend,
    broker: Broker,
    now: Now,
    restored: Option<Result<Vec<RecoveredPartition>, String>>,
    done: HashMap<StorageToken, StorageCompletion>,
    next_token: u64,
}

fn tp(topic: &str) -> TopicPartition {
    TopicPartition {
        topic: topic.into(),
        partition: 0,
    }
}

impl Sim {
    fn start(broker: Broker) -> Sim {
        let now = Now {
            mono: Millis(0),
            wall: TimestampMs(1_700_000_000_000),
        };
        let backend = SmqBackend::new(SmqConfig::default(), now);
        let mut sim = Sim {
            backend,
            broker,
            now,
            restored: None,
            done: HashMap::new(),
            next_token: 0,
        };
        sim.run_until(|s| s.restored.is_some());
        sim
    }

    fn restored(&mut self) -> Vec<RecoveredPartition> {
        self.restored
            .take()
            .expect("started")
            .expect("restored without error")
    }

    /// Runs until `done` holds: outputs to the broker, its answers back, and when nothing is left
    /// to answer, the clock on to the next deadline (at most 10 simulated minutes in all).
    fn run_until(&mut self, done: impl Fn(&Sim) -> bool) {
        let limit = self.now.mono.plus(600_000);
        loop {
            while let Some(output) = self.backend.poll_output() {
                match output {
                    SmqOutput::Call(id, call) => self.broker.call(id, call),
                    SmqOutput::Completed(token, c) => {
                        assert!(self.done.insert(token, c).is_none(), "completed twice");
                    }
                    SmqOutput::Restored(r) => self.restored = Some(r),
                }
            }
            if done(self) {
                return;
            }
            if let Some(event) = self.broker.inbox.pop_front() {
                match event {
                    Event::Reply(id, r) => self.backend.handle_reply(id, r, self.now),
                    Event::Item(s, item) => self.backend.handle_stream(s, item, self.now),
                }
                continue;
            }
            match self.backend.poll_timeout() {
                Some(at) if at <= limit => {
                    self.now.mono = at.max(self.now.mono);
                    self.now.wall = TimestampMs(1_700_000_000_000 + self.now.mono.0 as i64);
                    self.backend.handle_timeout(self.now);
                }
                _ => panic!("stuck: nothing to answer, no deadline, and not done"),
            }
        }
    }

    /// Delivers what is pending, then lets `ms` pass (a producer's retry backoff).
    fn idle(&mut self, ms: u64) {
        let until = self.now.mono.plus(ms);
        self.run_until(|s| s.broker.inbox.is_empty());
        while let Some(at) = self.backend.poll_timeout().filter(|at| *at <= until) {
            self.now.mono = at.max(self.now.mono);
            self.backend.handle_timeout(self.now);
            self.run_until(|s| s.broker.inbox.is_empty());
        }
        self.now.mono = until;
        self.backend.handle_timeout(self.now);
    }

    /// Submits `command` (its token set here) and runs until it completes.
    fn perform(
        &mut self,
        command: impl FnOnce(StorageToken) -> StorageCommand,
    ) -> StorageCompletion {
        self.next_token += 1;
        let token = StorageToken(self.next_token);
        self.backend.submit(command(token), self.now);
        self.run_until(|s| s.done.contains_key(&token));
        self.done.remove(&token).expect("completed")
    }

    fn create(&mut self, topic: &str) -> StorageCompletion {
        self.perform(|token| StorageCommand::CreatePartition {
            token,
            partition: tp(topic),
            topic_partitions: 1,
        })
    }

    fn append(&mut self, topic: &str, base: i64, values: &[&str]) -> StorageCompletion {
        self.perform(|token| append(token, topic, base, values))
    }

    /// Records `from..end` as a consumer sees them: (offset, value), gaps skipped.
    fn read(&mut self, topic: &str, from: i64, end: i64) -> Vec<(i64, String)> {
        let mut seen = Vec::new();
        let mut at = from;
        while at < end {
            let read = self.perform(|token| StorageCommand::Read {
                token,
                partition: tp(topic),
                offset: Offset(at),
                from: LogPosition::default(),
                max_bytes: 1 << 20,
                end: Offset(end),
            });
            let StorageCompletion::Read { batches } = read else {
                panic!("read at {at}: {read:?}")
            };
            assert!(
                !batches.is_empty(),
                "a read below the end returns something"
            );
            for batch in Batches::new(batches) {
                let batch = batch.expect("a whole batch");
                let base = batch.header().base_offset;
                for r in batch.records(1 << 20).expect("records").iter() {
                    let r = r.expect("a record");
                    let value = String::from_utf8_lossy(r.value.unwrap_or_default()).to_string();
                    seen.push((base + i64::from(r.offset_delta), value));
                }
                at = batch.header().last_offset() + 1;
            }
        }
        seen
    }
}

/// An append of one batch of `values` from a plain (not idempotent) producer, at offset `base`,
/// timestamped `1000 + base`.
fn append(token: StorageToken, topic: &str, base: i64, values: &[&str]) -> StorageCommand {
    produce(token, topic, base, values, None)
}

/// The same from an idempotent producer: (producer id, epoch, first sequence).
fn produce(
    token: StorageToken,
    topic: &str,
    base: i64,
    values: &[&str],
    producer: Option<(i64, i16, i32)>,
) -> StorageCommand {
    let (producer_id, producer_epoch, base_sequence) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<NewRecord> = values
        .iter()
        .map(|v| NewRecord {
            value: Some(Bytes::from(v.to_string())),
            ..Default::default()
        })
        .collect();
    let header = BatchHeader {
        base_timestamp: 1_000 + base,
        max_timestamp: 1_000 + base,
        producer_id,
        producer_epoch,
        base_sequence,
        ..Default::default()
    };
    StorageCommand::Append {
        token,
        partition: tp(topic),
        batches: vec![AppendBatch {
            base_offset: Offset(base),
            bytes: encode_batch(&header, Compression::None, &records).expect("a batch"),
        }],
        sync: true,
    }
}

fn values(pairs: &[(i64, &str)]) -> Vec<(i64, String)> {
    pairs.iter().map(|(o, v)| (*o, v.to_string())).collect()
}

#[test]
fn appends_read_back_and_a_restart_restores_the_partition_from_the_ledger() {
    let mut sim = Sim::start(Broker::default());
    assert_eq!(sim.restored(), Vec::new(), "an empty broker holds nothing");
    assert_eq!(sim.create("t"), StorageCompletion::Done);
    assert!(matches!(
        sim.append("t", 0, &["a", "b", "c"]),
        StorageCompletion::Appended { .. }
    ));
    assert!(matches!(
        sim.append("t", 3, &["d", "e"]),
        StorageCompletion::Appended { .. }
    ));
    let all = values(&[(0, "a"), (1, "b"), (2, "c"), (3, "d"), (4, "e")]);
    assert_eq!(sim.read("t", 0, 5), all, "through the subscription");
    assert_eq!(
        sim.read("t", 3, 5),
        all[3..],
        "from elsewhere: a new subscription"
    );
    let found = sim.perform(|token| StorageCommand::FindByTime {
        token,
        partition: tp("t"),
        timestamp: TimestampMs(1_002),
        from: LogPosition::default(),
        end: Offset(5),
    });
    assert_eq!(
        found,
        StorageCompletion::Found {
            hit: Some((Offset(3), TimestampMs(1_003)))
        }
    );

    let mut restarted = Sim::start(std::mem::take(&mut sim.broker));
    let restored = restarted.restored();
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].partition, tp("t"));
    assert_eq!(restored[0].next_offset, Offset(5));
    assert_eq!(restarted.read("t", 0, 5), all);
    assert!(matches!(
        restarted.append("t", 5, &["f"]),
        StorageCompletion::Appended { .. }
    ));
    assert_eq!(restarted.read("t", 4, 6), values(&[(4, "e"), (5, "f")]));
}

#[test]
fn offsets_a_crashed_broker_lost_become_a_gap_and_the_next_append_lands_at_the_ledgers_offset() {
    let mut sim = Sim::start(Broker::default());
    sim.restored();
    sim.create("t");
    sim.append("t", 0, &["a", "b", "c"]);
    // SMQ offsets: 0 the marker, 1..=3 the records; the crash loses the last two
    sim.broker.crash("kafka/t", 0, 2);
    sim.idle(5_000);
    let appended = sim.append("t", 3, &["d", "e"]);
    assert!(
        matches!(appended, StorageCompletion::Appended { .. }),
        "{appended:?}"
    );
    assert_eq!(
        sim.read("t", 0, 5),
        values(&[(0, "a"), (3, "d"), (4, "e")]),
        "offsets 1 and 2 were acknowledged and lost: a gap, never other records"
    );
}

#[test]
fn records_smq_stored_without_acks_are_adopted_by_the_next_append() {
    let mut sim = Sim::start(Broker::default());
    sim.restored();
    sim.create("t");
    sim.append("t", 0, &["a"]);
    sim.broker.withhold_acks.push("kafka/t".into());
    // the acks never come; the stream breaks with the broker
    sim.backend
        .submit(append(StorageToken(900), "t", 1, &["b"]), sim.now);
    sim.run_until(|s| {
        s.broker.inbox.is_empty() && s.broker.topics["kafka/t"][0].messages.len() == 3
    });
    sim.broker.withhold_acks.clear();
    sim.broker.crash("kafka/t", 0, 0);
    sim.run_until(|s| s.done.contains_key(&StorageToken(900)));
    assert!(
        matches!(sim.done[&StorageToken(900)], StorageCompletion::Failed(_)),
        "not acknowledged: the producer retries"
    );
    // the retry (the ledger still ends at 1) finds SMQ ending at 2: offset 1 is adopted
    sim.idle(5_000);
    let retried = sim.append("t", 1, &["b"]);
    assert_eq!(
        retried,
        StorageCompletion::Diverged {
            position: LogPosition {
                segment: Offset(0),
                byte: 1
            },
            end: Offset(2),
            producers: Vec::new()
        }
    );
    assert_eq!(sim.read("t", 0, 2), values(&[(0, "a"), (1, "b")]));
}

#[test]
fn a_restart_adopts_records_published_but_never_written_to_the_ledger() {
    let mut sim = Sim::start(Broker::default());
    sim.restored();
    sim.create("t");
    sim.append("t", 0, &["a"]);
    // the data is acknowledged, the ledger entry is not: Kelp dies before it answers
    sim.broker
        .withhold_acks
        .push("kafka-system/offset-mappings".into());
    sim.backend
        .submit(append(StorageToken(900), "t", 1, &["b"]), sim.now);
    sim.run_until(|s| {
        s.broker.inbox.is_empty() && s.broker.topics["kafka/t"][0].messages.len() == 3
    });
    assert!(
        !sim.done.contains_key(&StorageToken(900)),
        "not acknowledged"
    );
    let mut broker = std::mem::take(&mut sim.broker);
    drop(sim);
    broker.withhold_acks.clear();
    broker.crash("kafka-system/offset-mappings", 0, 0);
    broker.inbox.clear();
    let mut restarted = Sim::start(broker);
    let restored = restarted.restored();
    assert_eq!(
        restored[0].next_offset,
        Offset(2),
        "the record SMQ holds is part of the log"
    );
    assert_eq!(restarted.read("t", 0, 2), values(&[(0, "a"), (1, "b")]));
}

/// A subscription that ends before its reader is done (the runtime closes one whose read-ahead
/// overflowed, so that the broker is never held back) is reopened where it stopped: every record
/// is read, in order, and none through the slow FetchMessage.
#[test]
fn a_subscription_that_ends_early_is_reopened_where_it_stopped() {
    let mut sim = Sim::start(Broker::default());
    sim.restored();
    sim.create("t");
    let mut expected = Vec::new();
    for b in 0..10i64 {
        let vals: Vec<String> = (0..3).map(|i| format!("v{}", b * 3 + i)).collect();
        let refs: Vec<&str> = vals.iter().map(String::as_str).collect();
        assert!(matches!(
            sim.append("t", b * 3, &refs),
            StorageCompletion::Appended { .. }
        ));
        expected.extend(
            vals.into_iter()
                .enumerate()
                .map(|(i, v)| (b * 3 + i as i64, v)),
        );
    }
    sim.broker.subscription_limit = Some(4);
    assert_eq!(sim.read("t", 0, 30), expected);
    assert_eq!(
        sim.broker.fetches, 0,
        "every read was served by a subscription"
    );
    assert!(
        sim.broker.subscribes >= 30 / 4,
        "{} subscriptions for 30 records, 4 each",
        sim.broker.subscribes
    );
}

#[test]
fn a_broker_refusing_streams_trips_the_breaker_and_appends_fail_fast_until_it_closes() {
    let mut sim = Sim::start(Broker::default());
    sim.restored();
    sim.create("t");
    sim.broker.refuse_streams = true;
    let opens = sim.broker.opens;
    assert!(matches!(
        sim.append("t", 0, &["a"]),
        StorageCompletion::Failed(_)
    ));
    assert_eq!(sim.broker.opens, opens + 1);
    assert!(matches!(
        sim.append("t", 0, &["a"]),
        StorageCompletion::Failed(_)
    ));
    assert_eq!(
        sim.broker.opens,
        opens + 1,
        "the breaker is open: no new attempt"
    );
    sim.broker.refuse_streams = false;
    sim.idle(5_000);
    assert!(matches!(
        sim.append("t", 0, &["a"]),
        StorageCompletion::Appended { .. }
    ));
    assert_eq!(sim.read("t", 0, 1), values(&[(0, "a")]));
}

/// The broker of a Kelp that died while publishing idempotent batch `values` (producer 7, epoch 0,
/// sequence 0) at offset 1, after `a` at 0: SMQ holds only the batch's first `stored` records, and
/// Kelp neither answered the produce nor wrote its ledger entry.
fn died_inside_a_batch(values: &[&str], stored: usize) -> Broker {
    let mut sim = Sim::start(Broker::default());
    sim.restored();
    sim.create("t");
    sim.append("t", 0, &["a"]);
    let held = sim.broker.stored("kafka/t");
    sim.broker.withhold_acks.push("kafka/t".into());
    sim.broker
        .store_limit
        .insert("kafka/t".into(), held + stored);
    sim.backend.submit(
        produce(StorageToken(900), "t", 1, values, Some((7, 0, 0))),
        sim.now,
    );
    sim.idle(1_000);
    assert_eq!(sim.broker.stored("kafka/t"), held + stored);
    assert!(!sim.done.contains_key(&StorageToken(900)), "never answered");
    let mut broker = std::mem::take(&mut sim.broker);
    drop(sim);
    broker.withhold_acks.clear();
    broker.store_limit.clear();
    broker.crash("kafka/t", 0, 0);
    broker.inbox.clear();
    broker
}

/// A crash inside a batch leaves its first records in SMQ. The producer retries the whole batch
/// (its produce was never answered); the restarted Kelp completes the batch at the same offsets,
/// so the acknowledged offsets stay dense and each record is stored once.
#[test]
fn a_batch_cut_short_by_a_crash_is_completed_by_its_retry_at_the_same_offsets() {
    let broker = died_inside_a_batch(&["b", "c", "d"], 1);
    let mut sim = Sim::start(broker);
    let restored = sim.restored();
    assert_eq!(
        restored[0].next_offset,
        Offset(1),
        "the stored part waits beyond the log's end"
    );
    assert_eq!(sim.read("t", 0, 1), values(&[(0, "a")]));
    let before = sim.broker.stored("kafka/t");
    let retried = sim.perform(|token| produce(token, "t", 1, &["b", "c", "d"], Some((7, 0, 0))));
    assert!(
        matches!(retried, StorageCompletion::Appended { .. }),
        "{retried:?}"
    );
    assert_eq!(
        sim.broker.stored("kafka/t"),
        before + 2,
        "only the batch's missing records are published"
    );
    let all = values(&[(0, "a"), (1, "b"), (2, "c"), (3, "d")]);
    assert_eq!(sim.read("t", 0, 4), all);

    let mut again = Sim::start(std::mem::take(&mut sim.broker));
    let restored = again.restored();
    assert_eq!(restored[0].next_offset, Offset(4));
    assert!(
        restored[0].producers.get(7).is_some(),
        "the batch's producer is known: another retry is answered as a duplicate"
    );
    assert_eq!(again.read("t", 0, 4), all);
}

/// When the next append to the partition is not the cut batch's retry, the stored part becomes a
/// gap (never read, never given out again) and the append lands after it.
#[test]
fn a_batch_cut_short_is_adopted_as_a_gap_when_another_append_comes_first() {
    let broker = died_inside_a_batch(&["b", "c", "d"], 2);
    let mut sim = Sim::start(broker);
    assert_eq!(sim.restored()[0].next_offset, Offset(1));
    let other = sim.perform(|token| produce(token, "t", 1, &["x"], Some((8, 0, 0))));
    assert_eq!(
        other,
        StorageCompletion::Diverged {
            position: LogPosition {
                segment: Offset(0),
                byte: 1
            },
            end: Offset(3),
            producers: Vec::new()
        }
    );
    let before = sim.broker.stored("kafka/t");
    assert!(matches!(
        sim.append("t", 3, &["x"]),
        StorageCompletion::Appended { .. }
    ));
    assert_eq!(sim.broker.stored("kafka/t"), before + 1);
    assert_eq!(sim.read("t", 0, 4), values(&[(0, "a"), (3, "x")]));
}

/// A publish stream that breaks inside a batch while Kelp runs: the produce fails, the part SMQ
/// stored is not given to the log, and the retry completes the batch at the same offsets.
#[test]
fn a_batch_cut_short_by_a_broken_stream_is_completed_by_its_retry() {
    let mut sim = Sim::start(Broker::default());
    sim.restored();
    sim.create("t");
    sim.append("t", 0, &["a"]);
    let held = sim.broker.stored("kafka/t");
    sim.broker.store_limit.insert("kafka/t".into(), held + 2);
    sim.backend.submit(
        produce(StorageToken(900), "t", 1, &["b", "c", "d"], Some((7, 0, 0))),
        sim.now,
    );
    sim.run_until(|s| s.broker.inbox.is_empty() && s.broker.stored("kafka/t") == held + 2);
    sim.broker.store_limit.clear();
    sim.broker.crash("kafka/t", 0, 0);
    sim.run_until(|s| s.done.contains_key(&StorageToken(900)));
    assert!(
        matches!(sim.done[&StorageToken(900)], StorageCompletion::Failed(_)),
        "{:?}: no whole batch is stored",
        sim.done[&StorageToken(900)]
    );
    sim.idle(5_000);
    let retried = sim.perform(|token| produce(token, "t", 1, &["b", "c", "d"], Some((7, 0, 0))));
    assert!(
        matches!(retried, StorageCompletion::Appended { .. }),
        "{retried:?}"
    );
    assert_eq!(sim.broker.stored("kafka/t"), held + 3);
    assert_eq!(
        sim.read("t", 0, 4),
        values(&[(0, "a"), (1, "b"), (2, "c"), (3, "d")])
    );
}
