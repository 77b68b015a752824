//! Writes the golden checkpoint (format version 12) into a folder, by default
//! `protocol/tests/golden/`:
//!
//! ```text
//! cargo run -p fedcare-protocol --example golden_checkpoint -- [OUT_DIR]
//! ```
//!
//! The bytes are the same on every run while the format does not change;
//! `protocol/tests/golden_checkpoint.rs` makes them again and compares them with the committed
//! file.
#![allow(clippy::disallowed_methods)] // A generator writes files: the crate's pure rules are for its library.

mod vectors;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let out = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden")), PathBuf::from);
    let bytes = match vectors::checkpoint().to_bytes() {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("cannot encode the checkpoint: {error}");
            return ExitCode::FAILURE;
        }
    };
    let path = out.join(vectors::FILE);
    if let Err(error) = std::fs::create_dir_all(&out).and_then(|()| std::fs::write(&path, &bytes)) {
        eprintln!("cannot write {}: {error}", path.display());
        return ExitCode::FAILURE;
    }
    println!("{:>7} bytes  {}", bytes.len(), path.display());
    ExitCode::SUCCESS
}
