//! The gateway's figures as a metrics endpoint serves them: Prometheus text and JSON.
//!
//! Rendering is pure (the gateway's counters in, text out), so every runtime serves the same bytes
//! and a test needs no server to read them. A driver asks between two inputs, so the figures are
//! consistent with each other.

use super::{Gateway, PartitionStats};
use std::fmt::Write;

/// A per-partition gauge: its name, its help text, and its value for a partition.
type Gauge = (&'static str, &'static str, fn(&PartitionStats) -> i64);

/// How [`Gateway::render_stats`] writes the figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsFormat {
    /// Prometheus text exposition (version 0.0.4).
    Prometheus,
    /// One JSON object, indented.
    Json,
}

impl StatsFormat {
    /// The `content-type` of a response carrying this format.
    pub fn content_type(self) -> &'static str {
        match self {
            StatsFormat::Prometheus => "text/plain; version=0.0.4",
            StatsFormat::Json => "application/json",
        }
    }
}

impl Gateway {
    /// The counters, watermarks and request latencies now, in `format`.
    pub fn render_stats(&self, format: StatsFormat) -> String {
        match format {
            StatsFormat::Prometheus => self.prometheus(),
            StatsFormat::Json => self.json(),
        }
    }

    fn prometheus(&self) -> String {
        let s = self.stats();
        let mut out = String::new();
        let mut scalar = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        scalar(
            "kelp_requests_total",
            "counter",
            "Requests decoded.",
            s.requests,
        );
        scalar(
            "kelp_bytes_in_total",
            "counter",
            "Request bytes read.",
            s.bytes_in,
        );
        scalar(
            "kelp_bytes_out_total",
            "counter",
            "Response bytes written.",
            s.bytes_out,
        );
        let closed = "Connections closed for bad input.";
        scalar(
            "kelp_protocol_errors_total",
            "counter",
            closed,
            s.protocol_errors,
        );
        let open = self.connection_count() as u64;
        scalar("kelp_connections", "gauge", "Open connections.", open);
        let partitions = self.partition_stats();
        let gauges: [Gauge; 2] = [
            (
                "kelp_high_watermark",
                "High watermark per partition.",
                |p| p.high_watermark,
            ),
            (
                "kelp_ledger_entries",
                "Sparse ledger entries per partition.",
                |p| p.ledger_entries as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for p in &partitions {
                let (topic, index) = (&p.partition.topic, p.partition.partition);
                let labels = format!("topic=\"{topic}\",partition=\"{index}\"");
                let _ = writeln!(out, "{name}{{{labels}}} {}", value(p));
            }
        }
        let _ = writeln!(
            out,
            "# HELP kelp_request_latency_ms Request latency by API.\n# TYPE kelp_request_latency_ms summary"
        );
        for (api, l) in &s.latency {
            let api = api.name();
            let _ = writeln!(
                out,
                "kelp_request_latency_ms_sum{{api=\"{api}\"}} {}\nkelp_request_latency_ms_count{{api=\"{api}\"}} {}",
                l.total_ms, l.count
            );
        }
        out
    }

    fn json(&self) -> String {
        let s = self.stats();
        let partitions: Vec<String> = self
            .partition_stats()
            .iter()
            .map(|p| {
                format!(
                    "    {{\n      \"topic\": {},\n      \"partition\": {},\n      \"log_start_offset\": {},\n      \"high_watermark\": {},\n      \"ledger_entries\": {}\n    }}",
                    quoted(p.partition.topic.as_str()),
                    p.partition.partition,
                    p.log_start_offset,
                    p.high_watermark,
                    p.ledger_entries
                )
            })
            .collect();
        let latencies: Vec<String> = s
            .latency
            .iter()
            .map(|(api, l)| {
                format!(
                    "    {{\n      \"api\": {},\n      \"count\": {},\n      \"total_ms\": {},\n      \"mean_ms\": {:.3},\n      \"max_ms\": {}\n    }}",
                    quoted(api.name()),
                    l.count,
                    l.total_ms,
                    l.total_ms as f64 / l.count.max(1) as f64,
                    l.max_ms
                )
            })
            .collect();
        format!(
            "{{\n  \"connections\": {},\n  \"requests\": {},\n  \"bytes_in\": {},\n  \"bytes_out\": {},\n  \"protocol_errors\": {},\n  \"partitions\": [\n{}\n  ],\n  \"latencies\": [\n{}\n  ]\n}}\n",
            self.connection_count(),
            s.requests,
            s.bytes_in,
            s.bytes_out,
            s.protocol_errors,
            partitions.join(",\n"),
            latencies.join(",\n")
        )
    }
}

/// `text` as a JSON string.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(quoted("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
