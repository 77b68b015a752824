//! Golden vectors of `fedcare-core`'s formats (`tests/golden/formats/`, made by
//! `examples/golden_formats`): the generator still makes exactly the committed bytes, every file
//! decodes and re-encodes byte for byte (an old model-file version into the committed bytes of
//! the current one), and any one byte flipped in a checksummed payload is refused.

#[path = "../examples/golden_formats/vectors.rs"]
mod vectors;

use std::path::{Path, PathBuf};

use fedcare_core::envelope::HEADER_LEN;
use fedcare_core::explore::{ExploreReport, REPORT_FORMAT};
use fedcare_core::model_file::FORMAT_VERSION;
use fedcare_core::{Error, ModelFile};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/formats")
}

/// A committed vector's bytes.
fn read(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Fails naming the file and the first byte that differs.
fn assert_same_bytes(name: &str, what: &str, expected: &[u8], got: &[u8]) {
    if expected != got {
        let at = expected.iter().zip(got).position(|(a, b)| a != b).unwrap_or(expected.len().min(got.len()));
        panic!(
            "{name}: {what} differs from the committed bytes at byte {at} ({} bytes committed, {} now); \
             if the format changed on purpose, give it a new version and regenerate \
             (cargo run -p fedcare-core --example golden_formats)",
            expected.len(),
            got.len()
        );
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The header fields at the offsets `docs/formats.md` gives.
fn assert_envelope_header(name: &str, bytes: &[u8], magic: &[u8; 8], version: u16) {
    assert_eq!(&bytes[..8], magic, "{name}: magic");
    assert_eq!(u16_at(bytes, 8), version, "{name}: version");
    assert_eq!(u32_at(bytes, 10) as usize, bytes.len() - HEADER_LEN, "{name}: payload length");
    assert_eq!(u32_at(bytes, 14), crc32fast::hash(&bytes[HEADER_LEN..]), "{name}: CRC-32 of the payload");
}

#[test]
fn the_generator_makes_exactly_the_committed_vectors() {
    let generated = vectors::all();
    for (name, bytes) in &generated {
        assert_same_bytes(name, "the generator's output", &read(name), bytes);
    }
    // No committed vector is left that the generator no longer makes (the README aside).
    let dir = dir();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display())) {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            name == "README.md" || generated.iter().any(|(made, _)| *made == name),
            "{name}: committed but not made by the generator"
        );
    }
}

#[test]
fn the_envelope_vectors_open_and_seal_byte_for_byte() {
    for (name, payload) in [("envelope.bin", vectors::ENVELOPE_PAYLOAD), ("envelope_empty.bin", &[][..])] {
        let bytes = read(name);
        assert_envelope_header(name, &bytes, b"FEDCGOLD", 1);
        let opened = vectors::ENVELOPE.open(&bytes, bytes.len()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(opened, payload, "{name}: payload");
        assert_same_bytes(name, "the sealed payload", &bytes, &vectors::ENVELOPE.seal(opened).unwrap());
        for at in HEADER_LEN..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x01;
            assert!(
                matches!(vectors::ENVELOPE.open(&flipped, bytes.len()), Err(Error::ChecksumMismatch { .. })),
                "{name}: byte {at} flipped was not refused"
            );
        }
    }
}

/// Decodes a committed model file, checks it is `expected`, and that writing it again gives the
/// committed bytes of `current` (the file itself for format 7).
fn check_model(name: &str, version: u16, expected: &ModelFile, current: &str) {
    let bytes = read(name);
    assert_envelope_header(name, &bytes, b"FEDCMODL", version);
    let file = ModelFile::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(&file, expected, "{name}: decoded model");
    let again = file.to_bytes().unwrap_or_else(|e| panic!("{name}: re-encoding: {e}"));
    assert_same_bytes(current, &format!("{name} re-encoded"), &read(current), &again);
    for at in HEADER_LEN..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x01;
        assert!(
            matches!(ModelFile::from_bytes(&flipped), Err(Error::ChecksumMismatch { .. })),
            "{name}: byte {at} flipped was not refused"
        );
    }
}

#[test]
fn every_model_file_version_still_read_decodes_and_re_encodes_byte_for_byte() {
    assert_eq!(FORMAT_VERSION, 7, "a new model-file version: add its golden vector, keep the old ones");
    check_model("model_v7.bin", 7, &vectors::full_model(), "model_v7.bin");
    check_model("model_v7_boosted.bin", 7, &vectors::boosted_model(), "model_v7_boosted.bin");
    check_model("model_v7_logistic.bin", 7, &vectors::logistic_model(), "model_v7_logistic.bin");
    check_model("model_v6.bin", 6, &vectors::full_model(), "model_v7.bin");
    check_model("model_v6_logistic.bin", 6, &vectors::logistic_model(), "model_v7_logistic.bin");
    check_model("model_v5.bin", 5, &vectors::v5_model(), "model_v5_as_v7.bin");
    check_model("model_v5_as_v6.bin", 6, &vectors::v5_model(), "model_v5_as_v7.bin");
    check_model("model_v5_as_v7.bin", 7, &vectors::v5_model(), "model_v5_as_v7.bin");
    check_model("model_v5_logistic.bin", 5, &vectors::logistic_model(), "model_v7_logistic.bin");
    check_model("model_v4.bin", 4, &vectors::v4_model(), "model_v4_as_v7.bin");
    check_model("model_v4_as_v6.bin", 6, &vectors::v4_model(), "model_v4_as_v7.bin");
    check_model("model_v4_as_v7.bin", 7, &vectors::v4_model(), "model_v4_as_v7.bin");
    check_model("model_v3.bin", 3, &vectors::v3_model(), "model_v3_as_v7.bin");
    check_model("model_v3_as_v6.bin", 6, &vectors::v3_model(), "model_v3_as_v7.bin");
    check_model("model_v3_as_v7.bin", 7, &vectors::v3_model(), "model_v3_as_v7.bin");
    // The boosted model scores as its trees say: base + first tree + second tree.
    let boosted = vectors::boosted_model();
    assert_eq!(boosted.margins(&[1.0, 1.0, 0.0, 0.0]).unwrap(), [-2.125 + 0.375 - 0.125 + 0.25 + 0.125]);
    // The old versions' vectors are what their fields say: v5 has a calibration and no subgroups,
    // v4 endorsements and no calibration, v3 neither.
    assert!(vectors::v5_model().calibration.is_some() && vectors::v5_model().subgroups.is_none());
    assert!(!vectors::v4_model().endorsements.is_empty() && vectors::v4_model().calibration.is_none());
    let full = vectors::full_model();
    let subgroups = full.subgroups.as_ref().unwrap();
    assert!(!full.settings.is_empty() && subgroups.columns[0].subgroups.len() == 3);
    let shown = subgroups.columns[0].subgroups.iter().filter(|s| s.figures.shown().is_some()).count();
    assert_eq!(shown, 1, "one subgroup shown, one too small and one hidden with it");
}

#[test]
fn the_exploration_report_decodes_and_re_encodes_byte_for_byte() {
    let name = "explore_report.json";
    let bytes = read(name);
    let report: ExploreReport = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(report.format, REPORT_FORMAT, "{name}: format");
    assert_eq!(report, vectors::explore_report(), "{name}: decoded report");
    assert_same_bytes(name, "the report re-encoded", &bytes, &vectors::explore_json(&report));
    // What the vector is there to show: suppressed and hidden counts, and a hospital's own figures.
    let text = core::str::from_utf8(&bytes).unwrap();
    assert!(text.contains("\"< 10\"") && text.contains("\"hidden\"") && text.contains("\"local\": {"), "{name}");
}
