//! `kelp`: the Kafka-compatible gateway on tokio.

use kelp_tokio::runtime::{Rt, Tokio};

fn main() -> std::process::ExitCode {
    kelp_tokio::server::main("kelp", |settings| {
        let runtime = match settings.runtime_threads {
            // (the blocking pool, for reads of the log, is there either way)
            1 => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            0 => tokio::runtime::Runtime::new()?,
            n => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .enable_all()
                .build()?,
        };
        // With several worker threads the gateway's loop runs as a task on them, not on this
        // thread inside `block_on`: a connection's reader that hands it bytes, and the loop that
        // hands a writer the answer, then wake a task on their own worker, most often without
        // waking another thread. Measured under ProducerPerformance acks=all: 8-10% less gateway
        // CPU and 15% fewer context switches. (With one thread, `block_on` polls it.)
        runtime.block_on(async {
            tokio::spawn(kelp_tokio::server::run(settings, Rt::new(Tokio)))
                .await
                .map_err(std::io::Error::other)?
        })
    })
}
