//! How fast a SeaweedMQ partition reads back through `SubscribeMessage` (a stream) and through
//! `FetchMessage` (one call per chunk): the measurement behind the choice of Kelp's read path.
//!
//!     cargo run --release -p kelp-tokio --example smq_read_speed -- BROKER NAMESPACE TOPIC COUNT
//!
//! (TOPIC's partition 0, written by Kelp: SMQ offsets 1..=COUNT.)
use kelp_core::smq::messaging_pb::seaweed_messaging_client::SeaweedMessagingClient;
use kelp_core::smq::messaging_pb::subscribe_message_request::{InitMessage, Message};
use kelp_core::smq::messaging_pb::subscribe_message_response::Message as Reply;
use kelp_core::smq::messaging_pb::{
    FetchMessageRequest, LookupTopicBrokersRequest, SubscribeMessageRequest,
};
use kelp_core::smq::schema_pb::{OffsetType, PartitionOffset, Topic};
use std::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 4 {
        return Err("usage: smq_read_speed BROKER NAMESPACE TOPIC COUNT".into());
    }
    let (broker, count) = (&a[0], a[3].parse::<usize>()?);
    // optional 5th argument: the SMQ offset the subscription starts at (EXACT_OFFSET)
    let from: Option<i64> = a.get(4).and_then(|s| s.parse().ok());
    let topic = Topic {
        namespace: a[1].clone(),
        name: a[2].clone(),
    };
    let mut c = SeaweedMessagingClient::connect(format!("http://{broker}"))
        .await?
        .max_decoding_message_size(1 << 30);
    let p = c
        .lookup_topic_brokers(LookupTopicBrokersRequest {
            topic: Some(topic.clone()),
        })
        .await?
        .into_inner()
        .broker_partition_assignments
        .remove(0)
        .partition;

    let started = Instant::now();
    let (mut at, mut calls) = (1i64, 0);
    while (at as usize) <= count {
        let r = c
            .fetch_message(FetchMessageRequest {
                topic: Some(topic.clone()),
                partition: p,
                start_offset: at,
                max_bytes: 1 << 20,
                max_messages: 10_000,
                ..Default::default()
            })
            .await?
            .into_inner();
        calls += 1;
        if r.messages.is_empty() {
            break;
        }
        at += r.messages.len() as i64;
    }
    println!(
        "FetchMessage: {} records in {:?} ({calls} calls)",
        at - 1,
        started.elapsed()
    );

    let started = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tx.send(SubscribeMessageRequest {
        message: Some(Message::Init(InitMessage {
            consumer_group: format!("speed-{}", std::process::id()),
            consumer_id: "speed".into(),
            client_id: "speed".into(),
            topic: Some(topic.clone()),
            partition_offset: Some(PartitionOffset {
                partition: p,
                start_ts_ns: 0,
                start_offset: from.unwrap_or(0),
            }),
            offset_type: if from.is_some() {
                OffsetType::ExactOffset as i32
            } else {
                OffsetType::ResetToEarliest as i32
            },
            sliding_window_size: 1024,
            ..Default::default()
        })),
    })?;
    let mut replies = c
        .subscribe_message(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut n = 0;
    let want = count + 1 - from.unwrap_or(0) as usize;
    while n < want {
        match replies.message().await? {
            Some(r) => {
                if let Some(Reply::Data(m)) = r.message {
                    if n == 0 {
                        let first = kelp_core::smq::record::read_slots(
                            kelp_core::types::Offset(from.unwrap_or(0) - 1),
                            std::slice::from_ref(&m),
                        );
                        println!("first message: {:?}", first.0[0].as_ref().map(|r| r.offset));
                    }
                    n += 1;
                }
            }
            None => break,
        }
    }
    println!(
        "SubscribeMessage: {n} records (the marker included) in {:?}",
        started.elapsed()
    );
    drop(tx);
    Ok(())
}
