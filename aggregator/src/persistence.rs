//! What the aggregator keeps on disk, written so that a crash at any moment loses nothing that
//! was reported done: the checkpoint (everything needed to resume), `metrics.jsonl` (one
//! [`RoundRecord`] a line), `model.bin` (the model file a hospital also receives) and, after an
//! exploration, `explore.json` (its report: no count below `min_cell`).
//!
//! Every file is written atomically through [`write_atomically`]: a temporary file in the same
//! directory, fsync, rename over the old one, fsync of the directory. A crash leaves either the
//! previous file or the new one, never half of one. The checkpoint travels in
//! `fedcare-core`'s envelope (magic `b"FEDCCKPT"`, version, length, CRC-32) around a postcard
//! payload; a damaged one is an error, never ignored. A session that was running when the
//! aggregator stopped is not in it: after a restart that round runs again from its start, with
//! fresh keys — unless its decryption had been opened ([`Checkpoint::opened`]): hospitals never
//! decrypt one round twice, so a restarted aggregator asks the session's hospitals for the
//! decrypted sum they hold ([`Checkpoint::resumable`]) and finishes the session from it when
//! every one holds it, or moves on to the next round.

use std::path::Path;

use bytes::Bytes;
pub use fedcare_protocol::checkpoint::{CHECKPOINT_FORMAT, CHECKPOINT_LIMIT, Checkpoint, OpenedSession, Snapshot};

pub use fedcare_net::files::write_atomically;

use crate::error::{FederationError, MetricsError, Result};
use crate::protocol::RoundRecord;

/// File name of the checkpoint inside the aggregator's output directory.
pub const CHECKPOINT_FILE: &str = "aggregator.ckpt";
/// File name of the metrics inside the aggregator's output directory.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// File name of the model inside the aggregator's output directory.
pub const MODEL_FILE: &str = "model.bin";

/// The largest `metrics.jsonl` read (a federation writes well under 10 kB per round).
const METRICS_LIMIT: u64 = 256 << 20;

/// Reads the checkpoint in `dir`, if there is one; a damaged one is an error, never ignored.
pub fn load_checkpoint(dir: &Path) -> Result<Option<Checkpoint>> {
    let path = dir.join(CHECKPOINT_FILE);
    let damaged = |source| FederationError::Checkpoint { path: path.clone(), source };
    let size = match std::fs::metadata(&path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(FederationError::Read { path, source }),
    };
    if size > CHECKPOINT_LIMIT as u64 {
        return Err(damaged(fedcare_core::Error::FileTooLarge {
            size: usize::try_from(size).unwrap_or(usize::MAX),
            limit: CHECKPOINT_LIMIT,
        }));
    }
    let bytes = std::fs::read(&path).map_err(|source| FederationError::Read { path: path.clone(), source })?;
    Checkpoint::from_bytes(&bytes).map(Some).map_err(damaged)
}

/// Writes a snapshot into `dir` (metrics, model, then the checkpoint); returns the model file's
/// bytes (what hospitals receive at the end).
///
/// A snapshot that records an opened decryption ([`Checkpoint::opened`]) changes nothing but the
/// checkpoint (no session completed since the last one): only the checkpoint is written, which
/// keeps the extra write before every decryption to one file.
pub fn persist(dir: &Path, snapshot: &Snapshot) -> Result<Bytes> {
    let model = snapshot.model.to_bytes()?;
    if snapshot.checkpoint.opened.is_none() {
        // metrics.jsonl is rewritten whole from the records, so a crash never leaves a line twice.
        write_atomically(&dir.join(METRICS_FILE), metrics_text(&snapshot.checkpoint.records).as_bytes())?;
        write_atomically(&dir.join(MODEL_FILE), &model)?;
        if let Some(report) = &snapshot.exploration {
            crate::exploration::write_report(dir, report)?;
        }
    }
    write_atomically(&dir.join(CHECKPOINT_FILE), &snapshot.checkpoint.to_bytes()?)?;
    Ok(Bytes::from(model))
}

/// The text of `metrics.jsonl`: one JSON record a line.
pub fn metrics_text(records: &[RoundRecord]) -> String {
    let mut lines = String::new();
    for record in records {
        // Invariant: a record is plain data (numbers, strings, arrays), which JSON always encodes.
        lines += &serde_json::to_string(record).expect("a round record encodes as JSON");
        lines.push('\n');
    }
    lines
}

/// Reads `metrics.jsonl`: one [`RoundRecord`] per non-empty line.
pub fn read_metrics(path: &Path) -> Result<Vec<RoundRecord>> {
    let read_error = |source| FederationError::Read { path: path.to_path_buf(), source };
    let bad = |source| FederationError::Metrics { path: path.to_path_buf(), source };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > METRICS_LIMIT {
        return Err(bad(MetricsError::TooLarge { size, limit: METRICS_LIMIT }));
    }
    let bytes = std::fs::read(path).map_err(read_error)?;
    let text = String::from_utf8(bytes).map_err(|_| bad(MetricsError::NotText))?;
    parse_metrics(&text).map_err(bad)
}

/// Parses the text of a `metrics.jsonl`; errors name the 1-based line.
pub fn parse_metrics(text: &str) -> Result<Vec<RoundRecord>, MetricsError> {
    let mut records = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: RoundRecord = serde_json::from_str(line)
            .map_err(|e| MetricsError::NotARecord { line: index + 1, message: e.to_string() })?;
        check_record(&record, index + 1)?;
        records.push(record);
    }
    if records.is_empty() {
        return Err(MetricsError::Empty);
    }
    Ok(records)
}

fn check_record(record: &RoundRecord, line: usize) -> Result<(), MetricsError> {
    let out_of_range =
        |what, value: String, expected| MetricsError::OutOfRange { line, round: record.round, what, value, expected };
    for (name, value) in [("auroc", record.auroc), ("auprc", record.auprc)] {
        if let Some(v) = value
            && !(0.0..=1.0).contains(&v)
        {
            return Err(out_of_range(name, v.to_string(), "outside [0, 1]"));
        }
    }
    for (name, value) in [("train_loss", record.train_loss), ("test_loss", record.test_loss)] {
        if let Some(v) = value
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(out_of_range(name, v.to_string(), "not a finite non-negative number"));
        }
    }
    for point in &record.roc {
        if !point.iter().all(|v| (0.0..=1.0).contains(v)) {
            return Err(out_of_range("ROC point", format!("{point:?}"), "outside the unit square"));
        }
    }
    for bin in &record.calibration {
        if ![bin.lower, bin.upper, bin.mean_predicted, bin.observed_rate].iter().all(|v| (0.0..=1.0).contains(v)) {
            return Err(out_of_range("calibration bin", format!("{bin:?}"), "outside [0, 1]"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use fedcare_core::{ColumnStats, ModelFile, ServerOptimizerConfig};

    use super::*;
    use crate::protocol::{NodeId, Planned, PublicFigures, SessionId, SessionKind};
    use fedcare_protocol::selection::ServerState;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            federation_id: "f".into(),
            param_count: 3,
            next: Some(Planned { round: 2, kind: SessionKind::Train }),
            global: vec![0.5, -1.0, 2.0],
            server: ServerState {
                best: Some(fedcare_protocol::selection::BestModel {
                    trained_rounds: 1,
                    auroc: 0.625,
                    auprc: Some(0.25),
                    platt: Some(fedcare_core::Platt { a: 0.5, b: -1.0 }),
                    params: vec![0.25, -0.5, 1.0],
                }),
                ..ServerState::new(ServerOptimizerConfig::default(), 3).unwrap()
            },
            figures: PublicFigures {
                train_rows: 100,
                test_rows: 20,
                feature_stats: vec![ColumnStats { mean: 1.0, std: 2.0 }],
                top_k: vec![vec![7, 3], vec![]],
            },
            records: vec![RoundRecord::new(SessionId { round: 1, attempt: 0 }, SessionKind::Train, 3)],
            opened: Some(Planned { round: 2, kind: SessionKind::Train }),
            endorsements: vec![1, 2, 3],
            resumable: Some(OpenedSession {
                session: SessionId { round: 2, attempt: 1 },
                crs: 7,
                participants: vec![NodeId::new("a").unwrap()],
            }),
            chain: vec![fedcare_protocol::digest::StateContent([9; 32])],
        }
    }

    fn save(dir: &Path, checkpoint: &Checkpoint) {
        write_atomically(&dir.join(CHECKPOINT_FILE), &checkpoint.to_bytes().unwrap()).unwrap();
    }

    #[test]
    fn a_checkpoint_round_trips_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_checkpoint(dir.path()).unwrap().is_none());
        let checkpoint = checkpoint();
        save(dir.path(), &checkpoint);
        // A crash in the middle of the next write leaves a stray temporary file: ignored.
        std::fs::write(dir.path().join(".tmpXYZ"), b"FEDCCKPT\x01").unwrap();
        assert_eq!(load_checkpoint(dir.path()).unwrap(), Some(checkpoint.clone()));
        save(dir.path(), &checkpoint);
        assert_eq!(load_checkpoint(dir.path()).unwrap(), Some(checkpoint));
        let path = dir.path().join(CHECKPOINT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let error = load_checkpoint(dir.path()).unwrap_err();
        assert!(matches!(
            error,
            FederationError::Checkpoint { source: fedcare_core::Error::ChecksumMismatch { .. }, .. }
        ));
        assert!(error.to_string().contains("move it away"), "{error}");
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert!(matches!(
            load_checkpoint(dir.path()),
            Err(FederationError::Checkpoint { source: fedcare_core::Error::Truncated { .. }, .. })
        ));
        // A checkpoint of the previous version is refused by its version.
        bytes[8..10].copy_from_slice(&11u16.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let error = load_checkpoint(dir.path()).unwrap_err().to_string();
        assert!(error.contains("checkpoint format version 11 is not supported (this build reads 12)"), "{error}");
    }

    #[test]
    fn a_snapshot_writes_metrics_model_and_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let spec = fedcare_core::ModelSpec::mlp(2, &[]).unwrap();
        let model = ModelFile::new(spec, vec![0.1, 0.2, 0.3], "test/v1").unwrap();
        // A snapshot that only records an opened decryption writes the checkpoint alone.
        let opened = Snapshot { checkpoint: checkpoint(), model: model.clone(), exploration: None };
        persist(dir.path(), &opened).unwrap();
        assert!(!dir.path().join(MODEL_FILE).exists() && !dir.path().join(METRICS_FILE).exists());
        assert_eq!(load_checkpoint(dir.path()).unwrap(), Some(opened.checkpoint));
        let snapshot = Snapshot {
            checkpoint: Checkpoint { opened: None, ..checkpoint() },
            model: model.clone(),
            exploration: None,
        };
        let bytes = persist(dir.path(), &snapshot).unwrap();
        assert_eq!(std::fs::read(dir.path().join(MODEL_FILE)).unwrap(), bytes.to_vec());
        assert_eq!(ModelFile::from_bytes(&bytes).unwrap(), model);
        let metrics = std::fs::read_to_string(dir.path().join(METRICS_FILE)).unwrap();
        assert_eq!(parse_metrics(&metrics).unwrap(), snapshot.checkpoint.records);
        assert_eq!(load_checkpoint(dir.path()).unwrap(), Some(snapshot.checkpoint));
    }

    #[test]
    fn malformed_metrics_are_refused_naming_the_line() {
        let good = r#"{"round":1,"kind":"train","attempt":0,"hospitals":3,"train_loss":0.6,"test_loss":0.7,"auroc":0.6,"seconds":1.0,"bytes_up":10,"bytes_down":10}"#;
        // An older line without the newer fields still parses.
        assert_eq!(parse_metrics(good).unwrap()[0].kind, SessionKind::Train);
        let truncated = format!("{good}\n{{\"round\":2,\"kind\":\"train\"\n");
        assert!(matches!(parse_metrics(&truncated), Err(MetricsError::NotARecord { line: 2, .. })));
        let out_of_range = format!("{good}\n\n{}\n", good.replace("\"auroc\":0.6", "\"auroc\":1.5"));
        let error = parse_metrics(&out_of_range).unwrap_err();
        assert!(matches!(error, MetricsError::OutOfRange { line: 3, what: "auroc", .. }), "{error}");
        assert!(error.to_string().contains("line 3") && error.to_string().contains("auroc 1.5"), "{error}");
        let unknown_kind = good.replace("\"train\"", "\"tune\"");
        assert!(matches!(parse_metrics(&unknown_kind), Err(MetricsError::NotARecord { line: 1, .. })));
        assert!(matches!(parse_metrics("not json\n"), Err(MetricsError::NotARecord { line: 1, .. })));
        assert_eq!(parse_metrics("\n\n"), Err(MetricsError::Empty));
    }

    proptest::proptest! {
        /// Random files never panic the loader, and are refused as damaged checkpoints.
        #[test]
        fn random_files_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(CHECKPOINT_FILE), &bytes).unwrap();
            let result = load_checkpoint(dir.path());
            proptest::prop_assert!(matches!(result, Err(FederationError::Checkpoint { .. })), "{result:?}");
        }
    }
}
