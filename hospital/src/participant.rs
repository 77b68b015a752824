//! A hospital's participant ([`fedcare_protocol::participant`]: every check and every signature)
//! with what the shell hands it: its signing key, read from its key file, and its ledger (its
//! releases with their privacy charges, and its endorsements: where its schedule stands), kept
//! in one file ([`FileLedger`]) in the hospital's state directory.
//!
//! Guarantees:
//! - A release is in the ledger file, written and synced (with its directory when the file is
//!   new), before the participant lets the decryption share for it leave; an endorsement before
//!   its signature leaves. So a hospital that restarts resumes its schedule and its privacy
//!   budget from the file, over every federation it took part in.
//! - A ledger file that cannot be read is an error: the participant is not made without it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fedcare_protocol::ledger::{Entry, Ledger, MemoryLedger};
pub use fedcare_protocol::participant::{Agreed, FinalFile, Participant, Reply};

use crate::config::Consortium;
use crate::error::{Result, TrustError};
use crate::protocol::{Agreement, FederationSettings, NodeId};
use crate::signing::SigningKey;

/// File name of the ledger inside a hospital's state directory.
pub const LEDGER_FILE: &str = "decryptions.jsonl";

/// The ledger in an append-only file: one JSON line per decryption share (its slot, start state,
/// participants and privacy charge) and per endorsement (the session, its start and end states,
/// the model files), synced before what it records leaves. Lines written before the start state
/// was recorded (slot only) still read, and still bind their slot.
#[derive(Debug)]
pub struct FileLedger {
    path: PathBuf,
    entries: Vec<Entry>,
}

impl FileLedger {
    /// The ledger in `path` (created when absent, with its directory).
    pub fn open(path: &Path) -> core::result::Result<Self, TrustError> {
        let error = |why: String| TrustError::Ledger { ledger: path.display().to_string(), why };
        let mut entries = Vec::new();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                    let entry: Entry = serde_json::from_str(line).map_err(|e| {
                        error(format!("line {}: {e} (neither a release nor an endorsement)", number + 1))
                    })?;
                    entries.push(entry);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| error(e.to_string()))?;
                }
            }
            Err(e) => return Err(error(e.to_string())),
        }
        Ok(Self { path: path.to_path_buf(), entries })
    }
}

impl Ledger for FileLedger {
    fn entries(&self) -> Vec<Entry> {
        self.entries.clone()
    }

    fn record(&mut self, entry: Entry) -> core::result::Result<(), TrustError> {
        let path = &self.path;
        let error = |e: std::io::Error| TrustError::Ledger { ledger: path.display().to_string(), why: e.to_string() };
        let created = !path.exists();
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(error)?;
        // Invariant: an entry always serializes (its ε, when there is one, is finite).
        let mut line = serde_json::to_string(&entry).unwrap_or_default();
        line.push('\n');
        file.write_all(line.as_bytes()).and_then(|()| file.sync_all()).map_err(error)?;
        if created && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(error)?;
        }
        self.entries.push(entry);
        Ok(())
    }
}

/// What a hospital trusts, from its own files: its signing key, the consortium it pins and
/// where its decryption ledger lives.
#[derive(Debug, Clone)]
pub struct HospitalTrust {
    /// The hospital's signing key (its mTLS key).
    pub key: Arc<SigningKey>,
    /// The consortium it pins.
    pub consortium: Consortium,
    /// The ledger file (`None`: in memory, for tests of the protocol logic only).
    pub ledger: Option<PathBuf>,
}

impl HospitalTrust {
    /// The participant `me` of the federation of `settings`, with this hospital's key, roster
    /// and ledger, when the settings are of the federation and job it `agreed` to.
    pub fn participant(&self, me: NodeId, agreed: &Agreement, settings: FederationSettings) -> Result<Participant> {
        let ledger: Box<dyn Ledger> = match &self.ledger {
            Some(path) => Box::new(FileLedger::open(path)?),
            None => Box::new(MemoryLedger::default()),
        };
        let trust = fedcare_protocol::participant::Trust {
            key: self.key.clone(),
            consortium: self.consortium.clone(),
            agreed: agreed.clone(),
        };
        Ok(Participant::new(me, &trust, settings, ledger)?)
    }
}

/// What hospital `name` of a development PKI in `dir` trusts: its own key, the PKI's
/// hospitals as its roster, and a ledger in `state_dir`.
pub fn dev_trust(dir: &Path, name: &str, hospitals: &[String], state_dir: &Path) -> Result<HospitalTrust> {
    let (_, key) = fedcare_net::tls::party_files(dir, name);
    Ok(HospitalTrust {
        key: std::sync::Arc::new(SigningKey::from_pem_file(&key)?),
        consortium: fedcare_net::tls::dev_consortium(dir, hospitals)?,
        ledger: Some(state_dir.join(LEDGER_FILE)),
    })
}
