//! A hospital's ledger: what it released and what it endorsed, kept so that a hospital that
//! restarts refuses what it refused before.
//!
//! A [`Release`] is a decryption share the hospital made, with what that release reveals: the
//! session's slot (federation, round, session kind), the state the session started from, the
//! participants whose contributions were summed, and, when the hospital counts its patients'
//! privacy, the ε of its federation once the sum is out (its privacy ledger). Two rules keep a
//! decrypted sum from revealing one hospital's data ([`Release::check`]):
//! - one share per slot: training is deterministic, so two decryptions of one round over
//!   different hospital sets would give one hospital's exact update as their difference;
//! - one participant set per start state: whatever the round number or kind the aggregator puts
//!   on a session, two sums computed from one state over sets that differ by a hospital give
//!   that hospital's contribution as their difference. A hospital releases from a state it
//!   released from before only with exactly the same participants.
//!
//! An [`Endorsement`] is the last step of a session the hospital checked: the states it started
//! from and ended with and the model files after it, so its schedule (where the chain of states
//! ends, which final file it computed) survives a restart.
//!
//! The participant checks the release rules before it contributes and again before a share
//! leaves, lets a share leave only once its release is recorded, and records an endorsement
//! before its signature leaves. The [`Ledger`] trait is what the participant needs;
//! [`MemoryLedger`] keeps the entries in memory (tests, tools), and the hospital's shell keeps
//! them in one file it syncs before returning.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::{FileDigest, StateDigest};
use crate::error::TrustError;
use crate::ids::{NodeId, SessionId, SessionKind};

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The ε of the federation once this sum is out, at its δ (this hospital's accounting, when
    /// it sets a `max_epsilon`; `None` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
}

/// A session whose output a hospital checked and endorsed: where its chain of states ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endorsement {
    /// The federation.
    pub federation: String,
    /// The session.
    pub session: SessionId,
    /// What it computed.
    pub kind: SessionKind,
    /// The state it started from.
    pub start: StateDigest,
    /// The state it ended with (its output).
    pub end: StateDigest,
    /// The model file after it, then the one after the session before (when known).
    pub files: Vec<FileDigest>,
}

/// One line of a ledger. (Untagged: an endorsement is told by its `end`; a release line of any
/// version reads as a release.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Entry {
    /// A session endorsed.
    Endorsed(Endorsement),
    /// A decryption share made.
    Released(Release),
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

/// The ε a hospital's patients spent in federations other than `federation`, by its privacy
/// ledger: each federation's ε is the largest its releases record (its accountant composes the
/// releases within it), and federations add up (basic composition).
pub fn epsilon_spent_elsewhere(releases: &[Release], federation: &str) -> f64 {
    let mut largest: BTreeMap<&str, f64> = BTreeMap::new();
    for release in releases.iter().filter(|r| r.slot.federation != federation) {
        if let Some(epsilon) = release.epsilon {
            let entry = largest.entry(release.slot.federation.as_str()).or_insert(0.0);
            *entry = entry.max(epsilon);
        }
    }
    largest.values().sum()
}

/// Where a hospital keeps its ledger.
pub trait Ledger: Send + Sync + core::fmt::Debug {
    /// The entries recorded, in the order they were made.
    fn entries(&self) -> Vec<Entry>;

    /// Records `entry` durably (for a file: written and synced) before returning; an error means
    /// it may not be recorded, and the participant then sends nothing that depends on it.
    fn record(&mut self, entry: Entry) -> Result<(), TrustError>;

    /// The releases recorded, in the order they were made.
    fn releases(&self) -> Vec<Release> {
        let released = |entry| match entry {
            Entry::Released(release) => Some(release),
            Entry::Endorsed(_) => None,
        };
        self.entries().into_iter().filter_map(released).collect()
    }

    /// The last session of `federation` this hospital endorsed.
    fn last_endorsed(&self, federation: &str) -> Option<Endorsement> {
        let endorsed = |entry| match entry {
            Entry::Endorsed(endorsement) if endorsement.federation == federation => Some(endorsement),
            _ => None,
        };
        self.entries().into_iter().rev().find_map(endorsed)
    }
}

/// A ledger in memory: what a process forgets when it stops (tests and tools only).
#[derive(Debug, Default)]
pub struct MemoryLedger {
    entries: Vec<Entry>,
}

impl Ledger for MemoryLedger {
    fn entries(&self) -> Vec<Entry> {
        self.entries.clone()
    }

    fn record(&mut self, entry: Entry) -> Result<(), TrustError> {
        self.entries.push(entry);
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
            epsilon: None,
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

    #[test]
    fn a_ledger_reads_every_line_it_wrote_and_its_privacy_ledger_adds_federations_up() {
        let endorsed = Entry::Endorsed(Endorsement {
            federation: "fed".into(),
            session: SessionId { round: 2, attempt: 1 },
            kind: SessionKind::Train,
            start: StateDigest([1; 32]),
            end: StateDigest([2; 32]),
            files: vec![FileDigest([3; 32])],
        });
        let charged = |federation: &str, round, epsilon| {
            let mut release = release(round, SessionKind::Train, round as u8, &["a", "b"]);
            release.slot.federation = federation.into();
            release.epsilon = epsilon;
            Entry::Released(release)
        };
        let mut ledger = MemoryLedger::default();
        let entries = [charged("fed", 1, Some(0.5)), endorsed.clone(), charged("other", 1, None)];
        for entry in &entries {
            let line = serde_json::to_string(entry).unwrap();
            let read: Entry = serde_json::from_str(&line).unwrap();
            assert_eq!(&read, entry, "{line}");
            ledger.record(read).unwrap();
        }
        assert_eq!(ledger.releases().len(), 2);
        assert_eq!(
            ledger.last_endorsed("fed"),
            Some(match endorsed {
                Entry::Endorsed(e) => e,
                _ => unreachable!(),
            })
        );
        assert_eq!(ledger.last_endorsed("other"), None);
        // Each federation counts at its largest ε; federations add up; the one asked about is left out.
        let releases = [
            charged("fed", 1, Some(0.5)),
            charged("fed", 2, Some(0.75)),
            charged("other", 1, Some(0.25)),
            charged("third", 1, None),
        ]
        .map(|e| match e {
            Entry::Released(r) => r,
            Entry::Endorsed(_) => unreachable!(),
        });
        assert_eq!(epsilon_spent_elsewhere(&releases, "new"), 1.0);
        assert_eq!(epsilon_spent_elsewhere(&releases, "fed"), 0.25);
    }
}
