//! Compiles `fedcare/v1/*.proto` with protox (pure Rust: no system `protoc`) and generates the
//! tonic client and server.

fn main() -> Result<(), Box<dyn core::error::Error>> {
    let protos = ["fedcare/v1/federation.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["."])?;
    // `bytes` fields are `bytes::Bytes`: a payload chunk is a slice of a shared buffer, so the
    // aggregator sends one model to every hospital without copying it per hospital.
    // The client and server only with the `grpc` feature: without it, the messages alone.
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        .bytes(".fedcare.v1")
        .compile_fds(descriptors)?;
    Ok(())
}
