//! Crash durability of the `kelp` binary: under continuous acks=all produce, kill -9 the gateway at
//! random moments, restart it on the same data directory, and check that every acknowledged record is
//! present exactly once at the offset it was acknowledged with, and that offsets are dense.
//! Also: a torn final write (a segment cut mid-batch by the test) is truncated on restart.
//!
//! The producer here speaks Kafka through Kelp's own codec over a real socket, so that every
//! acknowledgement is known exactly; the real-client scenarios live in the `kelp-tests` crate.

mod common;

use common::{Client, Kelp, free_port};
use kelp_core::api::{RequestBody, ResponseBody};
use kelp_core::storage::wal::scan_records;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether the test runs on SMQ; tests of the embedded log's files skip then.
fn on_smq(test: &str) -> bool {
    let smq = std::env::var("KELP_E2E_SMQ").is_ok_and(|b| !b.is_empty());
    if smq {
        eprintln!("{test}: a test of the embedded log's files; nothing to do on SMQ");
    }
    smq
}

/// The last restore time the gateway logged (SMQ backend).
fn last_restore(dir: &std::path::Path) -> Option<String> {
    let log = std::fs::read_to_string(dir.join("kelp.log")).ok()?;
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("restored the offset ledger"))?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or("?")
            .to_string()
    };
    Some(format!(
        "ledger restored in {} ms ({} entries, {} adopted records)",
        field("total_ms="),
        field("ledger_entries="),
        field("adopted_records=")
    ))
}

/// A small deterministic generator for kill timing (no external crates needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn check(acked: &BTreeMap<i64, String>, stored: &[(i64, String)]) {
    for (i, (offset, _)) in stored.iter().enumerate() {
        assert_eq!(*offset, i as i64, "offsets are dense");
    }
    for (offset, value) in acked {
        let found = stored.get(*offset as usize).map(|(_, v)| v);
        assert_eq!(
            found,
            Some(value),
            "acknowledged record at {offset} is there"
        );
    }
    let mut values: Vec<&String> = stored.iter().map(|(_, v)| v).collect();
    values.sort();
    values.dedup();
    assert_eq!(values.len(), stored.len(), "no record is stored twice");
}

#[test]
fn acknowledged_records_survive_twenty_kill_nines() {
    survive_kill_nines(&["crash"], &[], 20);
}

/// The same with three partitions (one topic each, a producer each) on one log writer, so
/// that rounds of acks=all appends to all three are made durable by its write-ahead file:
/// start-up after a kill finds a file full of records whose data the segments already hold, and
/// must not add them twice. The file is checkpointed every 64 KiB, so it is reused in place many
/// times a round: past its records lie older generations' ones, which must not come back.
#[test]
fn acknowledged_records_survive_kill_nines_with_a_shared_write_ahead_file() {
    if on_smq("acknowledged_records_survive_kill_nines_with_a_shared_write_ahead_file") {
        return;
    }
    let rounds_with_records = survive_kill_nines(
        &["wal-a", "wal-b", "wal-c"],
        &["--log-writers", "1", "--wal-bytes", "65536"],
        10,
    );
    assert!(
        rounds_with_records > 0,
        "no kill left write-ahead records behind: the test did not reach them"
    );
}

/// Produces acks=all to each of `topics` from a thread each, kills the gateway at a random moment,
/// restarts it and checks every topic, `rounds` times. Returns in how many rounds the kill left
/// records in writer 0's write-ahead file.
fn survive_kill_nines(topics: &[&'static str], extra: &[&str], rounds: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut rng = Lcg(0x5eed);
    let mut acked: Vec<BTreeMap<i64, String>> = vec![BTreeMap::new(); topics.len()];
    let mut serial = 0u64;
    let mut with_records = 0;
    let mut kelp = Kelp::start_with(dir.path(), port, extra);
    for topic in topics {
        Client::connect(kelp.addr).unwrap().create(topic);
    }
    for round in 0..rounds {
        // Produce from threads until the gateway dies under them.
        let addr = kelp.addr;
        let start = serial;
        let producers: Vec<_> = topics
            .iter()
            .map(|&topic| {
                std::thread::spawn(move || {
                    let mut acks = Vec::new();
                    let Ok(mut c) = Client::connect(addr) else {
                        return acks;
                    };
                    let mut n = start;
                    loop {
                        let values: Vec<String> = (0..3).map(|i| format!("r{n}-{i}")).collect();
                        n += 1;
                        match c.produce(topic, &values) {
                            Ok(Some(base)) => acks.extend(
                                values
                                    .into_iter()
                                    .enumerate()
                                    .map(|(i, v)| (base + i as i64, v)),
                            ),
                            Ok(None) => {}
                            Err(_) => return acks,
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50 + rng.next(400)));
        kelp.kill9();
        if let Ok(file) = std::fs::read(dir.path().join("wal/0.wal"))
            && !scan_records(&file.into()).0.is_empty()
        {
            with_records += 1;
        }
        for (t, producer) in producers.into_iter().enumerate() {
            for (offset, value) in producer.join().unwrap() {
                assert!(
                    acked[t].insert(offset, value).is_none(),
                    "offset {offset} of {} acknowledged twice",
                    topics[t]
                );
            }
        }
        serial += 1_000_000;
        kelp = Kelp::start_with(dir.path(), port, extra);
        let mut stored_counts = Vec::new();
        for (t, topic) in topics.iter().enumerate() {
            let stored = Client::connect(kelp.addr).unwrap().fetch_all(topic);
            check(&acked[t], &stored);
            stored_counts.push(stored.len());
        }
        let acked_counts: Vec<usize> = acked.iter().map(BTreeMap::len).collect();
        eprintln!(
            "round {round}: {acked_counts:?} acknowledged, {stored_counts:?} stored{}",
            last_restore(dir.path()).map_or(String::new(), |r| format!("; {r}"))
        );
    }
    for (t, a) in acked.iter().enumerate() {
        assert!(
            a.len() > 100,
            "{}: the test produced too little to mean anything",
            topics[t]
        );
    }
    with_records
}

/// A segment cut in the middle of its last batch, as a crash during write(2) would leave it: with
/// no write-ahead file the torn batch is cut off on restart and offsets go on densely from there.
#[test]
fn a_torn_final_write_is_cut_on_restart() {
    if on_smq("a_torn_final_write_is_cut_on_restart") {
        return;
    }
    torn_final_write(&["--wal-bytes", "0"], 9);
}

/// The same with the write-ahead file (the default): the torn batch was acknowledged, so its
/// record is there, and start-up puts the batch back.
#[test]
fn a_torn_final_write_is_restored_from_the_write_ahead_file() {
    if on_smq("a_torn_final_write_is_restored_from_the_write_ahead_file") {
        return;
    }
    torn_final_write(&[], 10);
}

/// Produces ten records one at a time, kills the gateway, cuts 7 bytes off the segment, restarts
/// and expects `kept` records, then one more at offset `kept`.
fn torn_final_write(flags: &[&str], kept: usize) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let kelp = Kelp::start_with(dir.path(), port, flags);
    let mut c = Client::connect(kelp.addr).unwrap();
    c.create("torn");
    for i in 0..10 {
        c.produce("torn", &[format!("v{i}")]).unwrap().unwrap();
    }
    kelp.kill9();
    let segment = dir.path().join("torn-0").join("00000000000000000000.log");
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let kelp = Kelp::start_with(dir.path(), port, flags);
    let mut c = Client::connect(kelp.addr).unwrap();
    let stored = c.fetch_all("torn");
    let values: Vec<String> = stored.iter().map(|(_, v)| v.clone()).collect();
    let expected: Vec<String> = (0..kept).map(|i| format!("v{i}")).collect();
    assert_eq!(values, expected);
    assert_eq!(
        c.produce("torn", &["after".into()]).unwrap(),
        Some(kept as i64),
        "offsets continue densely"
    );
    assert_eq!(
        c.fetch_all("torn").last().unwrap(),
        &(kept as i64, "after".to_string())
    );
}

#[test]
fn sigterm_drains_flushes_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut kelp = Kelp::start(dir.path(), port);
    let mut c = Client::connect(kelp.addr).unwrap();
    c.create("term");
    for i in 0..5 {
        c.produce("term", &[format!("v{i}")]).unwrap().unwrap();
    }
    let pid = kelp.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = kelp.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "kelp did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "clean exit, got {status}");
    let kelp = Kelp::start(dir.path(), port);
    assert_eq!(
        Client::connect(kelp.addr).unwrap().fetch_all("term").len(),
        5
    );
}

#[test]
fn closed_segments_recover_from_their_index_files() {
    if on_smq("closed_segments_recover_from_their_index_files") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let small = ["--segment-bytes", "2000"];
    let kelp = Kelp::start_with(dir.path(), port, &small);
    let mut c = Client::connect(kelp.addr).unwrap();
    c.create("seg");
    for i in 0..200 {
        assert_eq!(
            c.produce("seg", &[format!("value-{i:04}")]).unwrap(),
            Some(i)
        );
    }
    kelp.kill9();
    let pdir = dir.path().join("seg-0");
    let count = |ext: &str| {
        std::fs::read_dir(&pdir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(ext)
            })
            .count()
    };
    let (logs, indexes) = (count(".log"), count(".index"));
    assert!(logs > 3, "segments rolled: {logs}");
    assert_eq!(indexes, logs - 1, "every closed segment has its index");
    let kelp = Kelp::start_with(dir.path(), port, &small);
    let stored = Client::connect(kelp.addr).unwrap().fetch_all("seg");
    assert_eq!(stored.len(), 200);
    assert!(
        stored
            .iter()
            .enumerate()
            .all(|(i, (o, v))| *o == i as i64 && *v == format!("value-{i:04}"))
    );
    kelp.kill9();
    // A damaged index is not trusted: recovery reads that segment instead, with the same result.
    let first_index = std::fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "index"))
        .unwrap();
    std::fs::write(&first_index, b"garbage").unwrap();
    let kelp = Kelp::start_with(dir.path(), port, &small);
    let mut c = Client::connect(kelp.addr).unwrap();
    assert_eq!(c.fetch_all("seg").len(), 200);
    assert_eq!(c.produce("seg", &["after".into()]).unwrap(), Some(200));
}

#[test]
fn committed_offsets_survive_kill_nine() {
    use kelp_core::api::offset_commit::OffsetCommitRequest;
    use kelp_core::api::offset_commit::request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kelp_core::api::offset_fetch::OffsetFetchRequest;
    use kelp_core::api::offset_fetch::request::OffsetFetchRequestGroup;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let kelp = Kelp::start(dir.path(), port);
    let mut c = Client::connect(kelp.addr).unwrap();
    c.create("committed");
    for offset in [3, 8, 13] {
        let body = OffsetCommitRequest {
            group_id: "g1".into(),
            generation_id_or_member_epoch: -1,
            topics: vec![OffsetCommitRequestTopic {
                name: "committed".into(),
                partitions: vec![OffsetCommitRequestPartition {
                    partition_index: 0,
                    committed_offset: offset,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let ResponseBody::OffsetCommit(r) = c.call(9, RequestBody::OffsetCommit(body)).unwrap()
        else {
            unreachable!()
        };
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
    }
    kelp.kill9();
    let kelp = Kelp::start(dir.path(), port);
    let mut c = Client::connect(kelp.addr).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = OffsetFetchRequest {
            groups: vec![OffsetFetchRequestGroup {
                group_id: "g1".into(),
                topics: None,
                ..Default::default()
            }],
            ..Default::default()
        };
        let ResponseBody::OffsetFetch(r) = c.call(9, RequestBody::OffsetFetch(body)).unwrap()
        else {
            unreachable!()
        };
        let g = &r.groups[0];
        if g.error_code == 14 {
            // COORDINATOR_LOAD_IN_PROGRESS: retriable, as clients treat it.
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        assert_eq!(g.error_code, 0);
        assert_eq!(
            g.topics[0].partitions[0].committed_offset, 13,
            "the last acknowledged commit"
        );
        break;
    }
}

#[test]
fn idempotent_retries_are_recognised_after_kill_nine() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let small = ["--segment-bytes", "2000"];
    let kelp = Kelp::start_with(dir.path(), port, &small);
    let mut c = Client::connect(kelp.addr).unwrap();
    c.create("idem");
    for i in 0..60 {
        assert_eq!(
            c.produce_as("idem", &[format!("v{i}")], (77, 0, i))
                .unwrap(),
            Some(i64::from(i))
        );
    }
    kelp.kill9();
    let pdir = dir.path().join("idem-0");
    // (the embedded log keeps producer snapshots beside its segments; SMQ, in its ledger topic)
    let smq = std::env::var("KELP_E2E_SMQ").is_ok_and(|b| !b.is_empty());
    assert!(
        smq || std::fs::read_dir(&pdir).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".producers")
        })
    );
    let kelp = Kelp::start_with(dir.path(), port, &small);
    let mut c = Client::connect(kelp.addr).unwrap();
    // The producer did not hear back about its last batches and retries them after the crash.
    for i in 55..60 {
        assert_eq!(
            c.produce_as("idem", &[format!("v{i}")], (77, 0, i))
                .unwrap(),
            Some(i64::from(i)),
            "retry of sequence {i}"
        );
    }
    assert_eq!(
        c.produce_as("idem", &["v60".into()], (77, 0, 60)).unwrap(),
        Some(60)
    );
    let stored = c.fetch_all("idem");
    assert_eq!(stored.len(), 61, "every record once");
}
