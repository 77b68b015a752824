//! The aggregator's checkpoint: everything needed to resume a federation after a crash.
//!
//! Written after every completed session, atomically (temporary file, fsync, rename, fsync of
//! the directory), so a crash at any moment leaves either the previous checkpoint or the new
//! one, never half of one. A session that was running when the aggregator stopped is not in
//! it: after a restart that round runs again from its start, with fresh keys.
//!
//! ```text
//! magic b"FEDCCKPT" | version u16 LE | payload length u64 LE | CRC-32 of the payload u32 LE | postcard payload
//! ```

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use fedcare_core::ServerOptimizer;
use serde::{Deserialize, Serialize};

use crate::aggregator::RoundRecord;

const MAGIC: &[u8; 8] = b"FEDCCKPT";
/// 2: round records carry AUPRC, calibration and the ROC curve. 3: the `top_k` buckets chosen
/// in the setup session.
const VERSION: u16 = 3;
const HEADER: usize = 8 + 2 + 8 + 4;
/// The largest checkpoint read back (a 200M-parameter model with its optimizer state).
const SIZE_LIMIT: u64 = 4 << 30;

/// File name of the checkpoint inside the aggregator's output directory.
pub const FILE_NAME: &str = "aggregator.ckpt";

/// The resumable state of a federation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The federation it belongs to.
    pub federation_id: String,
    /// Parameters of the model (checked against the configuration on resume).
    pub param_count: u64,
    /// The next session's round.
    pub next_round: u32,
    /// The next session's kind: 0 setup, 1 train, 2 evaluate, 3 none (finished).
    pub next_kind: u8,
    /// The global parameters.
    pub global: Vec<f32>,
    /// The server optimizer's state.
    pub server: ServerOptimizer,
    /// Total training and test rows from the setup session.
    pub totals: (u64, u64),
    /// Federated (mean, std) of each numeric feature, from the setup session.
    pub feature_stats: Vec<(f64, f64)>,
    /// Per `top_k` column, the buckets chosen in the setup session, in slot order.
    pub top_k: Vec<Vec<u32>>,
    /// Completed sessions.
    pub records: Vec<RoundRecord>,
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable; not every platform can open a directory.
        if let Ok(dir) = std::fs::File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

impl Checkpoint {
    /// Writes the checkpoint into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let payload = postcard::to_allocvec(self).context("cannot encode the checkpoint")?;
        let mut bytes = Vec::with_capacity(HEADER + payload.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        write_atomically(&dir.join(FILE_NAME), &bytes)
    }

    /// Reads the checkpoint in `dir`, if there is one; a damaged one is an error, never ignored.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(FILE_NAME);
        let size = match std::fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        ensure!(size <= SIZE_LIMIT, "{}: {size} bytes exceed the checkpoint limit", path.display());
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let damaged =
            |why: &str| anyhow::anyhow!("{} is damaged ({why}); move it away to start afresh", path.display());
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err(damaged("not a fedcare checkpoint"));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            bail!("{}: checkpoint version {version}, this build reads {VERSION}", path.display());
        }
        let mut length = [0u8; 8];
        length.copy_from_slice(&bytes[10..18]);
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&bytes[18..22]);
        let payload = &bytes[HEADER..];
        if payload.len() as u64 != u64::from_le_bytes(length) {
            return Err(damaged("wrong length"));
        }
        if crc32fast::hash(payload) != u32::from_le_bytes(crc) {
            return Err(damaged("checksum mismatch"));
        }
        let checkpoint: Self = postcard::from_bytes(payload).map_err(|_| damaged("undecodable"))?;
        Ok(Some(checkpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcare_core::ServerOptimizerConfig;

    #[test]
    fn a_checkpoint_round_trips_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Checkpoint::load(dir.path()).unwrap().is_none());
        let checkpoint = Checkpoint {
            federation_id: "f".into(),
            param_count: 3,
            next_round: 2,
            next_kind: 1,
            global: vec![0.5, -1.0, 2.0],
            server: ServerOptimizer::new(ServerOptimizerConfig::default(), 3).unwrap(),
            totals: (100, 20),
            feature_stats: vec![(1.0, 2.0)],
            top_k: vec![vec![7, 3], vec![]],
            records: Vec::new(),
        };
        checkpoint.save(dir.path()).unwrap();
        // A crash in the middle of the next write leaves a partial temporary file: ignored.
        std::fs::write(dir.path().join(FILE_NAME).with_extension("tmp"), b"FEDCCKPT\x01").unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), Some(checkpoint.clone()));
        checkpoint.save(dir.path()).unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), Some(checkpoint));
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(format!("{:#}", Checkpoint::load(dir.path()).unwrap_err()).contains("checksum"));
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert!(Checkpoint::load(dir.path()).is_err());
        // A checkpoint of the previous version (no top_k buckets) is refused by its version.
        bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let error = format!("{:#}", Checkpoint::load(dir.path()).unwrap_err());
        assert!(error.contains("checkpoint version 2, this build reads 3"), "{error}");
    }

    proptest::proptest! {
        /// Random files never panic the loader (it either refuses them or, rarely, decodes one).
        #[test]
        fn random_files_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
            let _ = Checkpoint::load(dir.path());
        }
    }
}
