//! Per client: create a 3-partition topic, produce the record set (every codec, headers, null and
//! empty keys and values, binary bytes, a 1 MiB value; `records::plan`), check the acks (dense
//! offsets from 0), read it back with kcat and compare byte for byte, check watermarks and time
//! lookups with kcat and with the client, and finally read it back with the client itself.

use kelp_tests::clients::kcat;
use kelp_tests::gateway::Gateway;
use kelp_tests::records::{self, PARTITIONS};
use kelp_tests::{Client, Env, Tool, now_ms, progress, setup};

fn round_trip(client: Client) {
    let test = client.name().replace('-', "_");
    let Some(env) = setup(&test, &[Tool::Client(client), Tool::Kcat]) else {
        return;
    };
    round_trip_on(&env, client);
}

/// The core embedded in a 170-line event loop of its own (`core/examples/event_loop.rs`: one thread,
/// non-blocking std sockets, in-memory storage) serves the same round trip to librdkafka and kcat.
#[test]
fn embedding_example() {
    let test = "embedding_example";
    for t in [Tool::Client(Client::Librdkafka), Tool::Kcat] {
        if let Err(e) = t.check() {
            kelp_tests::skip(test, &e);
            return;
        }
    }
    if std::env::var("KELP_E2E_BOOTSTRAP").is_ok() || kelp_tests::gateway::smq_backend() {
        return; // not the gateway under test
    }
    let Some(gw) = Gateway::start_example(test, "event_loop") else {
        return;
    };
    round_trip_on(&Env::new(test, gw), Client::Librdkafka);
}

fn round_trip_on(env: &Env, client: Client) {
    let topic = env.topic("rt");
    let bootstrap = env.bootstrap().to_string();

    assert_eq!(
        client.create(env, &topic),
        i64::from(PARTITIONS),
        "{} create: partition count",
        client.name()
    );

    let plan = records::plan(&client.caps(), now_ms() - 600_000);
    let file = env.path("records.tsv");
    records::write_plan(&file, &plan);
    let acks = client.produce(env, &topic, &file);
    records::check_acks(&plan, &acks).unwrap_or_else(|e| panic!("{} produce: {e}", client.name()));
    progress(&format!("{} records acked with dense offsets", acks.len()));

    // kcat first: it needs no group APIs, while kafkajs can only read through a consumer group
    let by_kcat = kcat::consume_all(&bootstrap, &topic);
    records::same_records("acked", &acks, "consumed by kcat", &by_kcat)
        .unwrap_or_else(|e| panic!("{e}"));
    progress("kcat read the same records");

    let queries = records::time_queries(&acks);
    let want = records::expected_offsets(&acks, &queries);
    let got = kcat::offsets(&bootstrap, &topic, &want);
    records::check_offsets("kcat -Q", &want, &got, false).unwrap_or_else(|e| panic!("{e}"));
    let got = client.offsets(env, &topic, &queries);
    records::check_offsets(client.name(), &want, &got, client.caps().time_miss_is_end)
        .unwrap_or_else(|e| panic!("{e}"));
    progress("watermarks and time lookups agree");

    // kafkajs reads only through a consumer group.
    if client == Client::Kafkajs && !env.serves_groups("kafkajs consume") {
        return;
    }
    let mine = client.consume(env, &topic);
    records::same_records(
        "acked",
        &acks,
        &format!("consumed by {}", client.name()),
        &mine,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    progress("the client read the same records");
}

#[test]
fn java() {
    round_trip(Client::Java);
}

#[test]
fn librdkafka() {
    round_trip(Client::Librdkafka);
}

#[test]
fn kafka_python() {
    round_trip(Client::KafkaPython);
}

#[test]
fn franz_go() {
    round_trip(Client::FranzGo);
}

#[test]
fn kafkajs() {
    round_trip(Client::Kafkajs);
}
