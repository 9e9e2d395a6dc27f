//! Readiness probe for a SeaweedMQ broker: asks `FindBrokerLeader`, then checks that a control-plane call
//! (`ListTopics`) goes through, and prints the leader's address.
//!
//! ```sh
//! cargo run -q -p kelp-proto --example smq_probe -- [--wait SECS] [HOST:PORT]
//! ```
//!
//! `HOST:PORT` is any broker's gRPC address (default `127.0.0.1:17777`). Without `--wait` it asks once;
//! with it, it retries every 250 ms for up to SECS seconds. Exit status 0 and the leader's `host:port`
//! on stdout once a non-empty leader is returned and ListTopics answers; 1 (with the last error on stderr) otherwise; 2 on bad
//! arguments. Used by `scripts/smq/run-weed.sh`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use kelp_proto::messaging_pb::seaweed_messaging_client::SeaweedMessagingClient;
use kelp_proto::messaging_pb::{FindBrokerLeaderRequest, ListTopicsRequest};
use tonic::transport::Endpoint;

async fn ask(addr: &str) -> Result<String, String> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let mut client = SeaweedMessagingClient::new(channel);
    let leader = client
        .find_broker_leader(FindBrokerLeaderRequest::default())
        .await
        .map_err(|s| format!("FindBrokerLeader: {:?}: {}", s.code(), s.message()))?
        .into_inner()
        .broker;
    if leader.is_empty() {
        return Err("FindBrokerLeader: no leader yet (empty broker)".into());
    }
    // The filer may know the balancer lock's owner a moment before the broker does; until the broker
    // does, its control-plane calls fail ("dial tcp: missing address"). ListTopics goes the same way.
    client
        .list_topics(ListTopicsRequest {})
        .await
        .map_err(|s| format!("ListTopics: {:?}: {}", s.code(), s.message()))?;
    Ok(leader)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut wait = Duration::ZERO;
    let mut addr = "127.0.0.1:17777".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--wait" => match args.next().and_then(|s| s.parse::<f64>().ok()) {
                Some(s) if s >= 0.0 => wait = Duration::from_secs_f64(s),
                _ => {
                    eprintln!("smq_probe: --wait needs a number of seconds");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                eprintln!("usage: smq_probe [--wait SECS] [HOST:PORT]");
                return ExitCode::SUCCESS;
            }
            _ => addr = a,
        }
    }

    let deadline = Instant::now() + wait;
    loop {
        match ask(&addr).await {
            Ok(leader) => {
                println!("{leader}");
                return ExitCode::SUCCESS;
            }
            Err(e) if Instant::now() >= deadline => {
                eprintln!("smq_probe: {e}");
                return ExitCode::FAILURE;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
