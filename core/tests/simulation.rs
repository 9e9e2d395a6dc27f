//! Deterministic simulation of the sans-IO gateway: one seed drives three simulated connections
//! (requests cut into random pieces), a simulated clock, and a storage that fails appends, delays
//! completions and delivers them in any order its contract allows. After every step the invariants
//! hold: every request is answered exactly once and in order, no offset is acknowledged twice, a
//! fetch never shows a record other than the one acknowledged at its offset, a committed offset
//! never goes back. At the end, with everything delivered: offsets are dense and every acknowledged
//! record is there.
//!
//! `KELP_SIM_SEEDS=N` runs seeds 0..N (default 2000); `KELP_SIM_SEED=S` runs seed S alone (a failure
//! names its seed).

use bytes::{Bytes, BytesMut};
use kelp_core::api::fetch::FetchRequest;
use kelp_core::api::fetch::request::{FetchPartition, FetchTopic};
use kelp_core::api::offset_commit::OffsetCommitRequest;
use kelp_core::api::offset_commit::request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kelp_core::api::offset_fetch::OffsetFetchRequest;
use kelp_core::api::offset_fetch::request::OffsetFetchRequestGroup;
use kelp_core::api::produce::ProduceRequest;
use kelp_core::api::produce::request::{PartitionProduceData, TopicProduceData};
use kelp_core::api::{ApiKey, RequestBody, ResponseBody, create_topics};
use kelp_core::broker::{Config, Gateway, Input, Now, Output};
use kelp_core::codec::compression::Compression;
use kelp_core::codec::header::{Request, RequestHeader, Response};
use kelp_core::codec::record_batch::{BatchHeader, Batches, NewRecord, encode_batch};
use kelp_core::codec::{KStr, encode_frame};
use kelp_core::storage::memory::MemoryStorage;
use kelp_core::storage::{StorageCommand, StorageCompletion, StorageError};
use kelp_core::types::{ConnectionId, Millis, TimestampMs};
use std::collections::{BTreeMap, VecDeque};

const PARTITIONS: i32 = 3;
const CONNECTIONS: u64 = 3;
const STEPS: usize = 400;

/// splitmix64: small, seedable, good enough to pick actions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What a sent request was, to check its answer.
enum Sent {
    Create,
    Produce {
        partition: i32,
        values: Vec<String>,
    },
    Fetch {
        partition: i32,
    },
    Commit {
        partition: i32,
        offset: i64,
    },
    /// With the commits acknowledged before it was sent: it must see at least those.
    OffsetFetch(BTreeMap<i32, i64>),
}

struct Conn {
    id: ConnectionId,
    /// Request bytes not yet delivered to the gateway.
    outbound: BytesMut,
    /// Requests sent and not yet answered, in order (acks=0 produces are not answered).
    waiting: VecDeque<(i32, ApiKey, i16, Sent)>,
    next_corr: i32,
}

struct World {
    seed: u64,
    rng: Rng,
    gw: Gateway,
    now: Now,
    storage: MemoryStorage,
    /// Storage commands not yet performed, in emission order.
    pending: Vec<StorageCommand>,
    conns: Vec<Conn>,
    /// (partition, offset) -> value acknowledged there.
    acked: BTreeMap<(i32, i64), String>,
    /// Per partition: a commit in flight, and the last acknowledged commit.
    committing: BTreeMap<i32, i64>,
    committed: BTreeMap<i32, i64>,
    next_commit: i64,
    next_value: u64,
    created: bool,
    steps: usize,
}

impl World {
    fn new(seed: u64) -> World {
        let now = Now {
            mono: Millis(0),
            wall: TimestampMs(1_800_000_000_000),
        };
        let config = Config {
            group_initial_rebalance_delay_ms: 0,
            ..Config::default()
        };
        let mut w = World {
            seed,
            rng: Rng(seed),
            gw: Gateway::new(config, Vec::new(), now),
            now,
            storage: MemoryStorage::new(),
            pending: Vec::new(),
            conns: Vec::new(),
            acked: BTreeMap::new(),
            committing: BTreeMap::new(),
            committed: BTreeMap::new(),
            next_commit: 1,
            next_value: 0,
            created: false,
            steps: 0,
        };
        for i in 0..CONNECTIONS {
            let id = ConnectionId(i + 1);
            w.input(Input::Connected(id, KStr::from_static("/127.0.0.1")));
            w.conns.push(Conn {
                id,
                outbound: BytesMut::new(),
                waiting: VecDeque::new(),
                next_corr: 0,
            });
        }
        w
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "seed {} step {}: {what} (rerun: KELP_SIM_SEED={} cargo test -p kelp-core --test simulation)",
            self.seed, self.steps, self.seed
        )
    }

    fn input(&mut self, input: Input) {
        if let Err(e) = self.gw.handle_input(input, self.now) {
            self.fail(&format!("driver error {e}"));
        }
        while let Some(out) = self.gw.poll_output() {
            match out {
                Output::Transmit(conn, frame) => self.answer(conn, frame.to_bytes()),
                Output::Close(conn) => self.fail(&format!("connection {conn} closed")),
                Output::Storage(cmd) => self.pending.push(cmd),
            }
        }
    }

    fn send(&mut self, c: usize, version: i16, body: RequestBody, sent: Sent, answered: bool) {
        let conn = &mut self.conns[c];
        conn.next_corr += 1;
        let api = body.api_key();
        let request = Request {
            header: RequestHeader {
                api_key: api.code(),
                api_version: version,
                correlation_id: conn.next_corr,
                client_id: Some("sim".into()),
                unknown_tagged_fields: Vec::new(),
            },
            body,
        };
        encode_frame(&mut conn.outbound, |b| request.encode(b)).expect("encodes");
        if answered {
            conn.waiting.push_back((conn.next_corr, api, version, sent));
        }
    }

    fn produce(&mut self, c: usize) {
        let partition = self.rng.below(PARTITIONS as u64) as i32;
        let n = 1 + self.rng.below(4) as usize;
        let values: Vec<String> = (0..n)
            .map(|_| {
                self.next_value += 1;
                format!("v{}", self.next_value)
            })
            .collect();
        let records: Vec<NewRecord> = values
            .iter()
            .map(|v| NewRecord {
                value: Some(Bytes::from(v.clone())),
                ..Default::default()
            })
            .collect();
        let header = BatchHeader {
            base_timestamp: self.now.wall.0,
            max_timestamp: self.now.wall.0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            ..BatchHeader::default()
        };
        let batch = encode_batch(&header, Compression::None, &records).expect("batch");
        let acks = [-1i16, 1, 0][self.rng.below(3) as usize];
        let body = ProduceRequest {
            acks,
            timeout_ms: 30_000,
            topic_data: vec![TopicProduceData {
                name: "sim".into(),
                partition_data: vec![PartitionProduceData {
                    index: partition,
                    records: Some(batch),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let sent = Sent::Produce { partition, values };
        self.send(c, 9, RequestBody::Produce(body), sent, acks != 0);
    }

    fn fetch(&mut self, c: usize) {
        let partition = self.rng.below(PARTITIONS as u64) as i32;
        let known = self
            .acked
            .keys()
            .filter(|(p, _)| *p == partition)
            .map(|(_, o)| *o + 1)
            .max()
            .unwrap_or(0);
        let offset = self.rng.below(known as u64 + 1) as i64;
        let wait = self.rng.below(100) as i32;
        let body = fetch_request(partition, offset, wait, 1 + self.rng.below(4096) as i32);
        self.send(
            c,
            12,
            RequestBody::Fetch(body),
            Sent::Fetch { partition },
            true,
        );
    }

    fn commit(&mut self, c: usize) {
        let partition = self.rng.below(PARTITIONS as u64) as i32;
        if self.committing.contains_key(&partition) {
            return;
        }
        self.next_commit += 1 + self.rng.below(5) as i64;
        let offset = self.next_commit;
        self.committing.insert(partition, offset);
        let body = OffsetCommitRequest {
            group_id: "g".into(),
            generation_id_or_member_epoch: -1,
            member_id: "".into(),
            topics: vec![OffsetCommitRequestTopic {
                name: "sim".into(),
                partitions: vec![OffsetCommitRequestPartition {
                    partition_index: partition,
                    committed_offset: offset,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let sent = Sent::Commit { partition, offset };
        self.send(c, 9, RequestBody::OffsetCommit(body), sent, true);
    }

    fn offset_fetch(&mut self, c: usize) {
        let body = OffsetFetchRequest {
            groups: vec![OffsetFetchRequestGroup {
                group_id: "g".into(),
                topics: None,
                ..Default::default()
            }],
            ..Default::default()
        };
        let before = Sent::OffsetFetch(self.committed.clone());
        self.send(c, 9, RequestBody::OffsetFetch(body), before, true);
    }

    /// A response frame on `conn`: the next awaited request's, checked.
    fn answer(&mut self, conn: ConnectionId, frame: Bytes) {
        let c = (conn.0 - 1) as usize;
        let Some((corr, api, version, sent)) = self.conns[c].waiting.pop_front() else {
            self.fail(&format!("an answer nobody waits for on {conn}"));
        };
        let response = match Response::decode(&frame.slice(4..), api, version) {
            Ok(r) => r,
            Err(e) => self.fail(&format!("undecodable {api:?} answer: {e}")),
        };
        if response.header.correlation_id != corr {
            self.fail(&format!(
                "answer to {} where {corr} was next",
                response.header.correlation_id
            ));
        }
        match (sent, response.body) {
            (Sent::Create, ResponseBody::CreateTopics(r)) => {
                if r.topics[0].error_code != 0 {
                    self.fail("topic not created");
                }
                self.created = true;
            }
            (Sent::Produce { partition, values }, ResponseBody::Produce(r)) => {
                let p = &r.responses[0].partition_responses[0];
                if p.error_code == 0 {
                    for (i, v) in values.into_iter().enumerate() {
                        let at = (partition, p.base_offset + i as i64);
                        if self.acked.insert(at, v).is_some() {
                            self.fail(&format!("offset {at:?} acknowledged twice"));
                        }
                    }
                }
            }
            (Sent::Fetch { partition }, ResponseBody::Fetch(r)) => {
                let p = &r.responses[0].partitions[0];
                let mut last = -1;
                for batch in Batches::new(p.records.clone().unwrap_or_default()) {
                    let Ok(batch) = batch else {
                        self.fail("a fetched batch does not parse")
                    };
                    let base = batch.header().base_offset;
                    let Ok(records) = batch.records(1 << 20) else {
                        self.fail("fetched records do not parse")
                    };
                    for rec in records.iter() {
                        let Ok(rec) = rec else {
                            self.fail("a record does not parse")
                        };
                        let offset = base + i64::from(rec.offset_delta);
                        let value = String::from_utf8_lossy(rec.value.unwrap_or_default());
                        if offset <= last || offset >= p.high_watermark {
                            self.fail(&format!(
                                "fetched offset {offset} out of order or past the high watermark"
                            ));
                        }
                        last = offset;
                        if let Some(v) = self.acked.get(&(partition, offset))
                            && *v != value
                        {
                            self.fail(&format!(
                                "offset {offset}: {value} where {v} was acknowledged"
                            ));
                        }
                    }
                }
            }
            (Sent::Commit { partition, offset }, ResponseBody::OffsetCommit(r)) => {
                self.committing.remove(&partition);
                if r.topics[0].partitions[0].error_code == 0 {
                    self.committed.insert(partition, offset);
                }
            }
            (Sent::OffsetFetch(before), ResponseBody::OffsetFetch(r)) => {
                let g = &r.groups[0];
                if g.error_code == 0 {
                    let seen: BTreeMap<i32, i64> = g
                        .topics
                        .iter()
                        .flat_map(|t| t.partitions.iter())
                        .map(|p| (p.partition_index, p.committed_offset))
                        .collect();
                    for (p, acked) in before {
                        if seen.get(&p).copied().unwrap_or(-1) < acked {
                            self.fail(&format!(
                                "partition {p}: committed {acked}, fetched {seen:?}"
                            ));
                        }
                    }
                }
            }
            (_, body) => self.fail(&format!("unexpected answer {:?}", body.api_key())),
        }
    }

    /// Performs one pending storage command, in an order the storage contract allows: a command that
    /// changes a partition's log only after those emitted before it for that partition.
    fn complete_one(&mut self, fail_appends: bool) {
        let eligible: Vec<usize> = (0..self.pending.len())
            .filter(|&i| {
                let cmd = &self.pending[i];
                let Some(tp) = mutated(cmd) else { return true };
                !self.pending[..i].iter().any(|c| mutated(c) == Some(tp))
            })
            .collect();
        if eligible.is_empty() {
            return;
        }
        let cmd = self
            .pending
            .remove(eligible[self.rng.below(eligible.len() as u64) as usize]);
        let done = match &cmd {
            StorageCommand::Append { .. } if fail_appends && self.rng.chance(15) => {
                StorageCompletion::Failed(StorageError::Io("simulated".into()))
            }
            _ => self.storage.perform(&cmd),
        };
        self.input(Input::Storage(cmd.token(), done));
    }

    fn deliver(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        if conn.outbound.is_empty() {
            return;
        }
        let n = 1 + self.rng.below(conn.outbound.len() as u64) as usize;
        let chunk = conn.outbound.split_to(n).freeze();
        let id = conn.id;
        self.input(Input::Received(id, chunk));
    }

    fn step(&mut self) {
        self.steps += 1;
        let c = self.rng.below(CONNECTIONS) as usize;
        match self.rng.below(100) {
            _ if !self.created => {}
            0..=19 => self.produce(c),
            20..=29 => self.fetch(c),
            30..=34 => self.commit(c),
            35..=37 => self.offset_fetch(c),
            38..=64 => self.deliver(c),
            65..=89 => self.complete_one(true),
            _ => {
                self.now.mono = self.now.mono.plus(self.rng.below(60));
                self.input(Input::Tick);
            }
        }
        if !self.created {
            self.deliver(c);
            self.complete_one(false);
        }
    }

    /// Delivers everything and lets time pass until nothing is waiting.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            for c in 0..self.conns.len() {
                while !self.conns[c].outbound.is_empty() {
                    let chunk = self.conns[c].outbound.split().freeze();
                    let id = self.conns[c].id;
                    self.input(Input::Received(id, chunk));
                }
            }
            if !self.pending.is_empty() {
                self.complete_one(false);
                continue;
            }
            if self.conns.iter().all(|c| c.waiting.is_empty()) {
                return;
            }
            self.now.mono = self.now.mono.plus(100);
            self.input(Input::Tick);
        }
        self.fail("requests still unanswered after settling");
    }

    fn check_final(&mut self) {
        for partition in 0..PARTITIONS {
            // read the whole partition through Fetch
            let mut at = 0;
            let mut stored = Vec::new();
            loop {
                let body = fetch_request(partition, at, 0, 1 << 20);
                self.send(
                    0,
                    12,
                    RequestBody::Fetch(body),
                    Sent::Fetch { partition },
                    false,
                );
                let before = self.conns[0].next_corr;
                let frame = self.fetch_frame();
                let Ok(r) = Response::decode(&frame.slice(4..), ApiKey::Fetch, 12) else {
                    self.fail("final fetch undecodable")
                };
                assert_eq!(r.header.correlation_id, before);
                let ResponseBody::Fetch(r) = r.body else {
                    unreachable!()
                };
                let p = &r.responses[0].partitions[0];
                let mut n = 0;
                for batch in Batches::new(p.records.clone().unwrap_or_default()) {
                    let batch = batch.expect("batch");
                    let base = batch.header().base_offset;
                    for rec in batch.records(1 << 20).expect("records").iter() {
                        let rec = rec.expect("record");
                        let offset = base + i64::from(rec.offset_delta);
                        if offset >= at {
                            stored.push((
                                offset,
                                String::from_utf8_lossy(rec.value.unwrap_or_default()).into_owned(),
                            ));
                            n += 1;
                        }
                    }
                }
                at += n;
                if n == 0 || at >= p.high_watermark {
                    break;
                }
            }
            for (i, (offset, _)) in stored.iter().enumerate() {
                if *offset != i as i64 {
                    self.fail(&format!(
                        "partition {partition}: offsets not dense at {offset}"
                    ));
                }
            }
            for ((p, offset), v) in &self.acked {
                if *p == partition && stored.get(*offset as usize).map(|s| &s.1) != Some(v) {
                    self.fail(&format!(
                        "partition {p}: acknowledged {v} at {offset} is gone"
                    ));
                }
            }
            let mut values: Vec<&String> = stored.iter().map(|s| &s.1).collect();
            values.sort();
            values.dedup();
            if values.len() != stored.len() {
                self.fail(&format!("partition {partition}: a record stored twice"));
            }
        }
    }

    /// Delivers connection 0's bytes and returns the next transmitted frame (for the final reads,
    /// which are not in `waiting`).
    fn fetch_frame(&mut self) -> Bytes {
        let chunk = self.conns[0].outbound.split().freeze();
        self.gw
            .handle_input(Input::Received(self.conns[0].id, chunk), self.now)
            .expect("input");
        let mut frame = None;
        while let Some(out) = self.gw.poll_output() {
            match out {
                Output::Transmit(_, out) => frame = Some(out.to_bytes()),
                Output::Storage(cmd) => {
                    let done = self.storage.perform(&cmd);
                    self.gw
                        .handle_input(Input::Storage(cmd.token(), done), self.now)
                        .expect("completion");
                }
                Output::Close(_) => self.fail("closed"),
            }
        }
        frame.unwrap_or_else(|| self.fail("no answer to the final fetch"))
    }
}

/// A Fetch of one partition of the simulated topic.
fn fetch_request(partition: i32, offset: i64, max_wait_ms: i32, max_bytes: i32) -> FetchRequest {
    FetchRequest {
        max_wait_ms,
        min_bytes: 1,
        max_bytes: 1 << 20,
        topics: vec![FetchTopic {
            topic: "sim".into(),
            partitions: vec![FetchPartition {
                partition,
                fetch_offset: offset,
                partition_max_bytes: max_bytes,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The partition a command changes, if it changes one.
fn mutated(cmd: &StorageCommand) -> Option<&kelp_core::types::TopicPartition> {
    match cmd {
        StorageCommand::Read { .. } | StorageCommand::FindByTime { .. } => None,
        StorageCommand::CreatePartition { partition, .. }
        | StorageCommand::DeletePartition { partition, .. }
        | StorageCommand::Append { partition, .. }
        | StorageCommand::WriteTopicConfig { partition, .. }
        | StorageCommand::TruncateBefore { partition, .. } => Some(partition),
    }
}

fn run(seed: u64) {
    let mut w = World::new(seed);
    let body = create_topics::CreateTopicsRequest {
        topics: vec![create_topics::request::CreatableTopic {
            name: "sim".into(),
            num_partitions: PARTITIONS,
            replication_factor: 1,
            ..Default::default()
        }],
        ..Default::default()
    };
    w.send(0, 7, RequestBody::CreateTopics(body), Sent::Create, true);
    for _ in 0..STEPS {
        w.step();
    }
    w.settle();
    w.check_final();
}

#[test]
fn seeded_simulation_keeps_the_invariants() {
    if let Some(seed) = std::env::var("KELP_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run(seed);
        return;
    }
    let seeds: u64 = std::env::var("KELP_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    for seed in 0..seeds {
        run(seed);
    }
    eprintln!("{seeds} seeds, {STEPS} steps each: every invariant held");
}
