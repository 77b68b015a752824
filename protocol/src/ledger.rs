//! A hospital's release ledger: every decryption share it made, with what that release reveals —
//! the session's slot (federation, round, session kind), the state the session started from and
//! the participants whose contributions were summed.
//!
//! Two rules keep a decrypted sum from revealing one hospital's data ([`Release::check`]):
//! - one share per slot: training is deterministic, so two decryptions of one round over
//!   different hospital sets would give one hospital's exact update as their difference;
//! - one participant set per start state: whatever the round number or kind the aggregator puts
//!   on a session, two sums computed from one state over sets that differ by a hospital give
//!   that hospital's contribution as their difference. A hospital releases from a state it
//!   released from before only with exactly the same participants.
//!
//! The participant checks both before it contributes and again before a share leaves, and lets a
//! share leave only once its release is recorded. The [`Ledger`] trait is what the participant
//! needs; [`MemoryLedger`] keeps the releases in memory (tests, tools), and the hospital's shell
//! keeps them in a file it syncs before returning.

use serde::{Deserialize, Serialize};

use crate::digest::StateDigest;
use crate::error::TrustError;
use crate::ids::{NodeId, SessionKind};

/// One decryption slot: a session of a federation, whatever its attempt.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slot {
    /// The federation.
    pub federation: String,
    /// The round.
    pub round: u32,
    /// What the session computed.
    pub kind: SessionKind,
}

/// One decryption share a hospital made, and what it reveals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The session.
    #[serde(flatten)]
    pub slot: Slot,
    /// The state the session started from (`None` in a ledger written before it was recorded).
    #[serde(default)]
    pub start: Option<StateDigest>,
    /// The participants whose contributions the decrypted sum adds up, sorted.
    #[serde(default)]
    pub members: Vec<NodeId>,
}

impl Slot {
    /// Refuses a slot `earlier` releases already made a share for.
    pub fn check(&self, earlier: &[Release]) -> Result<(), TrustError> {
        if earlier.iter().any(|release| &release.slot == self) {
            let Slot { federation, round, kind } = self.clone();
            return Err(TrustError::SlotSpent { federation, round, kind });
        }
        Ok(())
    }
}

impl Release {
    /// Refuses this release when an `earlier` one makes it reveal more than its own sum: a share
    /// for the same slot, or one from the same start state with other participants.
    pub fn check(&self, earlier: &[Release]) -> Result<(), TrustError> {
        self.slot.check(earlier)?;
        let reused = earlier.iter().find(|e| e.start.is_some() && e.start == self.start && e.members != self.members);
        if let Some(before) = reused {
            let names = |members: &[NodeId]| members.iter().map(|n| n.as_str().to_owned()).collect();
            return Err(TrustError::StartReused {
                round: self.slot.round,
                kind: self.slot.kind,
                earlier_round: before.slot.round,
                earlier_kind: before.slot.kind,
                earlier: names(&before.members),
                now: names(&self.members),
            });
        }
        Ok(())
    }
}

/// Where a hospital records its releases.
pub trait Ledger: Send + Sync + core::fmt::Debug {
    /// The releases recorded, in the order they were made.
    fn releases(&self) -> Vec<Release>;

    /// Records `release` durably (for a file: written and synced) before returning; an error
    /// means it may not be recorded, and the participant then sends no share.
    fn record(&mut self, release: Release) -> Result<(), TrustError>;
}

/// A ledger in memory: what a process forgets when it stops (tests and tools only).
#[derive(Debug, Default)]
pub struct MemoryLedger {
    releases: Vec<Release>,
}

impl Ledger for MemoryLedger {
    fn releases(&self) -> Vec<Release> {
        self.releases.clone()
    }

    fn record(&mut self, release: Release) -> Result<(), TrustError> {
        self.releases.push(release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(round: u32, kind: SessionKind, start: u8, members: &[&str]) -> Release {
        Release {
            slot: Slot { federation: "fed".into(), round, kind },
            start: Some(StateDigest([start; 32])),
            members: members.iter().map(|m| NodeId::new(*m).unwrap()).collect(),
        }
    }

    #[test]
    fn a_slot_is_released_once_and_a_start_state_with_one_set_only() {
        let earlier = [release(1, SessionKind::Train, 7, &["a", "b", "c"])];
        // Another round from another state, or from the same state with the same set: allowed.
        release(2, SessionKind::Train, 8, &["a", "b"]).check(&earlier).unwrap();
        release(2, SessionKind::Evaluate, 7, &["a", "b", "c"]).check(&earlier).unwrap();
        // The same slot again, whatever else.
        let again = release(1, SessionKind::Train, 8, &["a", "b", "c"]).check(&earlier).unwrap_err();
        assert!(matches!(again, TrustError::SlotSpent { round: 1, .. }), "{again}");
        // The same state with a set one hospital short, relabelled as any round or kind.
        for kind in [SessionKind::Setup, SessionKind::Train, SessionKind::Evaluate, SessionKind::Explore] {
            let error = release(5, kind, 7, &["a", "b"]).check(&earlier).unwrap_err();
            assert!(
                matches!(&error, TrustError::StartReused { earlier_round: 1, earlier, now, .. } if earlier.len() == 3 && now.len() == 2),
                "{error}"
            );
        }
        // A ledger line written before the start state was recorded reads, and binds its slot.
        let old: Release = serde_json::from_str(r#"{"federation":"fed","round":3,"kind":"train"}"#).unwrap();
        assert_eq!((old.start, old.members.len()), (None, 0));
        assert!(release(3, SessionKind::Train, 9, &["a", "b"]).check(&[old]).is_err());
    }
}
