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
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &files, &[dir])?;
    Ok(())
}
