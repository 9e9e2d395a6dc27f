//! The Apache Kafka 4.4 command-line tools against the server.
//! - `kafka_cli_topics_producer`: kafka-topics (create, list, describe), kafka-console-producer
//!   (keyed, lz4), kafka-get-offsets; kcat reads the records back.
//! - `kafka_cli_consumer_group`: kafka-console-consumer in a group, then kafka-consumer-groups
//!   (describe, list, reset-offsets); needs the group coordinator APIs.

use std::collections::BTreeMap;

use kelp_tests::clients::{LIMIT, kafka_cli, kcat};
use kelp_tests::proc::{Output, run_ok};
use kelp_tests::{Env, Tool, progress, setup};

const N: usize = 30;

fn cli(env: &Env, tool: &str, args: &[&str]) -> Output {
    run_ok(&mut kafka_cli(tool, env.bootstrap(), args), None, LIMIT)
}

fn value(i: usize) -> String {
    format!("value-{i} from the console producer")
}

/// kafka-topics --create (3 partitions), then N keyed records through the console producer (lz4,
/// default partitioner); returns the end offset of each partition (kafka-get-offsets).
fn topic_with_records(env: &Env, topic: &str) -> BTreeMap<i32, i64> {
    let out = cli(
        env,
        "topics",
        &[
            "--create",
            "--topic",
            topic,
            "--partitions",
            "3",
            "--replication-factor",
            "1",
        ],
    );
    assert!(
        out.stdout_str().contains(&format!("Created topic {topic}")),
        "{}",
        out.describe()
    );
    let input: String = (0..N).map(|i| format!("key-{i}:{}\n", value(i))).collect();
    let producer = [
        "--topic",
        topic,
        "--reader-property",
        "parse.key=true",
        "--reader-property",
        "key.separator=:",
    ];
    run_ok(
        kafka_cli("console-producer", env.bootstrap(), &producer)
            .args(["--compression-codec", "lz4"]),
        Some(input.as_bytes()),
        LIMIT,
    );
    let out = cli(env, "get-offsets", &["--topic", topic, "--time", "-1"]);
    // lines: topic:partition:offset
    let ends: BTreeMap<i32, i64> = out
        .stdout_str()
        .lines()
        .filter_map(|l| {
            let mut f = l.rsplitn(3, ':');
            let (o, p) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?);
            Some((p, o))
        })
        .collect();
    assert_eq!(ends.len(), 3, "get-offsets: {}", out.describe());
    assert_eq!(
        ends.values().sum::<i64>(),
        N as i64,
        "get-offsets latest: {ends:?}"
    );
    ends
}

/// (partition, offset, key, value) of every record, read by kcat
fn kcat_records(env: &Env, topic: &str) -> Vec<(i32, i64, String, String)> {
    let s = |b: Option<Vec<u8>>| String::from_utf8(b.unwrap_or_default()).unwrap_or_default();
    let mut v: Vec<_> = kcat::consume_all(env.bootstrap(), topic)
        .into_iter()
        .map(|r| (r.partition, r.offset, s(r.key), s(r.value)))
        .collect();
    v.sort();
    v
}

/// All N records, dense offsets from 0 up to each partition's end offset.
fn check_all(what: &str, recs: &[(i32, i64, String, String)], ends: &BTreeMap<i32, i64>) {
    let mut got: Vec<(String, String)> = recs.iter().map(|r| (r.2.clone(), r.3.clone())).collect();
    let mut sent: Vec<(String, String)> = (0..N).map(|i| (format!("key-{i}"), value(i))).collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "{what}: keys and values");
    for (p, end) in ends {
        let offs: Vec<i64> = recs.iter().filter(|r| r.0 == *p).map(|r| r.1).collect();
        assert_eq!(
            offs,
            (0..*end).collect::<Vec<_>>(),
            "{what}: partition {p}: offsets not dense from 0"
        );
    }
}

#[test]
fn kafka_cli_topics_producer() {
    let Some(env) = setup("kafka_cli_topics_producer", &[Tool::KafkaCli, Tool::Kcat]) else {
        return;
    };
    let topic = env.topic("cli");
    let ends = topic_with_records(&env, &topic);

    let out = cli(&env, "topics", &["--list"]);
    assert!(
        out.stdout_str().lines().any(|l| l.trim() == topic),
        "--list lacks {topic}:\n{}",
        out.describe()
    );
    let out = cli(&env, "topics", &["--describe", "--topic", &topic]);
    let desc = out.stdout_str();
    assert!(desc.contains("PartitionCount: 3"), "{}", out.describe());
    for p in 0..3 {
        assert!(
            desc.contains(&format!("Partition: {p}\tLeader: ")),
            "partition {p} not described:\n{desc}"
        );
    }
    let out = cli(&env, "get-offsets", &["--topic", &topic, "--time", "-2"]);
    let earliest: Vec<String> = out
        .stdout_str()
        .lines()
        .filter_map(|l| l.rsplit(':').next())
        .map(str::to_string)
        .collect();
    assert_eq!(
        earliest,
        ["0", "0", "0"],
        "earliest offsets: {}",
        out.describe()
    );

    check_all("kcat", &kcat_records(&env, &topic), &ends);
    progress("kafka-topics, console producer, get-offsets and kcat agree");
}

/// `kafka-consumer-groups --describe` rows of `topic`: partition -> (current offset, log-end offset, lag)
fn group_rows(out: &str, topic: &str) -> BTreeMap<i32, (String, String, String)> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 || f[1] != topic {
                return None;
            }
            Some((
                f[2].parse().ok()?,
                (f[3].to_string(), f[4].to_string(), f[5].to_string()),
            ))
        })
        .collect()
}

#[test]
fn kafka_cli_consumer_group() {
    let Some(env) = setup("kafka_cli_consumer_group", &[Tool::KafkaCli, Tool::Kcat]) else {
        return;
    };
    if !env.serves_groups("kafka_cli_consumer_group") {
        return;
    }
    let topic = env.topic("cligroup");
    let group = format!("{topic}-group");
    let ends = topic_with_records(&env, &topic);

    let n = N.to_string();
    let out = cli(
        &env,
        "console-consumer",
        &[
            "--topic",
            &topic,
            "--group",
            &group,
            "--from-beginning",
            "--max-messages",
            &n,
            "--timeout-ms",
            "60000",
            "--formatter-property",
            "print.key=true",
            "--formatter-property",
            "print.partition=true",
            "--formatter-property",
            "print.offset=true",
        ],
    );
    // Partition:P \t Offset:O \t key \t value
    let mut consumed: Vec<(i32, i64, String, String)> = out
        .stdout_str()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(4, '\t').collect();
            Some((
                f.first()?.strip_prefix("Partition:")?.parse().ok()?,
                f.get(1)?.strip_prefix("Offset:")?.parse().ok()?,
                f.get(2)?.to_string(),
                f.get(3)?.to_string(),
            ))
        })
        .collect();
    consumed.sort();
    assert_eq!(
        consumed.len(),
        N,
        "console consumer read:\n{}",
        out.describe()
    );
    check_all("console consumer", &consumed, &ends);
    assert_eq!(
        kcat_records(&env, &topic),
        consumed,
        "kcat and the console consumer disagree"
    );
    progress("console consumer (group) read every record");

    // the console consumer committed its position when it closed
    let out = cli(&env, "consumer-groups", &["--describe", "--group", &group]);
    let rows = group_rows(&out.stdout_str(), &topic);
    assert_eq!(
        rows.len(),
        3,
        "consumer-groups --describe:\n{}",
        out.describe()
    );
    for (p, (cur, end, lag)) in &rows {
        let want = ends[p].to_string();
        assert_eq!(
            (cur.as_str(), end.as_str(), lag.as_str()),
            (want.as_str(), want.as_str(), "0"),
            "partition {p}:\n{}",
            out.describe()
        );
    }
    let out = cli(&env, "consumer-groups", &["--list"]);
    assert!(
        out.stdout_str().lines().any(|l| l.trim() == group),
        "--list lacks {group}:\n{}",
        out.describe()
    );

    cli(
        &env,
        "consumer-groups",
        &[
            "--reset-offsets",
            "--to-earliest",
            "--execute",
            "--group",
            &group,
            "--topic",
            &topic,
        ],
    );
    let out = cli(&env, "consumer-groups", &["--describe", "--group", &group]);
    let rows = group_rows(&out.stdout_str(), &topic);
    assert_eq!(rows.len(), 3, "after reset:\n{}", out.describe());
    for (p, (cur, _, lag)) in &rows {
        let lag_want = ends[p].to_string();
        assert_eq!(
            (cur.as_str(), lag.as_str()),
            ("0", lag_want.as_str()),
            "partition {p} after reset:\n{}",
            out.describe()
        );
    }
    progress("consumer-groups describe / list / reset-offsets agree");
}
