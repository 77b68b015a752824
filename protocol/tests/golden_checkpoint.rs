//! The aggregator's checkpoint, byte for byte: the committed `tests/golden/checkpoint_v12.bin`
//! (made by `cargo run -p fedcare-protocol --example golden_checkpoint`) decodes to the fixed
//! checkpoint, which encodes back to the same bytes; a flipped byte is refused by the envelope's
//! checksum; the version before (`checkpoint_v11.bin`, whose boosting state has no pooled
//! quantiles) is refused by its version.

#[path = "../examples/golden_checkpoint/vectors.rs"]
mod vectors;

use fedcare_protocol::checkpoint::{CHECKPOINT_FORMAT, Checkpoint};

const GOLDEN: &[u8] = include_bytes!("golden/checkpoint_v12.bin");
const VERSION_11: &[u8] = include_bytes!("golden/checkpoint_v11.bin");

#[test]
fn the_golden_checkpoint_decodes_and_encodes_back_byte_for_byte() {
    assert_eq!(CHECKPOINT_FORMAT.version, 12, "a new version needs a new golden file beside this one");
    let decoded = Checkpoint::from_bytes(GOLDEN).unwrap();
    assert_eq!(decoded, vectors::checkpoint(), "{} decodes to another checkpoint", vectors::FILE);
    assert_eq!(decoded.to_bytes().unwrap(), GOLDEN, "{} encodes back to other bytes", vectors::FILE);
    assert_eq!(&GOLDEN[..8], b"FEDCCKPT");
}

#[test]
fn a_flipped_byte_of_the_golden_checkpoint_is_refused() {
    for at in [8, GOLDEN.len() / 2, GOLDEN.len() - 1] {
        let mut damaged = GOLDEN.to_vec();
        damaged[at] ^= 1;
        assert!(Checkpoint::from_bytes(&damaged).is_err(), "byte {at} flipped");
    }
    assert!(Checkpoint::from_bytes(&GOLDEN[..GOLDEN.len() - 1]).is_err(), "truncated");
}

#[test]
fn a_checkpoint_of_the_version_before_is_refused_by_its_version() {
    let refused = Checkpoint::from_bytes(VERSION_11).unwrap_err();
    assert!(matches!(refused, fedcare_core::Error::UnsupportedVersion { found: 11, supported: 12, .. }), "{refused:?}");
}
