//! The SMQ backend against a SeaweedFS `weed` of the test's own, which it stops and starts again
//! under a running producer (the suites that share one weed run with `KELP_E2E_SMQ`; see
//! tests/README.md).
//!
//! - `weed_restart_mid_stream`: the default (idempotent, acks=all) Java producer keeps sending while
//!   the broker is killed (-9: its buffer is not flushed) and started again. The producer sees retriable errors only and ends with every record
//!   acknowledged; Kelp recovers without a restart of its own; every acknowledged record is in the log
//!   at its acknowledged offset except records acknowledged within SMQ's flush interval before the
//!   stop, and no offset is ever given to two records.

use std::collections::BTreeMap;
use std::time::Duration;

use kelp_tests::clients::{java_group, kcat};
use kelp_tests::gateway::{Gateway, smq_backend};
use kelp_tests::live::{Live, wait_for};
use kelp_tests::weed::{self, Weed};
use kelp_tests::{Client, Env, Tool, note, progress, skip};

/// The broker's flush interval in this test (seconds): weed's default. (A shorter one than the ~2 s
/// between the broker's checkpoints of its offset counters makes weed 4.53 hand out offsets it has
/// already flushed records at after a crash, which corrupts its own reads of the partition.)
const FLUSH_S: u64 = 5;

#[test]
fn weed_restart_mid_stream() {
    let test = "weed_restart_mid_stream";
    if smq_backend() {
        note(&format!(
            "{test}: runs with a weed of its own, in the pass without KELP_E2E_SMQ"
        ));
        return;
    }
    for check in [
        weed::available(),
        Tool::Client(Client::Java).check(),
        Tool::Kcat.check(),
    ] {
        if let Err(e) = check {
            skip(test, &e);
            return;
        }
    }
    let mut weed = Weed::start(&[&format!("-mq.broker.logFlushInterval={FLUSH_S}")]);
    let Some(gw) = Gateway::start_on_smq(test, &weed.broker) else {
        return;
    };
    let mut env = Env::new(test, gw);
    let topic = env.topic("weedrestart");
    let out = Client::Java.run(&env, &topic, &["create", "--partitions", "3"]);
    assert!(out.success(), "{}", out.describe());

    let mut producer = Live::start(
        "producer",
        &mut java_group(
            env.bootstrap(),
            &topic,
            &[
                "produce",
                "--first",
                "0",
                "--count",
                "1500",
                "--partitions",
                "3",
                "--rounds",
                "30",
                "--until-stop",
                "yes",
                "--pause-ms",
                "20",
            ],
        ),
    );
    wait_for(
        Duration::from_secs(60),
        "500 records acknowledged",
        &[&producer],
        || (producer.flushed() >= 500).then_some(()),
    );
    // Everything acknowledged by now has been in the broker for more than a flush interval (and a
    // margin) when it is killed: it must survive.
    let safe = producer.flushed();
    std::thread::sleep(Duration::from_secs(FLUSH_S + 2));
    let at_stop = producer.flushed();
    progress(&format!(
        "{safe} acknowledged at least {} s before the kill, {at_stop} at the kill",
        FLUSH_S + 2
    ));
    weed.crash_restart();
    wait_for(
        Duration::from_secs(150),
        "500 more records acknowledged after the broker's restart",
        &[&producer],
        || (producer.flushed() >= at_stop + 500).then_some(()),
    );
    producer.send("stop");
    let status = producer.wait_exit(Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "the producer ended without an error\n{}",
        producer.story()
    );
    assert!(env.gw.alive(), "kelp kept running");

    // (partition, offset) -> value acknowledged there
    let mut acked: BTreeMap<(i32, i64), String> = BTreeMap::new();
    let mut order: Vec<(i32, i64, usize)> = Vec::new();
    for j in producer.events("ack") {
        let p = j.get("partition").as_i64().expect("partition") as i32;
        let o = j.get("offset").as_i64().expect("offset");
        let v = j.get("value").as_str().expect("value").to_string();
        let i: usize = v[1..].parse().expect("v<i>");
        assert!(
            acked.insert((p, o), v).is_none(),
            "offset {o} of partition {p} acknowledged twice"
        );
        order.push((p, o, i));
    }
    let log: BTreeMap<(i32, i64), String> = kcat::consume_all(env.bootstrap(), &topic)
        .into_iter()
        .map(|r| {
            let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or(b"")).into_owned();
            ((r.partition, r.offset), v)
        })
        .collect();
    let mut values: Vec<&String> = log.values().collect();
    values.sort();
    values.dedup();
    assert_eq!(values.len(), log.len(), "no record is in the log twice");
    let mut lost = Vec::new();
    for (p, o, i) in &order {
        match log.get(&(*p, *o)) {
            Some(v) => assert_eq!(v, &acked[&(*p, *o)], "partition {p} offset {o}"),
            None => lost.push(*i),
        }
    }
    let lost_early: Vec<&usize> = lost.iter().filter(|i| **i < safe).collect();
    assert!(
        lost_early.is_empty(),
        "records acknowledged more than a flush interval before the crash are lost: {lost_early:?}"
    );
    progress(&format!(
        "weed killed and restarted under load: {} records acknowledged, {} of them lost (#{}..#{}, \
         all after #{safe}, acknowledged less than {} s before the kill), offsets unique",
        order.len(),
        lost.len(),
        lost.iter().min().copied().unwrap_or(0),
        lost.iter().max().copied().unwrap_or(0),
        FLUSH_S + 2
    ));
}
