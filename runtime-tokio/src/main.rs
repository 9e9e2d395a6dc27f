//! `kelp`: the Kafka-compatible gateway on tokio.

use kelp_tokio::runtime::{Rt, Tokio};

fn main() -> std::process::ExitCode {
    kelp_tokio::server::main("kelp", |settings| {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(kelp_tokio::server::run(settings, Rt::new(Tokio)))
    })
}
