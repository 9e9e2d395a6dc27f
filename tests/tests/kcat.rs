//! kcat (librdkafka's command-line client) on its own.
//! - `kcat_produce_consume`: metadata (-L), produce (-P) with every codec, keys, headers, a null
//!   value and no key, read back (-C), watermarks (-Q).
//! - `kcat_group`: the same records read by a balanced consumer group (-G); needs the group APIs.
//! - `kcat_a_reader_that_stops_holds_up_no_producer`: a consumer reads a few records of a full
//!   topic and goes away; producing to it afterwards still goes through, and every record is there.
//!   (On SMQ, a subscription Kelp kept open but no longer read stalled weed's partition, publishes
//!   included.)

use std::collections::BTreeMap;
use std::time::Duration;

use kelp_tests::clients::{LIMIT, kcat};
use kelp_tests::json::Json;
use kelp_tests::proc::run_ok;
use kelp_tests::records::{ALL_CODECS, Record};
use kelp_tests::{Client, Env, Tool, progress, setup};

/// key, value, headers of a record kcat sent
type Sent = (
    Option<String>,
    Option<String>,
    Vec<(String, Option<Vec<u8>>)>,
);

/// Creates a topic, fills it with kcat -P, checks kcat -L, -C and -Q; returns the records read.
fn produce_consume(env: &Env, topic: &str) -> Vec<Record> {
    let b = env.bootstrap().to_string();
    let topic = topic.to_string();
    // kcat has no admin API: confluent-kafka (the same librdkafka) creates the topic
    assert_eq!(Client::Librdkafka.create(env, &topic), 3);

    let out = run_ok(
        kcat::command(&b).args(["-L", "-J", "-t", &topic]),
        None,
        LIMIT,
    );
    let md = Json::parse(out.stdout_str().trim())
        .unwrap_or_else(|e| panic!("kcat -L -J: {e}\n{}", out.describe()));
    let brokers = md.get("brokers").as_arr().expect("brokers");
    assert!(
        brokers
            .iter()
            .any(|x| x.get("name").as_str() == Some(b.as_str())),
        "no broker advertised as {b}: {md:?}"
    );
    let t = &md.get("topics").as_arr().expect("topics")[0];
    assert_eq!(t.get("topic").as_str(), Some(topic.as_str()));
    let parts = t.get("partitions").as_arr().expect("partitions");
    assert_eq!(parts.len(), 3, "{md:?}");
    for p in parts {
        let leader = p.get("leader").as_i64();
        assert!(
            brokers.iter().any(|x| x.get("id").as_i64() == leader),
            "partition without a known leader: {md:?}"
        );
    }

    // per codec and partition one kcat run (= one batch): 4 keyed records with headers
    let mut sent: BTreeMap<i32, Vec<Sent>> = BTreeMap::new();
    for codec in ALL_CODECS {
        for p in 0..3 {
            let lines: String = (0..4)
                .map(|i| format!("k-{codec}-{p}-{i}:v-{codec}-{p}-{i} kcat kcat kcat\n"))
                .collect();
            run_ok(
                kcat::command(&b).args([
                    "-P",
                    "-t",
                    &topic,
                    "-p",
                    &p.to_string(),
                    "-K:",
                    "-z",
                    codec,
                    "-H",
                    &format!("codec={codec}"),
                    "-H",
                    "via=kcat",
                ]),
                Some(lines.as_bytes()),
                LIMIT,
            );
            for i in 0..4 {
                let hs = vec![
                    ("codec".to_string(), Some(codec.as_bytes().to_vec())),
                    ("via".to_string(), Some(b"kcat".to_vec())),
                ];
                sent.entry(p).or_default().push((
                    Some(format!("k-{codec}-{p}-{i}")),
                    Some(format!("v-{codec}-{p}-{i} kcat kcat kcat")),
                    hs,
                ));
            }
        }
    }
    // null value (-Z: an empty value is null) and no key
    run_ok(
        kcat::command(&b).args(["-P", "-t", &topic, "-p", "0", "-K:", "-Z"]),
        Some(b"null-value:\n"),
        LIMIT,
    );
    sent.entry(0)
        .or_default()
        .push((Some("null-value".into()), None, vec![]));
    run_ok(
        kcat::command(&b).args(["-P", "-t", &topic, "-p", "2"]),
        Some(b"no key\n"),
        LIMIT,
    );
    sent.entry(2)
        .or_default()
        .push((None, Some("no key".into()), vec![]));

    let got = kcat::consume_all(&b, &topic);
    for (p, want) in &sent {
        let mine: Vec<_> = got.iter().filter(|r| r.partition == *p).collect();
        let offsets: Vec<i64> = mine.iter().map(|r| r.offset).collect();
        assert_eq!(
            offsets,
            (0..want.len() as i64).collect::<Vec<_>>(),
            "partition {p}: offsets not dense from 0"
        );
        for (r, (k, v, hs)) in mine.iter().zip(want) {
            let s =
                |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
            assert_eq!(
                (&s(&r.key), &s(&r.value), &r.headers),
                (k, v, hs),
                "partition {p} offset {}",
                r.offset
            );
        }
    }
    let parts = [0, 1, 2];
    let latest = kcat::query(&b, &topic, &parts, -1);
    let earliest = kcat::query(&b, &topic, &parts, -2);
    for (p, want) in &sent {
        assert_eq!(latest[*p as usize], (*p, Some(want.len() as i64)), "latest");
        assert_eq!(earliest[*p as usize], (*p, Some(0)), "earliest");
    }
    progress("kcat -P / -C / -Q agree");
    got
}

#[test]
fn kcat_produce_consume() {
    let Some(env) = setup(
        "kcat_produce_consume",
        &[Tool::Kcat, Tool::Client(Client::Librdkafka)],
    ) else {
        return;
    };
    produce_consume(&env, &env.topic("kcat"));
}

#[test]
fn kcat_group() {
    let Some(env) = setup(
        "kcat_group",
        &[Tool::Kcat, Tool::Client(Client::Librdkafka)],
    ) else {
        return;
    };
    if !env.serves_groups("kcat_group") {
        return;
    }
    let topic = env.topic("kcatgroup");
    let got = produce_consume(&env, &topic);
    let b = env.bootstrap();
    // balanced consumer group: reads everything from the beginning, exits at the end (-e)
    let group = format!("{topic}-group");
    let out = run_ok(
        kcat::command(b).args([
            "-G",
            &group,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-X",
            "auto.offset.reset=earliest",
            "-f",
            "%p %o\n",
            &topic,
        ]),
        None,
        Duration::from_secs(90), // without a coordinator librdkafka waits for ever
    );
    let mut seen: Vec<(i32, i64)> = out
        .stdout_str()
        .lines()
        .filter_map(|l| {
            l.split_once(' ')
                .and_then(|(p, o)| Some((p.parse().ok()?, o.parse().ok()?)))
        })
        .collect();
    seen.sort();
    let mut want: Vec<(i32, i64)> = got.iter().map(|r| (r.partition, r.offset)).collect();
    want.sort();
    assert_eq!(seen, want, "kcat -G read:\n{}", out.describe());
    progress("kcat -G read every record");
}

#[test]
fn kcat_a_reader_that_stops_holds_up_no_producer() {
    let test = "kcat_a_reader_that_stops_holds_up_no_producer";
    let Some(env) = setup(test, &[Tool::Kcat, Tool::Client(Client::Librdkafka)]) else {
        return;
    };
    let b = env.bootstrap().to_string();
    let topic = env.topic("kcatstop");
    assert_eq!(Client::Librdkafka.create(&env, &topic), 3);
    // more records per partition than a gateway reads ahead (Kelp on SMQ: 2048)
    let lines = |from: usize, n: usize| -> Vec<u8> {
        (from..from + n)
            .map(|i| format!("r{i:06}-{}\n", "x".repeat(1000)))
            .collect::<String>()
            .into_bytes()
    };
    let produce = |from: usize, n: usize| {
        run_ok(
            kcat::command(&b).args(["-P", "-t", &topic, "-X", "message.timeout.ms=60000"]),
            Some(&lines(from, n)),
            LIMIT,
        )
    };
    const EACH: usize = 45_000;
    produce(0, EACH);
    // a reader that takes 30 records and leaves
    let out = run_ok(
        kcat::command(&b).args(["-C", "-t", &topic, "-o", "beginning", "-c", "30", "-q"]),
        None,
        LIMIT,
    );
    assert_eq!(out.stdout_str().lines().count(), 30, "{}", out.describe());
    let after = produce(EACH, EACH);
    assert!(
        !String::from_utf8_lossy(&after.stderr).contains("Delivery failed"),
        "{}",
        after.describe()
    );
    let got = kcat::consume_all(&b, &topic);
    let mut values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.value.as_deref().unwrap_or_default()[..7]).into_owned())
        .collect();
    values.sort();
    let expected: Vec<String> = (0..2 * EACH).map(|i| format!("r{i:06}")).collect();
    assert_eq!(values.len(), expected.len(), "records read back");
    assert!(values == expected, "every record, once");
    progress(&format!(
        "{} records produced around a reader that stopped after 30, all read back",
        2 * EACH
    ));
}
