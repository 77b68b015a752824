//! The model file: round trips, and every kind of bad file gives a clear error, never a panic.

mod common;

use fedcare_core::model_file::{DEFAULT_SIZE_LIMIT, FORMAT_VERSION, HEADER_LEN};
use fedcare_core::{Error, ModelFile, ModelSpec};
use proptest::prelude::*;

fn sample() -> ModelFile {
    let spec = ModelSpec::mlp(6, &[5, 3]).unwrap();
    let params = common::uniform(spec.param_count(), 1.0, 3);
    let mut file = ModelFile::new(spec, params, "diabetes130/v1").unwrap();
    file.metrics.insert("auroc".into(), 0.683);
    file.metrics.insert("round".into(), 12.0);
    file.feature_scaling = vec![fedcare_core::ColumnStats { mean: 71.5, std: 12.25 }];
    file.category_buckets = vec![vec![17, 3], vec![]];
    file
}

#[test]
fn a_model_file_round_trips_bit_for_bit() {
    let file = sample();
    let bytes = file.to_bytes().unwrap();
    assert_eq!(&bytes[..8], b"FEDCMODL");
    let back = ModelFile::from_bytes(&bytes).unwrap();
    assert_eq!(back.category_buckets, [vec![17, 3], vec![]]);
    assert_eq!(back, file);
}

#[test]
fn a_version_2_file_without_top_k_buckets_is_refused() {
    assert_eq!(FORMAT_VERSION, 7);
    let mut bytes = sample().to_bytes().unwrap();
    bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(
        ModelFile::from_bytes(&bytes),
        Err(Error::UnsupportedVersion { format: "model file", found: 2, supported: 7 })
    );
}

#[test]
fn a_version_3_file_reads_without_endorsements_and_endorsements_round_trip() {
    let mut file = sample();
    // Format 6's payload is format 7's without the trailing ensemble (`None`: a byte 0), format
    // 5's also without the settings and subgroups (an empty map and `None` are a byte 0 each),
    // format 4's also without the calibration before them (`None`: 0), format 3's also without
    // the endorsements (an empty one: 0 too).
    let v7 = file.to_bytes().unwrap();
    let older = |version: u16, cut: usize| {
        let payload = &v7[HEADER_LEN..v7.len() - cut];
        let mut bytes = b"FEDCMODL".to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        bytes.extend_from_slice(payload);
        bytes
    };
    assert_eq!(ModelFile::from_bytes(&older(3, 5)).unwrap(), file);
    assert_eq!(ModelFile::from_bytes(&older(4, 4)).unwrap(), file);
    assert_eq!(ModelFile::from_bytes(&older(5, 3)).unwrap(), file);
    assert_eq!(ModelFile::from_bytes(&older(6, 1)).unwrap(), file);
    file.calibration = Some(fedcare_core::Platt { a: 0.9, b: -1.8 });
    let calibrated = ModelFile::from_bytes(&file.to_bytes().unwrap()).unwrap();
    assert_eq!(calibrated.calibration, file.calibration);
    assert!((calibrated.probability(1.8) - 0.5).abs() < 0.05, "σ(0.9·1.8 − 1.8) ≈ 0.455");
    file.calibration = Some(fedcare_core::Platt { a: -1.0, b: 0.0 });
    assert!(file.to_bytes().is_err(), "a scaling that reverses the scores is refused");
    file.calibration = None;

    let unsigned = file.endorsed_bytes().unwrap();
    file.endorsements = vec![1, 2, 3];
    let signed = file.to_bytes().unwrap();
    assert_eq!(ModelFile::from_bytes(&signed).unwrap().endorsements, [1, 2, 3]);
    assert_eq!(file.endorsed_bytes().unwrap(), unsigned, "endorsements do not change what they endorse");
    assert_ne!(signed, unsigned);
}

#[test]
fn top_k_buckets_that_do_not_fit_are_refused() {
    // 1 scaled input + 3 slots + 1 "other" + 1 "other" = 6 inputs fit; one more slot does not.
    let mut file = sample();
    file.category_buckets = vec![vec![1, 2, 3], vec![]];
    assert!(file.to_bytes().is_ok());
    file.category_buckets = vec![vec![1, 2, 3, 4], vec![]];
    assert_eq!(file.to_bytes(), Err(Error::FeatureWidth { expected: 6, got: 7 }));
    file.category_buckets = vec![vec![], vec![9, 9]];
    assert_eq!(file.to_bytes(), Err(Error::DuplicateBucket { column: 1, bucket: 9 }));
}

#[test]
fn every_truncation_is_refused() {
    let bytes = sample().to_bytes().unwrap();
    for cut in 0..bytes.len() {
        let err = ModelFile::from_bytes(&bytes[..cut]).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "cut at {cut}: {err:?}");
    }
}

#[test]
fn oversized_wrong_version_corrupt_and_foreign_files_are_refused() {
    let bytes = sample().to_bytes().unwrap();
    assert_eq!(
        ModelFile::from_bytes_with_limit(&bytes, bytes.len() - 1),
        Err(Error::FileTooLarge { size: bytes.len(), limit: bytes.len() - 1 })
    );
    let huge = vec![0u8; DEFAULT_SIZE_LIMIT + 1];
    assert!(matches!(ModelFile::from_bytes(&huge), Err(Error::FileTooLarge { .. })));

    let mut version = bytes.clone();
    version[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert_eq!(
        ModelFile::from_bytes(&version),
        Err(Error::UnsupportedVersion { format: "model file", found: FORMAT_VERSION + 1, supported: FORMAT_VERSION })
    );

    let mut flipped = bytes.clone();
    flipped[HEADER_LEN + 5] ^= 0x40;
    assert!(matches!(ModelFile::from_bytes(&flipped), Err(Error::ChecksumMismatch { .. })));

    let mut foreign = bytes.clone();
    foreign[0] = b'X';
    assert_eq!(ModelFile::from_bytes(&foreign), Err(Error::BadMagic { format: "model file" }));

    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(ModelFile::from_bytes(&trailing), Err(Error::TrailingBytes { count: 1 }));
}

#[test]
fn a_well_formed_file_with_inconsistent_contents_is_refused() {
    // Parameters that do not fit the spec, behind a valid header and checksum.
    let mut file = sample();
    file.params.pop();
    let payload = postcard::to_allocvec(&file).unwrap();
    let mut bytes = b"FEDCMODL".to_vec();
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    let expected = file.spec.param_count();
    assert_eq!(ModelFile::from_bytes(&bytes), Err(Error::ParamLength { expected, got: expected - 1 }));
    // And the writer refuses to write it in the first place.
    assert!(file.to_bytes().is_err());
}

proptest! {
    /// Random bytes, and random corruptions of a valid file, never panic.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Random bytes almost never start with the magic; whatever they are, the envelope
        // refuses them before the payload is looked at.
        let error = ModelFile::from_bytes(&bytes).unwrap_err();
        prop_assert!(
            matches!(error, Error::Truncated { .. } | Error::BadMagic { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn corrupted_payloads_with_fixed_checksums_never_panic(position in 0usize..10_000, value in any::<u8>()) {
        let bytes = sample().to_bytes().unwrap();
        let mut payload = bytes[HEADER_LEN..].to_vec();
        let at = position % payload.len();
        payload[at] = value;
        let mut forged = bytes[..10].to_vec();
        forged.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        forged.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        forged.extend_from_slice(&payload);
        // The envelope is intact, so a refusal comes from the payload's decoding or validation.
        if let Err(error) = ModelFile::from_bytes(&forged) {
            prop_assert!(
                !matches!(
                    error,
                    Error::BadMagic { .. }
                        | Error::UnsupportedVersion { .. }
                        | Error::ChecksumMismatch { .. }
                        | Error::FileTooLarge { .. }
                ),
                "{error:?}"
            );
        }
    }
}

#[test]
fn a_boosted_model_file_round_trips_and_a_malformed_ensemble_is_refused() {
    use fedcare_core::gbdt::{Ensemble, Node, Tree};
    let stump = Tree {
        nodes: vec![
            Node::Split { input: 2, threshold: 0.5, left: 1, right: 2 },
            Node::Leaf { value: -0.5 },
            Node::Leaf { value: 0.75 },
        ],
    };
    let file = ModelFile::boosted(Ensemble { base_margin: -2.0, trees: vec![stump.clone()] }, 3, "golden/v1").unwrap();
    assert!(file.params.is_empty());
    let back = ModelFile::from_bytes(&file.to_bytes().unwrap()).unwrap();
    assert_eq!(back, file);
    assert_eq!(back.margins(&[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]).unwrap(), [-1.25, -2.5]);
    assert!(back.architecture().starts_with("gradient-boosted trees (1 trees"), "{}", back.architecture());
    // A test of an input the model does not have, or parameters beside the trees, are refused.
    let mut wide = stump;
    wide.nodes[0] = Node::Split { input: 3, threshold: 0.5, left: 1, right: 2 };
    assert!(ModelFile::boosted(Ensemble { base_margin: 0.0, trees: vec![wide] }, 3, "golden/v1").is_err());
    let mut both = file;
    both.params = vec![0.0; 4];
    assert!(both.to_bytes().is_err());
}
