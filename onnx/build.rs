//! Generates the ONNX messages from the official `onnx.proto` (vendored in `proto/onnx/`) with
//! protox and prost: pure Rust, no system `protoc`.

fn main() -> Result<(), Box<dyn core::error::Error>> {
    let proto = "onnx/onnx.proto";
    println!("cargo:rerun-if-changed=proto/{proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
