//! `kelp`: the Kafka-compatible gateway with the embedded durable log.

use clap::Parser;
use kelp_tokio::config::Settings;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("KELP_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let settings = match Settings::parse().resolve() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kelp: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kelp: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(kelp_tokio::server::run(settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kelp: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
