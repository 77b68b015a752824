//! Compiles `fedcare/v1/*.proto` with protox (pure Rust: no system `protoc`) and generates the
//! tonic client and server.

fn main() -> Result<(), Box<dyn core::error::Error>> {
    let protos = ["fedcare/v1/federation.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["."])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
