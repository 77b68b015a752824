//! Writes the golden vectors of `fedcare-crypto`'s wire messages (every `WireMessage` kind, and
//! the mask fingerprint's bytes) into a folder, by default `crypto/tests/golden/`:
//!
//! ```text
//! cargo run -p fedcare-crypto --example golden_wire -- [OUT_DIR]
//! ```
//!
//! The bytes are the same on every run while the format does not change;
//! `crypto/tests/golden_wire.rs` makes them again and compares them with the committed files.

mod vectors;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let out = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden")), PathBuf::from);
    if let Err(error) = std::fs::create_dir_all(&out) {
        eprintln!("cannot create {}: {error}", out.display());
        return ExitCode::FAILURE;
    }
    for (name, bytes) in vectors::all() {
        let path = out.join(name);
        if let Err(error) = std::fs::write(&path, &bytes) {
            eprintln!("cannot write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
        println!("{:>7} bytes  {}", bytes.len(), path.display());
    }
    ExitCode::SUCCESS
}
