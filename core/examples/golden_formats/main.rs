//! Writes the golden vectors of `fedcare-core`'s formats (the envelope, the model file of every
//! version still read, `explore.json`) into a folder, by default `core/tests/golden/formats/`:
//!
//! ```text
//! cargo run -p fedcare-core --example golden_formats -- [OUT_DIR]
//! ```
//!
//! The bytes are the same on every run while the formats do not change;
//! `core/tests/golden_formats.rs` makes them again and compares them with the committed files.

mod vectors;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let out = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/formats")), PathBuf::from);
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
