//! Kafka topics and partitions as SMQ sees them.
//!
//! User topics live in one SMQ namespace (`kafka` by default, as SeaweedFS's own gateway does);
//! Kelp's internal topics (`__kelp_…`) and its ledger live in a second one (`kafka-system`). An SMQ
//! topic of N partitions splits the broker's ring of [`RING_SIZE`] slots into N equal ranges, the
//! last one taking the remainder: Kafka partition i is the range that starts at i × (2520 / N).

use super::schema_pb;

pub use kelp_proto::RING_SIZE;

/// The SMQ offset of Kafka offset 0: SMQ offset = Kafka offset + `SMQ_OFFSET_BASE` in every
/// partition Kelp creates (its own ledger topic included).
///
/// Why: weed 4.x writes a flushed log file's offset range into its metadata only when the file's
/// first offset is above 0, and when it reloads a partition (which it does whenever the
/// partition's last publisher leaves, so after every gateway restart) it takes the partition's end
/// from those ranges alone. A partition whose flushed data all sits in a file starting at offset 0
/// then reloads as empty, and `FetchMessage` serves nothing of it. So Kelp starts each partition with
/// one marker record ([`marker_message`]) at SMQ offset 0, on a publish stream of its own that it
/// closes before anything else is published: the broker flushes the marker alone, and every later
/// file starts above 0.
pub const SMQ_OFFSET_BASE: i64 = 1;

/// The marker record Kelp writes at SMQ offset 0 of each partition it creates.
///
/// Its timestamp is one second after the epoch: weed names a flushed file after the timestamp of
/// its first record, to the second, and appends a later flush that gets the same name to the same
/// file. A marker stamped "now" could share its file with the first records, which is what it must
/// not do.
pub fn marker_message() -> super::messaging_pb::DataMessage {
    super::messaging_pb::DataMessage {
        key: bytes::Bytes::from_static(b"kelp-partition-marker"),
        value: bytes::Bytes::new(),
        ts_ns: 1_000_000_000,
        ctrl: None,
    }
}

/// Prefix of Kelp's internal Kafka topics, which live in the system namespace.
pub const INTERNAL_PREFIX: &str = "__kelp_";

/// The ledger topic's name in the system namespace.
pub const MAPPINGS_TOPIC: &str = "offset-mappings";

/// Where Kafka topics go in SMQ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespaces {
    /// Namespace of user topics.
    pub user: String,
    /// Namespace of Kelp's own topics.
    pub system: String,
}

impl Default for Namespaces {
    fn default() -> Namespaces {
        Namespaces {
            user: "kafka".into(),
            system: "kafka-system".into(),
        }
    }
}

impl Namespaces {
    /// The SMQ topic holding Kafka topic `name`: `__kelp_X` is `system/X`, anything else `user/name`.
    pub fn smq_topic(&self, name: &str) -> schema_pb::Topic {
        match name.strip_prefix(INTERNAL_PREFIX) {
            Some(rest) => schema_pb::Topic {
                namespace: self.system.clone(),
                name: rest.to_string(),
            },
            None => schema_pb::Topic {
                namespace: self.user.clone(),
                name: name.to_string(),
            },
        }
    }

    /// The ledger topic.
    pub fn mappings_topic(&self) -> schema_pb::Topic {
        schema_pb::Topic {
            namespace: self.system.clone(),
            name: MAPPINGS_TOPIC.to_string(),
        }
    }

    /// The Kafka topic an SMQ topic holds, `None` for the ledger and foreign namespaces.
    pub fn kafka_topic(&self, topic: &schema_pb::Topic) -> Option<String> {
        if topic.namespace == self.user {
            Some(topic.name.clone())
        } else if topic.namespace == self.system && topic.name != MAPPINGS_TOPIC {
            Some(format!("{INTERNAL_PREFIX}{}", topic.name))
        } else {
            None
        }
    }
}

/// The ring range `[start, stop)` of partition `index` of a topic with `count` partitions.
pub fn partition_range(index: i32, count: i32) -> Option<(i32, i32)> {
    if count <= 0 || count > RING_SIZE || !(0..count).contains(&index) {
        return None;
    }
    let width = RING_SIZE / count;
    let start = index * width;
    let stop = if index == count - 1 {
        RING_SIZE
    } else {
        start + width
    };
    Some((start, stop))
}

/// The Kafka partition of the range starting at `range_start` in a topic of `count` partitions.
pub fn partition_index(range_start: i32, count: i32) -> Option<i32> {
    if count <= 0 || count > RING_SIZE {
        return None;
    }
    let width = RING_SIZE / count;
    (range_start % width == 0 && range_start / width < count).then_some(range_start / width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_tile_the_ring() {
        for count in [1, 2, 3, 7, 16, 32, 100, 2520] {
            let mut next = 0;
            for i in 0..count {
                let (start, stop) = partition_range(i, count).expect("in range");
                assert_eq!(start, next, "count {count} partition {i}");
                assert!(stop > start);
                assert_eq!(partition_index(start, count), Some(i));
                next = stop;
            }
            assert_eq!(next, RING_SIZE);
        }
        // what weed 4.53 assigns a 3-partition topic (proto/tests/smq_contract.rs)
        assert_eq!(partition_range(1, 3), Some((840, 1680)));
        assert_eq!(partition_range(3, 3), None);
        assert_eq!(partition_range(0, 0), None);
        assert_eq!(partition_index(841, 3), None);
        assert_eq!(partition_index(2520, 3), None);
    }

    #[test]
    fn internal_topics_go_to_the_system_namespace() {
        let ns = Namespaces::default();
        let t = ns.smq_topic("__kelp_consumer_offsets");
        assert_eq!(
            (t.namespace.as_str(), t.name.as_str()),
            ("kafka-system", "consumer_offsets")
        );
        assert_eq!(
            ns.kafka_topic(&t).as_deref(),
            Some("__kelp_consumer_offsets")
        );
        let u = ns.smq_topic("orders");
        assert_eq!((u.namespace.as_str(), u.name.as_str()), ("kafka", "orders"));
        assert_eq!(ns.kafka_topic(&u).as_deref(), Some("orders"));
        assert_eq!(ns.kafka_topic(&ns.mappings_topic()), None);
        let foreign = schema_pb::Topic {
            namespace: "other".into(),
            name: "x".into(),
        };
        assert_eq!(ns.kafka_topic(&foreign), None);
    }
}
