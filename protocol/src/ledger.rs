//! A hospital's decryption ledger: the slots (federation, round, session kind) it has made a
//! decryption share for. Training is deterministic, so two decryptions of one round over
//! different hospital sets would give one hospital's exact update as their difference: the
//! participant makes no second share for a recorded slot, and lets a share leave only once its
//! slot is recorded.
//!
//! The [`Ledger`] trait is what the participant needs; [`MemoryLedger`] keeps the slots in memory
//! (tests, tools), and the hospital's shell keeps them in a file it syncs before returning.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::TrustError;
use crate::ids::SessionKind;

/// One decryption slot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slot {
    /// The federation.
    pub federation: String,
    /// The round.
    pub round: u32,
    /// What the session computed.
    pub kind: SessionKind,
}

/// Where a hospital records its decryption slots.
pub trait Ledger: Send + Sync + core::fmt::Debug {
    /// Whether a share was made for `slot`.
    fn contains(&self, slot: &Slot) -> bool;

    /// Records `slot` durably (for a file: written and synced) before returning; an error means
    /// it may not be recorded, and the participant then sends no share.
    fn record(&mut self, slot: Slot) -> Result<(), TrustError>;
}

/// A ledger in memory: what a process forgets when it stops (tests and tools only).
#[derive(Debug, Default)]
pub struct MemoryLedger {
    spent: BTreeSet<Slot>,
}

impl MemoryLedger {
    /// The slots recorded, in order.
    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.spent.iter()
    }
}

impl Ledger for MemoryLedger {
    fn contains(&self, slot: &Slot) -> bool {
        self.spent.contains(slot)
    }

    fn record(&mut self, slot: Slot) -> Result<(), TrustError> {
        self.spent.insert(slot);
        Ok(())
    }
}
