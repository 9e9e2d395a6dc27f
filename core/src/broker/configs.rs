//! Topic configuration: what Kelp honours, what it accepts and reports, and the three APIs that read
//! and change it (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs), plus retention.
//!
//! Honoured: `retention.ms` and `retention.bytes` (whole segments past either limit are dropped),
//! `max.message.bytes` (a larger batch is refused with MESSAGE_TOO_LARGE). Accepted and reported:
//! the common Kafka topic settings that have no meaning for a single-node log (replication, flush,
//! compaction tuning). Refused: `cleanup.policy=compact` (Kelp does not compact) and
//! `message.timestamp.type=LogAppendTime` (Kelp keeps producer timestamps); unknown names are refused
//! as Kafka refuses them. Settings are stored with the topic (`StorageCommand::WriteTopicConfig`).

use super::{Gateway, TokenUse};
use crate::ErrorCode;
use crate::api::alter_configs::response::AlterConfigsResourceResponse;
use crate::api::alter_configs::{AlterConfigsRequest, AlterConfigsResponse};
use crate::api::describe_configs::response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use crate::api::describe_configs::{DescribeConfigsRequest, DescribeConfigsResponse};
use crate::api::incremental_alter_configs::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use crate::codec::KStr;
use crate::storage::StorageCommand;
use crate::types::{Offset, TimestampMs, TopicPartition};
use std::collections::BTreeMap;

/// Kafka's ConfigResource type for topics.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
/// Kafka's ConfigResource type for brokers.
pub(crate) const RESOURCE_BROKER: i8 = 4;

/// (name, default, Kafka ConfigType: 1 BOOLEAN, 2 STRING, 3 INT, 5 LONG, 7 LIST)
const KNOWN: [(&str, &str, i8); 18] = [
    ("cleanup.policy", "delete", 7),
    ("retention.ms", "604800000", 5),
    ("retention.bytes", "-1", 5),
    ("max.message.bytes", "1048588", 3),
    ("segment.bytes", "1073741824", 3),
    ("segment.ms", "604800000", 5),
    ("min.insync.replicas", "1", 3),
    ("compression.type", "producer", 2),
    ("message.timestamp.type", "CreateTime", 2),
    ("unclean.leader.election.enable", "false", 1),
    ("flush.messages", "9223372036854775807", 5),
    ("flush.ms", "9223372036854775807", 5),
    ("index.interval.bytes", "4096", 3),
    ("delete.retention.ms", "86400000", 5),
    ("min.compaction.lag.ms", "0", 5),
    ("max.compaction.lag.ms", "9223372036854775807", 5),
    ("file.delete.delay.ms", "60000", 5),
    ("preallocate", "false", 1),
];

/// The settings a topic has been given explicitly; everything else takes its default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicConfig {
    set: BTreeMap<String, String>,
}

impl TopicConfig {
    /// Settings from stored (name, value) pairs, as recovery found them.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, String)>) -> TopicConfig {
        TopicConfig {
            set: entries.into_iter().collect(),
        }
    }

    /// The explicitly set (name, value) pairs, for storing.
    pub fn entries(&self) -> Vec<(String, String)> {
        self.set
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn get(&self, name: &str) -> &str {
        self.set
            .get(name)
            .map(String::as_str)
            .or_else(|| {
                KNOWN
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .map(|(_, d, _)| *d)
            })
            .unwrap_or("")
    }

    /// `retention.ms`; negative means no time limit.
    pub fn retention_ms(&self) -> i64 {
        self.get("retention.ms").parse().unwrap_or(-1)
    }

    /// `retention.bytes`; negative means no size limit.
    pub fn retention_bytes(&self) -> i64 {
        self.get("retention.bytes").parse().unwrap_or(-1)
    }

    /// `max.message.bytes`: the largest batch accepted.
    pub fn max_message_bytes(&self) -> usize {
        self.get("max.message.bytes").parse().unwrap_or(1_048_588)
    }

    /// Sets `name` after checking it; `None` removes it (back to the default).
    pub fn set(&mut self, name: &str, value: Option<&str>) -> Result<(), String> {
        match value {
            None => {
                self.set.remove(name);
                Ok(())
            }
            Some(v) => {
                validate(name, v)?;
                self.set.insert(name.to_string(), v.to_string());
                Ok(())
            }
        }
    }
}

/// Whether Kelp can take `name = value`.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some((_, _, kind)) = KNOWN.iter().find(|(n, _, _)| *n == name) else {
        return Err(format!("unknown topic config `{name}`"));
    };
    let ok = match kind {
        1 => matches!(value, "true" | "false"),
        3 => value.parse::<i32>().is_ok(),
        5 => value.parse::<i64>().is_ok(),
        _ => true,
    };
    if !ok {
        return Err(format!("invalid value `{value}` for `{name}`"));
    }
    match (name, value) {
        ("cleanup.policy", v) if v.split(',').any(|p| p.trim() == "compact") => {
            Err("cleanup.policy=compact is not supported: Kelp does not compact".into())
        }
        ("message.timestamp.type", "LogAppendTime") => {
            Err("message.timestamp.type=LogAppendTime is not supported".into())
        }
        ("max.message.bytes", v) if v.parse::<i32>().is_ok_and(|n| n < 0) => {
            Err("max.message.bytes must be >= 0".into())
        }
        _ => Ok(()),
    }
}

fn describe_topic_config(
    config: &TopicConfig,
    wanted: Option<&[KStr]>,
) -> Vec<DescribeConfigsResourceResult> {
    KNOWN
        .iter()
        .filter(|(name, _, _)| wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == *name)))
        .map(|(name, default, config_type)| {
            let set = config.set.get(*name);
            DescribeConfigsResourceResult {
                name: KStr::from_static(name),
                value: Some(KStr::from(set.map_or(*default, String::as_str))),
                // 1 = DYNAMIC_TOPIC_CONFIG, 5 = DEFAULT_CONFIG
                config_source: if set.is_some() { 1 } else { 5 },
                config_type: *config_type,
                documentation: None,
                ..Default::default()
            }
        })
        .collect()
}

impl Gateway {
    pub(super) fn describe_configs(
        &self,
        request: DescribeConfigsRequest,
    ) -> DescribeConfigsResponse {
        let mut response = DescribeConfigsResponse::default();
        for resource in request.resources {
            let mut result = DescribeConfigsResult {
                resource_type: resource.resource_type,
                resource_name: resource.resource_name.clone(),
                error_message: None,
                ..Default::default()
            };
            match (
                resource.resource_type,
                self.topics.get(&resource.resource_name),
            ) {
                (RESOURCE_TOPIC, Some(topic)) => {
                    result.configs = describe_topic_config(
                        &topic.config,
                        resource.configuration_keys.as_deref(),
                    );
                }
                (RESOURCE_TOPIC, None) => {
                    result.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0
                }
                (RESOURCE_BROKER, _) => {}
                _ => result.error_code = ErrorCode::INVALID_REQUEST.0,
            }
            response.results.push(result);
        }
        response
    }

    /// Validates and applies one resource's changes (all or nothing), then stores them.
    fn alter_topic(
        &mut self,
        resource_type: i8,
        name: &KStr,
        validate_only: bool,
        change: impl FnOnce(&mut TopicConfig) -> Result<(), String>,
    ) -> AlterConfigsResourceResponse {
        let mut r = AlterConfigsResourceResponse {
            resource_type,
            resource_name: name.clone(),
            error_message: None,
            ..Default::default()
        };
        let fail = |r: &mut AlterConfigsResourceResponse, code: ErrorCode, message: String| {
            r.error_code = code.0;
            r.error_message = Some(KStr::from(message));
        };
        if resource_type != RESOURCE_TOPIC {
            fail(
                &mut r,
                ErrorCode::INVALID_REQUEST,
                "only topic configs can be changed".into(),
            );
            return r;
        }
        let Some(topic) = self.topics.get_mut(name) else {
            fail(
                &mut r,
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no topic `{name}`"),
            );
            return r;
        };
        let mut updated = topic.config.clone();
        if let Err(message) = change(&mut updated) {
            fail(&mut r, ErrorCode::INVALID_CONFIG, message);
            return r;
        }
        if !validate_only {
            topic.config = updated;
            self.store_topic_config(name);
        }
        r
    }

    /// Writes the topic's settings next to its partition 0 log.
    pub(super) fn store_topic_config(&mut self, name: &KStr) {
        let Some(topic) = self.topics.get(name) else {
            return;
        };
        let entries = topic.config.entries();
        let token = self.token(TokenUse::Detached);
        let partition = TopicPartition {
            topic: name.clone(),
            partition: 0,
        };
        self.storage(StorageCommand::WriteTopicConfig {
            token,
            partition,
            entries,
        });
    }

    pub(super) fn alter_configs(&mut self, request: AlterConfigsRequest) -> AlterConfigsResponse {
        let mut response = AlterConfigsResponse::default();
        for resource in request.resources {
            // AlterConfigs replaces the whole set.
            let r = self.alter_topic(
                resource.resource_type,
                &resource.resource_name,
                request.validate_only,
                |c| {
                    let mut fresh = TopicConfig::default();
                    for entry in &resource.configs {
                        fresh.set(entry.name.as_str(), entry.value.as_ref().map(KStr::as_str))?;
                    }
                    *c = fresh;
                    Ok(())
                },
            );
            response.responses.push(r);
        }
        response
    }

    pub(super) fn incremental_alter_configs(
        &mut self,
        request: IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        use crate::api::incremental_alter_configs::response::AlterConfigsResourceResponse as Inc;
        let mut response = IncrementalAlterConfigsResponse::default();
        for resource in request.resources {
            let r = self.alter_topic(
                resource.resource_type,
                &resource.resource_name,
                request.validate_only,
                |c| {
                    for entry in &resource.configs {
                        let name = entry.name.as_str();
                        let value = entry.value.as_ref().map(KStr::as_str);
                        match entry.config_operation {
                            // SET
                            0 => c.set(name, value)?,
                            // DELETE
                            1 => c.set(name, None)?,
                            // APPEND / SUBTRACT work on list settings; cleanup.policy is the only one.
                            2 | 3 => {
                                return Err(format!(
                                    "APPEND/SUBTRACT on `{name}` is not supported"
                                ));
                            }
                            op => return Err(format!("unknown config operation {op}")),
                        }
                    }
                    Ok(())
                },
            );
            response.responses.push(Inc {
                error_code: r.error_code,
                error_message: r.error_message,
                resource_type: r.resource_type,
                resource_name: r.resource_name,
                ..Default::default()
            });
        }
        response
    }

    /// Drops whole segments past a topic's `retention.ms` or `retention.bytes`. The segment being
    /// appended to always stays, as in Kafka.
    pub(super) fn enforce_retention(&mut self) {
        let now = self.now.wall;
        let mut truncations = Vec::new();
        for (name, topic) in self.topics.iter_mut() {
            let (retention_ms, retention_bytes) =
                (topic.config.retention_ms(), topic.config.retention_bytes());
            if retention_ms < 0 && retention_bytes < 0 {
                continue;
            }
            for (i, p) in topic.partitions.iter_mut().enumerate() {
                let segments = p.ledger.segments();
                let mut total: i64 = segments.iter().map(|s| s.bytes as i64).sum();
                let mut new_start: Option<Offset> = None;
                for pair in segments.windows(2) {
                    let (old, next) = (pair[0], pair[1]);
                    let expired = retention_ms >= 0
                        && old.max_timestamp < TimestampMs(now.0.saturating_sub(retention_ms));
                    let oversized =
                        retention_bytes >= 0 && total - old.bytes as i64 >= retention_bytes;
                    if !(expired || oversized) {
                        break;
                    }
                    total -= old.bytes as i64;
                    new_start = Some(next.first_offset);
                }
                if let Some(offset) = new_start
                    && offset > p.ledger.log_start_offset()
                {
                    let start = p.ledger.advance_log_start(offset);
                    truncations.push((
                        TopicPartition {
                            topic: name.clone(),
                            partition: i as i32,
                        },
                        start,
                    ));
                }
            }
        }
        for (tp, offset) in truncations {
            let token = self.token(TokenUse::Detached);
            self.storage(StorageCommand::TruncateBefore {
                token,
                partition: tp,
                offset,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_settings_validate_and_unknown_or_unsupported_are_refused() {
        let mut c = TopicConfig::default();
        assert_eq!(c.retention_ms(), 604_800_000);
        c.set("retention.ms", Some("1000")).unwrap();
        assert_eq!(c.retention_ms(), 1000);
        assert!(c.set("retention.ms", Some("soon")).is_err());
        assert!(c.set("cleanup.policy", Some("compact")).is_err());
        assert!(c.set("no.such.thing", Some("1")).is_err());
        c.set("retention.ms", None).unwrap();
        assert_eq!(c.retention_ms(), 604_800_000);
        assert_eq!(TopicConfig::from_entries(c.entries()), c);
    }
}
