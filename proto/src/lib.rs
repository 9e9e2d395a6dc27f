//! SeaweedMQ gRPC definitions (prost types and tonic stubs) for the subset of the broker's
//! `SeaweedMessaging` service that Kelp uses.
//!
//! The `.proto` files in `proto/proto/` are Kelp's own: they keep SeaweedFS's package, service, method,
//! message and field names and numbers (as of `github.com/seaweedfs/seaweedfs`
//! v0.0.0-20261109003541-7506e5f91cd6, weed 4.53) so the wire matches, and leave out the RPCs Kelp does
//! not call (balancer and broker-to-broker RPCs, and those that carry `filer_pb.LogEntry`).
//!
//! - [`messaging_pb`]: the `SeaweedMessaging` service —
//!   [`messaging_pb::seaweed_messaging_client::SeaweedMessagingClient`] for the gateway and
//!   [`messaging_pb::seaweed_messaging_server`] for test doubles — and its request/response messages.
//! - [`schema_pb`]: topics, partitions, offsets, record types and values.
//!
//! Client settings the broker needs: raise the decode limit
//! (`SeaweedMessagingClient::max_decoding_message_size`; tonic's default is 4 MiB, the broker's gRPC
//! limit is 1 GiB) and keep HTTP/2 keep-alive pings off or at least 20 s apart (closer pings get the
//! connection closed). `PublishMessage` and `FetchMessage` must go to the partition's leader broker from
//! `LookupTopicBrokers` (whose `follower_broker` names the leader itself when there is one broker: do not
//! pass it on in `PublishMessageRequest.init`).
//!
//! Readiness (checked by `tests/smq_contract.rs` against weed 4.53): `FindBrokerLeader` answering a
//! non-empty broker is not enough; the broker answers control-plane calls with `Unavailable` ("dial tcp:
//! missing address") for a few more seconds, until it knows itself as the balancer. Wait until a
//! `ListTopics` also succeeds (`examples/smq_probe.rs` does both).

/// Shared SeaweedMQ types (`schema_pb`): [`schema_pb::Topic`], [`schema_pb::Partition`],
/// [`schema_pb::RecordValue`], [`schema_pb::Value`], …
pub mod schema_pb {
    include!(concat!(env!("OUT_DIR"), "/schema_pb.rs"));
}

/// The `SeaweedMessaging` service (`messaging_pb`): client, server trait and messages.
pub mod messaging_pb {
    include!(concat!(env!("OUT_DIR"), "/messaging_pb.rs"));
}

/// Slots in the broker's partition ring: a topic with `n` partitions gets `n` consecutive ranges of
/// `RING_SIZE / n` slots, the last one ending at `RING_SIZE`.
pub const RING_SIZE: i32 = 2520;

/// Largest gRPC message Kelp decodes from the broker (the broker itself accepts up to 1 GiB).
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// Wire checks that need no broker: field numbers and oneof tags as SeaweedFS encodes them.
#[cfg(test)]
mod tests {
    use super::RING_SIZE;
    use super::messaging_pb::*;
    use super::schema_pb::{self, Partition, Topic};

    fn bytes(m: &impl prost::Message) -> Vec<u8> {
        m.encode_to_vec()
    }

    #[test]
    fn publish_messages() {
        let ack = PublishMessageResponse {
            ack_ts_ns: 1,
            error: "e".into(),
            should_close: true,
            error_code: 2,
            assigned_offset: 3,
        };
        assert_eq!(
            bytes(&ack),
            [0x08, 1, 0x12, 1, b'e', 0x18, 1, 0x20, 2, 0x28, 3]
        );

        let data = DataMessage {
            key: b"k"[..].into(),
            value: b"v"[..].into(),
            ts_ns: 7,
            ctrl: Some(ControlMessage {
                is_close: true,
                publisher_name: String::new(),
            }),
        };
        assert_eq!(
            bytes(&data),
            [0x0a, 1, b'k', 0x12, 1, b'v', 0x18, 7, 0x22, 2, 0x08, 1]
        );

        let req = PublishMessageRequest {
            message: Some(publish_message_request::Message::Data(DataMessage {
                value: b"v"[..].into(),
                ..Default::default()
            })),
        };
        assert_eq!(bytes(&req), [0x12, 3, 0x12, 1, b'v']);

        let init = PublishMessageRequest {
            message: Some(publish_message_request::Message::Init(
                publish_message_request::InitMessage {
                    topic: Some(Topic {
                        namespace: "n".into(),
                        name: "t".into(),
                    }),
                    publisher_name: "p".into(),
                    ..Default::default()
                },
            )),
        };
        assert_eq!(
            bytes(&init),
            [
                0x0a, 11, 0x0a, 6, 0x0a, 1, b'n', 0x12, 1, b't', 0x2a, 1, b'p'
            ]
        );
    }

    #[test]
    fn partition_and_ring() {
        let p = Partition {
            ring_size: RING_SIZE,
            range_start: 0,
            range_stop: 840,
            unix_time_ns: 1,
        };
        // 2520 = varint d8 13, 840 = varint c8 06; range_start 0 is not written.
        assert_eq!(bytes(&p), [0x08, 0xd8, 0x13, 0x18, 0xc8, 0x06, 0x20, 1]);
    }

    #[test]
    fn fetch_and_range_info() {
        let req = FetchMessageRequest {
            start_offset: 3,
            consumer_id: "c".into(),
            ..Default::default()
        };
        assert_eq!(bytes(&req), [0x18, 3, 0x4a, 1, b'c']);
        let resp = FetchMessageResponse {
            high_water_mark: 10,
            end_of_partition: true,
            next_offset: 10,
            ..Default::default()
        };
        assert_eq!(bytes(&resp), [0x10, 10, 0x20, 1, 0x38, 10]);
        let info = GetPartitionRangeInfoResponse {
            record_count: 10,
            error: "x".into(),
            ..Default::default()
        };
        assert_eq!(bytes(&info), [0x50, 10, 0x62, 1, b'x']);
    }

    #[test]
    fn values_and_subscribe() {
        use schema_pb::value::Kind;
        let list = schema_pb::Value {
            kind: Some(Kind::ListValue(schema_pb::ListValue {
                values: vec![schema_pb::Value {
                    kind: Some(Kind::Int64Value(1)),
                }],
            })),
        };
        assert_eq!(bytes(&list), [0x72, 4, 0x0a, 2, 0x18, 1]);
        let record = schema_pb::Value {
            kind: Some(Kind::RecordValue(schema_pb::RecordValue::default())),
        };
        assert_eq!(bytes(&record), [0x7a, 0]);

        let sub = SubscribeMessageRequest {
            message: Some(subscribe_message_request::Message::Init(
                subscribe_message_request::InitMessage {
                    offset_type: schema_pb::OffsetType::ExactOffset as i32,
                    filter: "f".into(),
                    sliding_window_size: 1,
                    ..Default::default()
                },
            )),
        };
        assert_eq!(bytes(&sub), [0x0a, 7, 0x30, 25, 0x52, 1, b'f', 0x60, 1]);
    }
}
