//! The admin APIs, through Apache Kafka's Java AdminClient (the session of
//! `clients/java/KelpAdmin.java`) and through the Kafka CLI tools (kafka-topics, kafka-configs,
//! kafka-delete-records, kafka-get-offsets). Every Java test starts from a fresh 3-partition topic
//! holding the batches of [`LAYOUT`].
//! - `admin_configs`: DescribeConfigs (defaults, a config given at creation), IncrementalAlterConfigs
//!   SET / an invalid value (INVALID_CONFIG) / DELETE.
//! - `admin_create_partitions`: CreatePartitions 3 -> 5 (Metadata shows 5, the new partitions take
//!   records), a decrease is refused (INVALID_PARTITIONS).
//! - `admin_delete_records`: DeleteRecords on partition 0 before offset 2: low watermark 2, ListOffsets
//!   earliest 2, a fetch from 0 gets OFFSET_OUT_OF_RANGE, a fetch from 2 the rest; past the high
//!   watermark: OFFSET_OUT_OF_RANGE.
//! - `admin_max_timestamp`: ListOffsets with OffsetSpec.maxTimestamp() finds the record with the largest
//!   timestamp, also inside a compressed batch; earliest and latest.
//! - `admin_cluster_delete_topics`: DescribeCluster (one node, the advertised address, it is the
//!   controller); DeleteTopics, then the topic is gone from ListTopics and Metadata.
//! - `kafka_cli_admin`: kafka-topics --describe / --alter --partitions, kafka-configs --describe /
//!   --alter (add, invalid, delete) / --describe --all, kafka-delete-records, kafka-get-offsets.

use std::time::{Duration, Instant};

use kelp_tests::clients::{LIMIT, java_admin, kafka_cli, kcat};
use kelp_tests::gateway::smq_backend;
use kelp_tests::json::Json;
use kelp_tests::proc::{Output, run, run_ok};
use kelp_tests::records::TOPIC_MAX_MESSAGE_BYTES;
use kelp_tests::session::Session;
use kelp_tests::{Client, Env, Tool, now_ms, progress, setup};

/// The batches of a fresh topic: (partition, codec, timestamps as offsets from t0), one producer and one
/// batch each, in this order. Partition 1's largest timestamp is the middle record of a gzip batch,
/// partition 2's the first record of an lz4 batch after an uncompressed one.
const LAYOUT: [(i32, &str, &[i64]); 5] = [
    (0, "none", &[1, 2, 3, 4, 5]),
    (1, "gzip", &[10, 50, 20]),
    (1, "none", &[30, 40]),
    (2, "none", &[5, 6]),
    (2, "lz4", &[100, 60]),
];

/// Within this time a single broker's metadata shows a change its admin API has acknowledged (Kafka
/// propagates metadata asynchronously, so tests poll).
const SETTLE: Duration = Duration::from_secs(30);

/// Polls `f` until it returns Ok, for at most [`SETTLE`]; panics with its last Err.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + SETTLE;
    loop {
        match f() {
            Ok(t) => return t,
            Err(e) if Instant::now() >= deadline => panic!("{what}: not within {SETTLE:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn int(j: &Json, key: &str) -> i64 {
    j.get(key)
        .as_i64()
        .unwrap_or_else(|| panic!("{key}: not an integer in {j:?}"))
}

fn arr<'a>(j: &'a Json, key: &str) -> &'a [Json] {
    j.get(key)
        .as_arr()
        .unwrap_or_else(|| panic!("{key}: not an array in {j:?}"))
}

/// The partition numbers a `describe-topic` answer lists (Err: the error the broker gave).
fn partitions(s: &mut Session, topic: &str) -> Result<Vec<i64>, String> {
    let j = s.call(&format!("describe-topic {topic}"));
    if let Some(e) = j.get("error").as_str() {
        return Err(e.to_string());
    }
    let mut ps: Vec<i64> = arr(&j, "partitions")
        .iter()
        .map(|p| int(p, "partition"))
        .collect();
    ps.sort();
    Ok(ps)
}

/// Waits until Metadata shows `topic` with partitions 0..n.
fn wait_partitions(s: &mut Session, topic: &str, n: i64) {
    eventually(&format!("metadata of {topic} with {n} partitions"), || {
        partitions(s, topic).and_then(|ps| {
            if ps == (0..n).collect::<Vec<_>>() {
                Ok(())
            } else {
                Err(format!("partitions {ps:?}"))
            }
        })
    });
}

/// Creates a 3-partition topic (with `configs`, `name=value` separated by spaces) and produces
/// [`LAYOUT`] into it; returns t0 (the timestamps are t0 + the layout's numbers).
fn fresh_topic(s: &mut Session, topic: &str, configs: &str) -> i64 {
    s.ok(&format!("create {topic} 3 {configs}"));
    wait_partitions(s, topic, 3);
    let t0 = now_ms() - 60_000;
    let mut next = [0i64; 3];
    for (p, codec, ts) in LAYOUT {
        let ts: Vec<String> = ts.iter().map(|t| (t0 + t).to_string()).collect();
        let j = s.ok(&format!("produce {topic} {p} {codec} {}", ts.join(",")));
        let got: Vec<i64> = arr(&j, "offsets")
            .iter()
            .map(|o| o.as_i64().unwrap_or(-1))
            .collect();
        let n = ts.len() as i64;
        let start = next[p as usize];
        assert_eq!(
            got,
            (start..start + n).collect::<Vec<_>>(),
            "partition {p}: acked offsets"
        );
        next[p as usize] += n;
    }
    progress(&format!("{topic}: 3 partitions, records produced"));
    t0
}

/// Per partition (sorted) the (offset, timestamp) of a `list-offsets` answer.
fn list_offsets(s: &mut Session, topic: &str, spec: &str) -> Vec<(i64, i64, i64)> {
    let j = s.ok(&format!("list-offsets {topic} {spec}"));
    let mut v: Vec<(i64, i64, i64)> = arr(&j, "offsets")
        .iter()
        .map(|o| (int(o, "partition"), int(o, "offset"), int(o, "timestamp")))
        .collect();
    v.sort();
    v
}

/// (value, source) of one config in a `describe-configs` answer.
fn config(j: &Json, name: &str) -> (Option<String>, String) {
    let e = arr(j, "configs")
        .iter()
        .find(|c| c.get("name").as_str() == Some(name))
        .unwrap_or_else(|| panic!("describeConfigs lacks {name}: {j:?}"));
    (
        e.get("value").as_str().map(str::to_string),
        e.get("source").as_str().unwrap_or("?").to_string(),
    )
}

fn want_config(s: &mut Session, topic: &str, name: &str, value: &str, source: &str) {
    let j = s.ok(&format!("describe-configs {topic}"));
    assert_eq!(
        config(&j, name),
        (Some(value.to_string()), source.to_string()),
        "{topic}: config {name} (value, source)"
    );
}

/// The error name of a refused command (panics when it was not refused).
fn refused(s: &mut Session, command: &str) -> String {
    let j = s.call(command);
    match j.get("error").as_str() {
        Some(e) => e.to_string(),
        None => panic!("{command}: accepted ({j:?}), want an error"),
    }
}

fn java_setup(test: &str) -> Option<(Env, Session)> {
    let env = setup(test, &[Tool::Client(Client::Java)])?;
    let s = java_admin(env.bootstrap());
    Some((env, s))
}

#[test]
fn admin_configs() {
    let Some((env, mut s)) = java_setup("admin_configs") else {
        return;
    };
    let topic = env.topic("configs");
    let mmb = TOPIC_MAX_MESSAGE_BYTES.to_string();
    fresh_topic(&mut s, &topic, &format!("max.message.bytes={mmb}"));

    // defaults, and the config given at creation
    want_config(
        &mut s,
        &topic,
        "retention.ms",
        "604800000",
        "DEFAULT_CONFIG",
    );
    want_config(
        &mut s,
        &topic,
        "max.message.bytes",
        &mmb,
        "DYNAMIC_TOPIC_CONFIG",
    );
    want_config(&mut s, &topic, "cleanup.policy", "delete", "DEFAULT_CONFIG");

    // incremental SET: the other topic configs stay
    s.ok(&format!("alter-configs {topic} set:retention.ms=3600000"));
    want_config(
        &mut s,
        &topic,
        "retention.ms",
        "3600000",
        "DYNAMIC_TOPIC_CONFIG",
    );
    want_config(
        &mut s,
        &topic,
        "max.message.bytes",
        &mmb,
        "DYNAMIC_TOPIC_CONFIG",
    );
    progress("SET retention.ms=3600000 reported as DYNAMIC_TOPIC_CONFIG");

    // an invalid value is refused and changes nothing
    for bad in [
        "retention.ms=soon",
        "retention.ms=1.5",
        "max.message.bytes=-7",
    ] {
        assert_eq!(
            refused(&mut s, &format!("alter-configs {topic} set:{bad}")),
            "INVALID_CONFIG",
            "SET {bad}"
        );
    }
    want_config(
        &mut s,
        &topic,
        "retention.ms",
        "3600000",
        "DYNAMIC_TOPIC_CONFIG",
    );
    want_config(
        &mut s,
        &topic,
        "max.message.bytes",
        &mmb,
        "DYNAMIC_TOPIC_CONFIG",
    );
    progress("invalid values refused with INVALID_CONFIG");

    // DELETE: back to the default
    s.ok(&format!("alter-configs {topic} delete:retention.ms"));
    want_config(
        &mut s,
        &topic,
        "retention.ms",
        "604800000",
        "DEFAULT_CONFIG",
    );
    want_config(
        &mut s,
        &topic,
        "max.message.bytes",
        &mmb,
        "DYNAMIC_TOPIC_CONFIG",
    );

    // the records are all still there
    assert_eq!(
        list_offsets(&mut s, &topic, "earliest")
            .iter()
            .zip(list_offsets(&mut s, &topic, "latest"))
            .map(|(e, l)| (e.1, l.1))
            .collect::<Vec<_>>(),
        [(0, 5), (0, 5), (0, 4)],
        "(earliest, latest) per partition"
    );
    progress("DELETE retention.ms: default again");
}

#[test]
fn admin_create_partitions() {
    let Some((env, mut s)) = java_setup("admin_create_partitions") else {
        return;
    };
    let topic = env.topic("partitions");
    let t0 = fresh_topic(&mut s, &topic, "");

    if smq_backend() {
        // SMQ re-ranges a topic's partitions when their count changes: Kelp refuses
        assert_eq!(
            refused(&mut s, &format!("create-partitions {topic} 5")),
            "INVALID_PARTITIONS",
            "create-partitions on the SMQ backend"
        );
        assert_eq!(partitions(&mut s, &topic), Ok((0..3).collect::<Vec<_>>()));
        progress("SMQ backend: adding partitions is refused with INVALID_PARTITIONS");
        return;
    }
    let j = s.ok(&format!("create-partitions {topic} 5"));
    assert_eq!(int(&j, "partitions"), 5);
    wait_partitions(&mut s, &topic, 5);
    // also in a plain Metadata request (describeTopics may use DescribeTopicPartitions), each
    // partition with a leader
    let j = s.ok(&format!("metadata {topic}"));
    let mut got: Vec<(i64, bool)> = arr(&j, "partitions")
        .iter()
        .map(|p| (int(p, "partition"), p.get("leader").as_i64().is_some()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        (0..5).map(|p| (p, true)).collect::<Vec<_>>(),
        "Metadata: (partition, has a leader)"
    );
    progress("metadata shows 5 partitions");

    // the new partitions are empty and take records from offset 0
    let latest: Vec<i64> = list_offsets(&mut s, &topic, "latest")
        .iter()
        .map(|o| o.1)
        .collect();
    assert_eq!(latest, [5, 5, 4, 0, 0], "latest offsets after growing to 5");
    for p in [3, 4] {
        let j = s.ok(&format!(
            "produce {topic} {p} none {},{}",
            t0 + 1000,
            t0 + 1001
        ));
        assert_eq!(
            arr(&j, "offsets"),
            [Json::Int(0), Json::Int(1)],
            "partition {p}"
        );
        let j = s.ok(&format!("fetch {topic} {p} 0"));
        let got: Vec<(i64, i64)> = arr(&j, "records")
            .iter()
            .map(|r| (int(r, "offset"), int(r, "timestamp")))
            .collect();
        assert_eq!(
            got,
            [(0, t0 + 1000), (1, t0 + 1001)],
            "partition {p} read back"
        );
    }

    // not an increase: refused, the topic keeps 5
    for n in [4, 5] {
        assert_eq!(
            refused(&mut s, &format!("create-partitions {topic} {n}")),
            "INVALID_PARTITIONS",
            "create-partitions to {n} on a 5-partition topic"
        );
    }
    assert_eq!(partitions(&mut s, &topic), Ok((0..5).collect::<Vec<_>>()));
    progress("a decrease or no change is refused with INVALID_PARTITIONS");
}

#[test]
fn admin_delete_records() {
    let Some((env, mut s)) = java_setup("admin_delete_records") else {
        return;
    };
    let topic = env.topic("delrec");
    let t0 = fresh_topic(&mut s, &topic, "");

    let j = s.ok(&format!("delete-records {topic} 0 2"));
    assert_eq!(int(&j, "low_watermark"), 2, "deleteRecords low watermark");
    let earliest: Vec<i64> = list_offsets(&mut s, &topic, "earliest")
        .iter()
        .map(|o| o.1)
        .collect();
    assert_eq!(earliest, [2, 0, 0], "earliest offsets after deleteRecords");
    let latest: Vec<i64> = list_offsets(&mut s, &topic, "latest")
        .iter()
        .map(|o| o.1)
        .collect();
    assert_eq!(latest, [5, 5, 4], "latest offsets after deleteRecords");
    progress("ListOffsets earliest of partition 0 is 2");

    assert_eq!(
        refused(&mut s, &format!("fetch {topic} 0 0")),
        "OFFSET_OUT_OF_RANGE",
        "fetch from offset 0 (deleted)"
    );
    let j = s.ok(&format!("fetch {topic} 0 2"));
    let got: Vec<(i64, i64)> = arr(&j, "records")
        .iter()
        .map(|r| (int(r, "offset"), int(r, "timestamp")))
        .collect();
    assert_eq!(
        got,
        [(2, t0 + 3), (3, t0 + 4), (4, t0 + 5)],
        "fetch from offset 2"
    );
    progress("a fetch from 0 is OFFSET_OUT_OF_RANGE, from 2 reads the rest");

    // past the high watermark (5): refused; the low watermark stays
    assert_eq!(
        refused(&mut s, &format!("delete-records {topic} 0 6")),
        "OFFSET_OUT_OF_RANGE",
        "deleteRecords before offset 6 of a partition ending at 5"
    );
    // up to the high watermark: the partition is empty but keeps its offsets
    let j = s.ok(&format!("delete-records {topic} 0 5"));
    assert_eq!(int(&j, "low_watermark"), 5);
    let p0 = list_offsets(&mut s, &topic, "earliest")[0].1;
    assert_eq!(p0, 5, "earliest of partition 0 after deleting all");
    let j = s.ok(&format!("produce {topic} 0 none {}", t0 + 7));
    assert_eq!(
        arr(&j, "offsets"),
        [Json::Int(5)],
        "next offset after deleting all"
    );
    progress("deleteRecords past the end refused; up to the end empties the partition");
}

#[test]
fn admin_max_timestamp() {
    let Some((env, mut s)) = java_setup("admin_max_timestamp") else {
        return;
    };
    let topic = env.topic("maxts");
    let t0 = fresh_topic(&mut s, &topic, "");

    // per partition: the offset of the largest timestamp in LAYOUT, and that timestamp
    let mut want = Vec::new();
    for p in 0..3 {
        let ts: Vec<i64> = LAYOUT
            .iter()
            .filter(|b| b.0 == p)
            .flat_map(|b| b.2.iter().copied())
            .collect();
        let (off, max) = ts
            .iter()
            .enumerate()
            .max_by_key(|(_, t)| **t)
            .expect("records");
        want.push((i64::from(p), off as i64, t0 + max));
    }
    assert_eq!(
        want.iter().map(|w| w.1).collect::<Vec<_>>(),
        [4, 1, 2],
        "the layout's max-timestamp offsets"
    );
    assert_eq!(
        list_offsets(&mut s, &topic, "max-timestamp"),
        want,
        "ListOffsets MAX_TIMESTAMP: (partition, offset, timestamp)"
    );
    assert_eq!(
        list_offsets(&mut s, &topic, "earliest")
            .iter()
            .map(|o| o.1)
            .collect::<Vec<_>>(),
        [0, 0, 0]
    );
    assert_eq!(
        list_offsets(&mut s, &topic, "latest")
            .iter()
            .map(|o| o.1)
            .collect::<Vec<_>>(),
        [5, 5, 4]
    );
    progress("maxTimestamp finds the record with the largest timestamp");
}

#[test]
fn admin_cluster_delete_topics() {
    let Some((env, mut s)) = java_setup("admin_cluster_delete_topics") else {
        return;
    };
    let topic = env.topic("deltopic");
    fresh_topic(&mut s, &topic, "");

    let j = s.ok("describe-cluster");
    let nodes = arr(&j, "nodes");
    assert_eq!(nodes.len(), 1, "describeCluster: one node: {j:?}");
    let addr = format!(
        "{}:{}",
        nodes[0].get("host").as_str().unwrap_or("?"),
        int(&nodes[0], "port")
    );
    assert_eq!(addr, env.bootstrap(), "the node's address");
    assert_eq!(
        j.get("controller").as_i64(),
        Some(int(&nodes[0], "id")),
        "the controller is the one node: {j:?}"
    );
    assert!(
        j.get("cluster_id").as_str().is_some_and(|c| !c.is_empty()),
        "cluster id: {j:?}"
    );
    progress("describeCluster: one node at the bootstrap address");

    let listed = |s: &mut Session| -> Vec<String> {
        let j = s.ok("list-topics");
        arr(&j, "topics")
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect()
    };
    assert!(listed(&mut s).contains(&topic), "listTopics lacks {topic}");
    s.ok(&format!("delete-topics {topic}"));
    eventually(&format!("{topic} gone from listTopics"), || {
        if listed(&mut s).contains(&topic) {
            Err("still listed".into())
        } else {
            Ok(())
        }
    });
    eventually(
        &format!("{topic} gone from Metadata"),
        || match partitions(&mut s, &topic) {
            Err(e) if e == "UNKNOWN_TOPIC_OR_PARTITION" => Ok(()),
            other => Err(format!("describeTopics: {other:?}")),
        },
    );
    assert_eq!(
        refused(&mut s, &format!("delete-topics {topic}")),
        "UNKNOWN_TOPIC_OR_PARTITION",
        "deleting it again"
    );
    progress("deleteTopics: the topic is gone");
}

fn cli(env: &Env, tool: &str, args: &[&str]) -> Output {
    run_ok(&mut kafka_cli(tool, env.bootstrap(), args), None, LIMIT)
}

/// `kafka-configs --entity-type topics --entity-name T ARGS`
fn configs(env: &Env, topic: &str, args: &[&str]) -> Output {
    let mut a = vec!["--entity-type", "topics", "--entity-name", topic];
    a.extend_from_slice(args);
    cli(env, "configs", &a)
}

/// The `name=value` pairs of `kafka-configs --describe` lines (`  name=value sensitive=... synonyms=...`).
fn config_lines(out: &Output) -> Vec<(String, String)> {
    out.stdout_str()
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| {
            let first = l.trim().split(" sensitive=").next()?;
            let (k, v) = first.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// What kafka-topics --describe shows of a topic.
#[derive(Debug)]
struct Described {
    /// `PartitionCount:`
    count: String,
    /// the `Configs:` items, `name=value`
    configs: Vec<String>,
    /// the partitions listed
    partitions: Vec<i32>,
}

fn topics_describe(env: &Env, topic: &str) -> Described {
    let out = cli(env, "topics", &["--describe", "--topic", topic]);
    let s = out.stdout_str();
    let head = s
        .lines()
        .find(|l| l.starts_with("Topic:") && l.contains("PartitionCount:"))
        .unwrap_or_else(|| panic!("no topic line:\n{}", out.describe()));
    let field = |name: &str| {
        head.split('\t')
            .find_map(|f| f.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let cfgs = field("Configs:")
        .split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    let parts = s
        .lines()
        .filter_map(|l| {
            l.split('\t')
                .find_map(|f| f.trim().strip_prefix("Partition: "))
                .and_then(|p| p.trim().parse().ok())
        })
        .collect();
    Described {
        count: field("PartitionCount:"),
        configs: cfgs,
        partitions: parts,
    }
}

#[test]
fn kafka_cli_admin() {
    let Some(env) = setup("kafka_cli_admin", &[Tool::KafkaCli, Tool::Kcat]) else {
        return;
    };
    let topic = env.topic("cliadmin");
    let mmb = format!("max.message.bytes={TOPIC_MAX_MESSAGE_BYTES}");
    let out = cli(
        &env,
        "topics",
        &[
            "--create",
            "--topic",
            &topic,
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            &mmb,
        ],
    );
    assert!(
        out.stdout_str().contains(&format!("Created topic {topic}")),
        "{}",
        out.describe()
    );
    let settle = |what: &str, want: &dyn Fn(&Described) -> bool| {
        eventually(what, || {
            let d = topics_describe(&env, &topic);
            if want(&d) {
                Ok(d)
            } else {
                Err(format!("{d:?}"))
            }
        })
    };
    let d = settle("kafka-topics --describe: 3 partitions", &|d| {
        d.partitions == [0, 1, 2]
    });
    assert_eq!(d.count, "3", "PartitionCount");
    assert!(
        d.configs.contains(&mmb),
        "Configs: lacks {mmb}: {:?}",
        d.configs
    );

    // some records in partition 0 (kcat: one batch)
    run_ok(
        kcat::command(env.bootstrap()).args(["-P", "-t", &topic, "-p", "0"]),
        Some(b"r0\nr1\nr2\nr3\nr4\n"),
        LIMIT,
    );

    let alter = kafka_cli(
        "topics",
        env.bootstrap(),
        &["--alter", "--topic", &topic, "--partitions", "5"],
    );
    if smq_backend() {
        let out = run(&mut { alter }, None, LIMIT);
        let all = format!(
            "{}{}",
            out.stdout_str(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            all.contains("InvalidPartitions") || all.contains("cannot add partitions"),
            "kafka-topics --alter --partitions refused on SMQ: {}",
            out.describe()
        );
        progress("SMQ backend: kafka-topics --alter --partitions refused");
    } else {
        run_ok(&mut { alter }, None, LIMIT);
        let d = settle("kafka-topics --describe: 5 partitions", &|d| {
            d.partitions == [0, 1, 2, 3, 4]
        });
        assert_eq!(d.count, "5", "PartitionCount after --alter --partitions 5");
        progress("kafka-topics --alter --partitions 5");
    }

    // kafka-configs
    let out = configs(
        &env,
        &topic,
        &["--alter", "--add-config", "retention.ms=3600000"],
    );
    assert!(
        out.stdout_str()
            .contains(&format!("Completed updating config for topic {topic}.")),
        "{}",
        out.describe()
    );
    let out = configs(&env, &topic, &["--describe"]);
    let dynamic = config_lines(&out);
    for want in [
        ("retention.ms", "3600000"),
        ("max.message.bytes", &TOPIC_MAX_MESSAGE_BYTES.to_string()),
    ] {
        assert!(
            dynamic
                .iter()
                .any(|(k, v)| (k.as_str(), v.as_str()) == want),
            "kafka-configs --describe lacks {want:?}:\n{}",
            out.describe()
        );
    }
    let d = topics_describe(&env, &topic);
    assert!(
        d.configs.contains(&"retention.ms=3600000".to_string()),
        "kafka-topics --describe Configs: {:?}",
        d.configs
    );

    let bad = run(
        &mut kafka_cli(
            "configs",
            env.bootstrap(),
            &[
                "--entity-type",
                "topics",
                "--entity-name",
                &topic,
                "--alter",
                "--add-config",
                "retention.ms=soon",
            ],
        ),
        None,
        LIMIT,
    );
    progress(&format!("{:.1?} {} (refused)", bad.elapsed, bad.what));
    let said = format!(
        "{}{}",
        bad.stdout_str(),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(
        !bad.success() && said.contains("InvalidConfigurationException"),
        "retention.ms=soon must be refused with INVALID_CONFIG:\n{}",
        bad.describe()
    );
    progress("kafka-configs --alter --add-config: set, and an invalid value refused");

    configs(
        &env,
        &topic,
        &["--alter", "--delete-config", "retention.ms"],
    );
    let out = configs(&env, &topic, &["--describe"]);
    assert!(
        !config_lines(&out).iter().any(|(k, _)| k == "retention.ms"),
        "retention.ms still a topic config after --delete-config:\n{}",
        out.describe()
    );
    let out = configs(&env, &topic, &["--describe", "--all"]);
    let all = config_lines(&out);
    for want in [
        ("retention.ms", "604800000"),
        ("cleanup.policy", "delete"),
        ("max.message.bytes", &TOPIC_MAX_MESSAGE_BYTES.to_string()),
    ] {
        assert!(
            all.iter().any(|(k, v)| (k.as_str(), v.as_str()) == want),
            "kafka-configs --describe --all lacks {want:?}:\n{}",
            out.describe()
        );
    }
    progress("kafka-configs --delete-config, --describe --all");

    // kafka-delete-records, then kafka-get-offsets earliest
    let json = env.path("delete-records.json");
    std::fs::write(
        &json,
        format!(r#"{{"version":1,"partitions":[{{"topic":"{topic}","partition":0,"offset":2}}]}}"#),
    )
    .expect("write the offsets file");
    let out = cli(
        &env,
        "delete-records",
        &["--offset-json-file", &json.to_string_lossy()],
    );
    assert!(
        out.stdout_str().contains("low_watermark: 2"),
        "kafka-delete-records:\n{}",
        out.describe()
    );
    let out = cli(&env, "get-offsets", &["--topic", &topic, "--time", "-2"]);
    let mut earliest: Vec<(i32, i64)> = out
        .stdout_str()
        .lines()
        .filter_map(|l| {
            let mut f = l.rsplitn(3, ':');
            let (o, p) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?);
            Some((p, o))
        })
        .collect();
    earliest.sort();
    // five partitions after the --alter above; three where it is refused (SMQ)
    let count = if smq_backend() { 3 } else { 5 };
    assert_eq!(
        earliest,
        [(0, 2), (1, 0), (2, 0), (3, 0), (4, 0)][..count],
        "kafka-get-offsets earliest:\n{}",
        out.describe()
    );
    progress("kafka-delete-records: partition 0 starts at 2");
}
