//! `/metrics` (Prometheus text) and `/stats` (JSON) over a minimal HTTP/1.1 responder.
//!
//! The gateway task renders the page between two inputs (the core's
//! [`kelp_core::broker::Gateway::render_stats`]), so the figures are consistent with each other and
//! reading them takes no lock.

use crate::runtime::{Rt, write_all_parts};
use crate::server::Event;
use bytes::Bytes;
use kelp_core::broker::metrics::StatsFormat;
use std::net::SocketAddr;
use tokio::sync::{mpsc, oneshot};

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
            let format = match path {
                "/metrics" => Some(StatsFormat::Prometheus),
                "/stats" => Some(StatsFormat::Json),
                _ => None,
            };
            let (tx, rx) = oneshot::channel();
            let page = match format {
                Some(f) if events.send(Event::Stats(f, tx)).is_ok() => rx.await.ok(),
                _ => None,
            };
            let (status, kind, body) = match (format, page) {
                (Some(f), Some(page)) => ("200 OK", f.content_type(), page),
                (Some(_), None) => (
                    "503 Service Unavailable",
                    "text/plain",
                    "shutting down\n".into(),
                ),
                (None, _) => (
                    "404 Not Found",
                    "text/plain",
                    "try /metrics or /stats\n".into(),
                ),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = write_all_parts(&mut *write, &[Bytes::from(response)]).await;
            let _ = write.shutdown().await;
        });
    }
}
