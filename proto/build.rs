//! Generates the SeaweedMQ gRPC types and client/server stubs from `proto/*.proto` (Kelp's own subset of
//! SeaweedFS's `mq_broker.proto` and `mq_schema.proto`).
//!
//! Needs no system `protoc`: when `PROTOC` is unset, the binary shipped by `protoc-bin-vendored` is used.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-env-changed=PROTOC");
    let mut config = tonic_prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }

    let dir = PathBuf::from("proto");
    let files = [dir.join("mq_schema.proto"), dir.join("mq_broker.proto")];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    // Without the `grpc` feature only the messages are generated (no tonic in the code).
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        // `bytes::Bytes` for every bytes field: record keys and values stay zero-copy slices
        .bytes(".")
        .compile_with_config(config, &files, &[dir])?;
    Ok(())
}
