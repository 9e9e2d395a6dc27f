//! The metrics endpoint (`--metrics-listen`): `/metrics` in Prometheus text and `/stats` in JSON show
//! what the gateway did, and other paths get a 404. Runs on whichever binary `KELP_BIN` names.

mod common;

use common::{Client, Kelp, free_port, listening};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The status line and body of `GET path`.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // in two pieces, as a request may arrive: the endpoint must wait for the whole head
    s.write_all(b"GET ").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    write!(s, "{path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("a whole response");
    let (head, body) = response.split_once("\r\n\r\n").expect("headers end");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

#[test]
fn metrics_and_stats_show_requests_and_watermarks() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let kelp = Kelp::start_with(dir.path(), free_port(), &["--metrics-listen", &metrics]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !listening(&metrics) {
        assert!(
            Instant::now() < deadline,
            "the metrics endpoint did not open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = Client::connect(kelp.addr).unwrap();
    c.create("seen");
    let values: Vec<String> = (0..5).map(|i| format!("v{i}")).collect();
    assert_eq!(c.produce("seen", &values).unwrap(), Some(0));

    let (status, text) = get(&metrics, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    assert!(value("kelp_requests_total") >= 2.0, "{text}");
    assert!(value("kelp_connections") >= 1.0, "{text}");
    assert_eq!(
        value("kelp_high_watermark{topic=\"seen\",partition=\"0\"}"),
        5.0
    );

    let (status, json) = get(&metrics, "/stats");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(json.contains("\"topic\": \"seen\""), "{json}");
    assert!(json.contains("\"high_watermark\": 5"), "{json}");

    let (status, _) = get(&metrics, "/nothing");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}
