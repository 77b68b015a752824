//! Golden vectors of `fedcare-crypto`'s wire messages (`tests/golden/`, made by
//! `examples/golden_wire`): the generator still makes exactly the committed bytes, every message
//! kind decodes and re-encodes byte for byte with its fields where the table in `wire.rs` puts
//! them, a byte flipped in a payload is refused, and the golden ciphertext also streams in.

#[path = "../examples/golden_wire/vectors.rs"]
mod vectors;

use std::path::{Path, PathBuf};

use fedcare_core::envelope::HEADER_LEN;
use fedcare_crypto::wire::{WIRE_VERSION, WireMessage};
use fedcare_crypto::{
    AggregateBuilder, AggregateMasks, Challenge, Ciphertext, CollectivePublicKey, CryptoError, DecryptedSum,
    DecryptionShare, MaskFingerprint, PARAMS_V2, PartyId, PublicKeyShare, WireLimits,
};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
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
             (cargo run -p fedcare-crypto --example golden_wire)",
            expected.len(),
            got.len()
        );
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Decodes a committed message, checks its header fields where `wire.rs` puts them, re-encodes it
/// byte for byte, and checks that a byte flipped in its payload is refused by the checksum.
fn round_trip<M: WireMessage>(name: &str) -> M {
    let bytes = read(name);
    assert_eq!(&bytes[..8], b"FEDCWIRE", "{name}: magic");
    assert_eq!(bytes[8..10], WIRE_VERSION.to_le_bytes(), "{name}: wire version");
    assert_eq!(u32_at(&bytes, 10) as usize, bytes.len() - HEADER_LEN, "{name}: payload length");
    assert_eq!(u32_at(&bytes, 14), crc32fast::hash(&bytes[HEADER_LEN..]), "{name}: CRC-32 of the payload");
    assert_eq!(bytes[18..20], PARAMS_V2.id.to_le_bytes(), "{name}: parameter set");
    assert_eq!(bytes[20], M::KIND, "{name}: kind");
    assert_eq!(bytes[21..37], vectors::CRS.0.to_le_bytes(), "{name}: CRS");
    let message = M::decode(&bytes, &PARAMS_V2, &WireLimits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let again = message.encode().unwrap_or_else(|e| panic!("{name}: re-encoding: {e}"));
    assert_same_bytes(name, "the message re-encoded", &bytes, &again);
    // About 64 positions across the payload, its first and last byte among them.
    let payload = HEADER_LEN..bytes.len();
    let step = (payload.len() / 64).max(1);
    for at in payload.clone().step_by(step).chain([bytes.len() - 1]) {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x01;
        let refused = M::decode(&flipped, &PARAMS_V2, &WireLimits::default());
        assert!(
            matches!(refused, Err(CryptoError::Envelope(fedcare_core::Error::ChecksumMismatch { .. }))),
            "{name}: byte {at} flipped was not refused by the checksum: {refused:?}",
            refused = refused.err()
        );
    }
    message
}

#[test]
fn the_generator_makes_exactly_the_committed_vectors() {
    assert_eq!(WIRE_VERSION, 4, "a new wire version: add its golden vectors (and say which versions are read)");
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
fn every_message_kind_decodes_and_re_encodes_byte_for_byte() {
    let parties: Vec<PartyId> = vectors::PARTIES.iter().map(|p| PartyId::new(*p).unwrap()).collect();

    let share: PublicKeyShare = round_trip("public_key_share.bin");
    assert_eq!((share.party(), share.crs()), (&parties[0], vectors::CRS), "public_key_share.bin");

    let key: CollectivePublicKey = round_trip("collective_public_key.bin");
    assert_eq!((key.parties(), key.crs()), (&parties[..], vectors::CRS), "collective_public_key.bin");

    let ciphertext: Ciphertext = round_trip("ciphertext.bin");
    assert_eq!((ciphertext.len(), ciphertext.crs()), (vectors::VALUES, vectors::CRS), "ciphertext.bin");

    let masks: AggregateMasks = round_trip("aggregate_masks.bin");
    assert_eq!(masks.len(), vectors::VALUES, "aggregate_masks.bin");
    let contributors: Vec<&PartyId> = masks.contributors().iter().map(|(p, _)| p).collect();
    assert_eq!(contributors, [&parties[0], &parties[1]], "aggregate_masks.bin: contributors");
    assert_eq!(masks.contributors()[0].1, ciphertext.hash(), "aggregate_masks.bin lists ciphertext.bin's hash");

    let _: DecryptionShare = round_trip("decryption_share.bin");
    let share_bytes = read("decryption_share.bin");
    assert_eq!(share_bytes[38..48], *b"hospital-a", "decryption_share.bin: party");
    assert_eq!(share_bytes[48..80], masks.digest(), "decryption_share.bin is bound to aggregate_masks.bin");

    let sum: DecryptedSum = round_trip("decrypted_sum.bin");
    assert_eq!(sum.aggregate_digest(), masks.digest(), "decrypted_sum.bin decrypts aggregate_masks.bin");
    assert_eq!((sum.contributors(), sum.len()), (2, vectors::VALUES), "decrypted_sum.bin");
}

#[test]
fn the_mask_fingerprint_reads_back_and_is_the_golden_aggregates() {
    let name = "mask_fingerprint.bin";
    let bytes = read(name);
    let fingerprint = MaskFingerprint::from_bytes(&bytes).unwrap_or_else(|| panic!("{name}: {} bytes", bytes.len()));
    assert_same_bytes(name, "the fingerprint re-encoded", &bytes, &fingerprint.to_bytes());
    let masks: AggregateMasks = round_trip("aggregate_masks.bin");
    assert_eq!(masks.lifted_fingerprint(&Challenge::new(vectors::CHALLENGE_SEED)), fingerprint, "{name}");
    assert_eq!(vectors::round().fingerprint, fingerprint, "{name}");
}

#[test]
fn the_golden_ciphertext_streams_in_piece_by_piece() {
    let key: CollectivePublicKey = round_trip("collective_public_key.bin");
    let ciphertext: Ciphertext = round_trip("ciphertext.bin");
    let bytes = read("ciphertext.bin");
    let party = PartyId::new(vectors::PARTIES[0]).unwrap();
    let mut builder = AggregateBuilder::new(PARAMS_V2, &key, vectors::VALUES);
    let mut stream = builder.begin(party).unwrap();
    for piece in bytes.chunks(4099) {
        stream.read(piece).unwrap_or_else(|e| panic!("ciphertext.bin streamed: {e}"));
        builder.add_run(&stream).unwrap();
    }
    assert_eq!(builder.commit(stream).unwrap(), ciphertext.hash(), "ciphertext.bin streamed: its hash");
}
