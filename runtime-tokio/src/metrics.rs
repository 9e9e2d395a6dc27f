//! `/metrics` (Prometheus text) and `/stats` (JSON) over a minimal HTTP/1.1 responder.
//!
//! The gateway task answers a snapshot request between two inputs, so the figures are consistent
//! with each other and reading them takes no lock.

use crate::runtime::Rt;
use crate::server::Event;
use kelp_core::broker::Gateway;
use serde::Serialize;
use std::fmt::Write;
use std::net::SocketAddr;
use tokio::sync::{mpsc, oneshot};

/// Figures for the endpoints.
#[derive(Serialize, Debug)]
pub struct Snapshot {
    /// Open connections.
    pub connections: usize,
    /// Requests decoded since start.
    pub requests: u64,
    /// Request bytes read.
    pub bytes_in: u64,
    /// Response bytes written.
    pub bytes_out: u64,
    /// Connections closed for bad input.
    pub protocol_errors: u64,
    /// Per partition.
    pub partitions: Vec<PartitionSnapshot>,
    /// Request latencies per API.
    pub latencies: Vec<LatencySnapshot>,
}

/// One API's request latencies.
#[derive(Serialize, Debug)]
pub struct LatencySnapshot {
    /// The API's name.
    pub api: &'static str,
    /// Requests answered.
    pub count: u64,
    /// Sum of their latencies in ms.
    pub total_ms: u64,
    /// Mean latency in ms.
    pub mean_ms: f64,
    /// Largest latency in ms.
    pub max_ms: u64,
}

/// One partition's figures.
#[derive(Serialize, Debug)]
pub struct PartitionSnapshot {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// First stored offset.
    pub log_start_offset: i64,
    /// High watermark.
    pub high_watermark: i64,
    /// Sparse ledger entries in memory.
    pub ledger_entries: usize,
}

impl Snapshot {
    /// The gateway's figures now.
    pub fn of(gateway: &Gateway) -> Snapshot {
        let s = gateway.stats();
        Snapshot {
            connections: gateway.connection_count(),
            requests: s.requests,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            protocol_errors: s.protocol_errors,
            partitions: gateway
                .partition_stats()
                .into_iter()
                .map(|p| PartitionSnapshot {
                    topic: p.partition.topic.to_string(),
                    partition: p.partition.partition,
                    log_start_offset: p.log_start_offset,
                    high_watermark: p.high_watermark,
                    ledger_entries: p.ledger_entries,
                })
                .collect(),
            latencies: s
                .latency
                .iter()
                .map(|(api, l)| LatencySnapshot {
                    api: api.name(),
                    count: l.count,
                    total_ms: l.total_ms,
                    mean_ms: l.total_ms as f64 / l.count.max(1) as f64,
                    max_ms: l.max_ms,
                })
                .collect(),
        }
    }

    fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter("kelp_requests_total", "Requests decoded.", self.requests);
        counter("kelp_bytes_in_total", "Request bytes read.", self.bytes_in);
        counter(
            "kelp_bytes_out_total",
            "Response bytes written.",
            self.bytes_out,
        );
        counter(
            "kelp_protocol_errors_total",
            "Connections closed for bad input.",
            self.protocol_errors,
        );
        let _ = writeln!(
            out,
            "# HELP kelp_connections Open connections.\n# TYPE kelp_connections gauge\nkelp_connections {}",
            self.connections
        );
        let _ = writeln!(
            out,
            "# HELP kelp_high_watermark High watermark per partition.\n# TYPE kelp_high_watermark gauge"
        );
        for p in &self.partitions {
            let _ = writeln!(
                out,
                "kelp_high_watermark{{topic=\"{}\",partition=\"{}\"}} {}",
                p.topic, p.partition, p.high_watermark
            );
        }
        let _ = writeln!(
            out,
            "# HELP kelp_ledger_entries Sparse ledger entries per partition.\n# TYPE kelp_ledger_entries gauge"
        );
        for p in &self.partitions {
            let _ = writeln!(
                out,
                "kelp_ledger_entries{{topic=\"{}\",partition=\"{}\"}} {}",
                p.topic, p.partition, p.ledger_entries
            );
        }
        let _ = writeln!(
            out,
            "# HELP kelp_request_latency_ms Request latency by API.\n# TYPE kelp_request_latency_ms summary"
        );
        for l in &self.latencies {
            let sum = l.total_ms;
            let _ = writeln!(
                out,
                "kelp_request_latency_ms_sum{{api=\"{}\"}} {sum}",
                l.api
            );
            let _ = writeln!(
                out,
                "kelp_request_latency_ms_count{{api=\"{}\"}} {}",
                l.api, l.count
            );
        }
        out
    }
}

/// Serves the endpoints on `addr` until the process ends.
pub async fn serve(rt: Rt, addr: SocketAddr, events: mpsc::UnboundedSender<Event>) {
    let mut listener = match rt.bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen for metrics");
            return;
        }
    };
    tracing::info!(%addr, "metrics on /metrics and /stats");
    loop {
        let Ok((mut read, mut write, _)) = listener.accept().await else {
            continue;
        };
        let events = events.clone();
        let timer = rt.clone();
        rt.spawn(async move {
            // the request head, which may come in pieces: up to its blank line, 8 KiB or 5 s
            let mut buf = bytes::BytesMut::with_capacity(1024);
            let head = async {
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                    if !matches!(read.read_buf(&mut buf).await, Ok(n) if n > 0) {
                        break;
                    }
                }
            };
            let _ = timer.timeout(std::time::Duration::from_secs(5), head).await;
            let request = String::from_utf8_lossy(&buf);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (tx, rx) = oneshot::channel();
            let snapshot = if events.send(Event::Stats(tx)).is_ok() {
                rx.await.ok()
            } else {
                None
            };
            let (status, kind, body) = match (path, snapshot) {
                ("/metrics", Some(s)) => ("200 OK", "text/plain; version=0.0.4", s.prometheus()),
                ("/stats", Some(s)) => (
                    "200 OK",
                    "application/json",
                    serde_json::to_string_pretty(&s).unwrap_or_default(),
                ),
                (_, None) => (
                    "503 Service Unavailable",
                    "text/plain",
                    "shutting down\n".into(),
                ),
                _ => (
                    "404 Not Found",
                    "text/plain",
                    "try /metrics or /stats\n".into(),
                ),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = write.write_all(response.as_bytes()).await;
            let _ = write.shutdown().await;
        });
    }
}
