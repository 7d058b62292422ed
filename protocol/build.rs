//! Generates the wire types from `proto/` with protox, a pure-Rust protobuf
//! compiler, so that building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/jointly/v1/session.proto",
        "proto/jointly/v1/query.proto",
        "proto/jointly/v1/node.proto",
        "proto/jointly/v1/planner.proto",
        "proto/jointly/v1/transcript.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_server(grpc)
        .build_client(grpc)
        .compile_fds(descriptors)?;
    Ok(())
}
