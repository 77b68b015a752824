//! The aggregator's side: summing ciphertexts without any key, and combining decryption shares.
//!
//! [`AggregateBuilder`] adds the parties' ciphertexts element-wise (wrapping `u64` adds) and
//! records who contributed what ([`ContributionHash`]) and the carry of every mask coefficient's
//! integer sum (what [`crate::check`] needs). The finished [`Aggregate`] gives the parties its
//! masks ([`AggregateMasks`], with the contributors, the carries and a digest binding them); each
//! returns a [`DecryptionShare`] made for exactly that digest; [`Aggregate::combine`] subtracts
//! all of them from the summed bodies and rounds to `Δ`: the exact sum of the plaintext words.
//! [`Aggregate::decrypted`] keeps the unrounded phases with their integer lifts instead
//! ([`DecryptedSum`]), for parties that check the output before they accept it.

use std::collections::{BTreeMap, BTreeSet};

use tfhe::core_crypto::algorithms::slice_algorithms::slice_wrapping_add_assign;

use rayon::prelude::*;

use super::CryptoError;
use super::check::{Challenge, MaskFingerprint};
use super::ciphertext::{Ciphertext, ContributionHash, hash_words};
use super::keys::{CollectivePublicKey, Crs, PartyId};
use super::params::ThresholdParams;
use super::streaming::ContributionStream;

/// Words per parallel task of the element-wise passes of decryption (a few hundred KiB: large
/// enough to outweigh scheduling, small enough to spread a model's vector over every thread).
const CHUNK: usize = 1 << 15;

/// `sum += added` element-wise (wrapping), counting in `carries` each word whose integer sum
/// passed 2^64 (exactly when the wrapping sum came out below the added word). At most 64
/// contributors (the noise budget), so a carry stays below 64. One thread: the pass is bound by
/// memory, and splitting it over 2 threads made aggregation slower (2026-12-02, 2-core EPYC:
/// 10 × 1M values in 83 ms against 71 ms); the ciphertext's hash runs beside it instead.
fn add_counting_carries(sum: &mut [u64], carries: &mut [u8], added: &[u64]) {
    // Two simple passes: both vectorize.
    slice_wrapping_add_assign(sum, added);
    for ((carry, &sum), &word) in carries.iter_mut().zip(sum.iter()).zip(added) {
        *carry += u8::from(sum < word);
    }
}

/// Sums the ciphertexts of one round. Holds no secret.
///
/// Every holder of a key share must contribute: decryption needs all key shares, so an aggregate
/// missing a key holder's ciphertext could never be decrypted (the round restarts instead).
///
/// A ciphertext comes whole ([`Self::add`]) or streamed ([`Self::begin`], [`Self::add_run`] for
/// every run of words as it arrives, then [`Self::commit`]): then the builder never holds more
/// than the sum. A stream that fails after some of its words went in breaks the builder
/// ([`Self::abandon`]): it refuses everything after, and the round must restart.
#[derive(Debug)]
pub struct AggregateBuilder {
    params: ThresholdParams,
    crs: Crs,
    key_holders: Vec<PartyId>,
    len: usize,
    sum: Vec<u64>,
    /// Per mask coefficient, how often its integer sum passed 2^64.
    carries: Vec<u8>,
    /// The same for every body (what the output check of [`DecryptedSum`] needs).
    body_carries: Vec<u8>,
    contributors: BTreeMap<PartyId, ContributionHash>,
    /// Contributions being streamed in, and whether words of theirs are in the sum yet.
    streaming: BTreeMap<PartyId, bool>,
    /// Why the sum can no longer be trusted (a stream failed after adding words).
    broken: Option<String>,
}

impl AggregateBuilder {
    /// An empty sum of `len`-value ciphertexts made under the round's collective `key`.
    pub fn new(params: ThresholdParams, key: &CollectivePublicKey, len: usize) -> Self {
        let size = params.ciphertext_words(len);
        Self {
            params,
            crs: key.crs,
            key_holders: key.parties.clone(),
            len,
            sum: vec![0; size],
            carries: vec![0; size - len],
            body_carries: vec![0; len],
            contributors: BTreeMap::new(),
            streaming: BTreeMap::new(),
            broken: None,
        }
    }

    /// Refuses a party that cannot contribute now: one without a key share, one that already
    /// contributed or is streaming, or anyone once the sum is broken.
    fn check_contributor(&self, party: &PartyId) -> Result<(), CryptoError> {
        if let Some(why) = &self.broken {
            return Err(CryptoError::BrokenAggregate(why.clone()));
        }
        if !self.key_holders.contains(party) {
            return Err(CryptoError::UnknownParty(party.clone()));
        }
        if self.contributors.contains_key(party) || self.streaming.contains_key(party) {
            return Err(CryptoError::Duplicate(party.clone()));
        }
        Ok(())
    }

    /// Starts receiving `party`'s ciphertext piece by piece.
    pub fn begin(&mut self, party: PartyId) -> Result<ContributionStream, CryptoError> {
        self.check_contributor(&party)?;
        self.streaming.insert(party.clone(), false);
        Ok(ContributionStream::new(self.params, self.crs, self.len, party))
    }

    /// Adds the run of words the stream's last [`ContributionStream::read`] completed.
    pub fn add_run(&mut self, stream: &ContributionStream) -> Result<(), CryptoError> {
        let run = stream.run();
        if let Some(why) = &self.broken {
            return Err(CryptoError::BrokenAggregate(why.clone()));
        }
        let Some(touched) = self.streaming.get_mut(stream.party()) else {
            return Err(CryptoError::Malformed("a run of a contribution that is not being received"));
        };
        if run.start + run.words.len() > self.sum.len() {
            return Err(CryptoError::Malformed("a run beyond the ciphertext's end"));
        }
        *touched |= !run.is_empty();
        self.add_words(run.start, &run.words);
        Ok(())
    }

    /// Adds consecutive words of a ciphertext from word `start` (within the sum) into the sum,
    /// counting the carries of the masks' and the bodies' words apart; the words may straddle
    /// the masks' end.
    fn add_words(&mut self, start: usize, words: &[u64]) {
        let masks = self.carries.len();
        let end = start + words.len();
        let split = masks.clamp(start, end) - start;
        let (mask_words, body_words) = words.split_at(split);
        if !mask_words.is_empty() {
            let range = start..start + mask_words.len();
            add_counting_carries(&mut self.sum[range.clone()], &mut self.carries[range], mask_words);
        }
        if !body_words.is_empty() {
            let from = start + split;
            let carries = from - masks..from - masks + body_words.len();
            add_counting_carries(&mut self.sum[from..end], &mut self.body_carries[carries], body_words);
        }
    }

    /// Ends a stream: its party becomes a contributor if every byte came and checked out;
    /// otherwise it is abandoned ([`Self::abandon`]) and the error returned.
    pub fn commit(&mut self, stream: ContributionStream) -> Result<ContributionHash, CryptoError> {
        let party = stream.party().clone();
        if let Some(why) = &self.broken {
            return Err(CryptoError::BrokenAggregate(why.clone()));
        }
        match stream.finish() {
            Ok(hash) => {
                self.streaming.remove(&party);
                self.contributors.insert(party, hash);
                Ok(hash)
            }
            Err(error) => {
                self.abandon(&party, &error.to_string());
                Err(error)
            }
        }
    }

    /// Gives up on `party`'s stream (it failed, or its connection went): harmless while none
    /// of its words went into the sum (the party may send it again); otherwise the sum is
    /// broken for good.
    pub fn abandon(&mut self, party: &PartyId, why: &str) {
        if self.streaming.remove(party) == Some(true) && self.broken.is_none() {
            self.broken = Some(format!("{party}'s contribution failed after part of it was added ({why})"));
        }
    }

    /// Why the sum is broken, if it is.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Adds one party's ciphertext, refusing another round's, another parameter set's, one of
    /// the wrong length, one from a party without a key share, or a second one from a party.
    pub fn add(&mut self, party: PartyId, ciphertext: &Ciphertext) -> Result<ContributionHash, CryptoError> {
        if ciphertext.params_id != self.params.id {
            return Err(CryptoError::WrongParams { expected: self.params.id, got: ciphertext.params_id });
        }
        if ciphertext.crs != self.crs {
            return Err(CryptoError::WrongCrs);
        }
        if ciphertext.len != self.len || ciphertext.data.len() != self.sum.len() {
            return Err(CryptoError::LengthMismatch { expected: self.len, got: ciphertext.len });
        }
        self.check_contributor(&party)?;
        // The commitment and the sum read the same words: both at once, on the crypto threads.
        let (hash, ()) = rayon::join(|| ciphertext.hash(), || self.add_words(0, &ciphertext.data));
        self.contributors.insert(party, hash);
        Ok(hash)
    }

    /// Number of ciphertexts added.
    pub fn contributors(&self) -> usize {
        self.contributors.len()
    }

    /// The key holders that have not contributed yet.
    pub fn missing(&self) -> impl Iterator<Item = &PartyId> {
        self.key_holders.iter().filter(|p| !self.contributors.contains_key(*p))
    }

    /// The finished aggregate; refused while a key holder has not contributed.
    pub fn finish(self) -> Result<Aggregate, CryptoError> {
        if let Some(why) = self.broken {
            return Err(CryptoError::BrokenAggregate(why));
        }
        if let Some(missing) = self.missing().next() {
            return Err(CryptoError::MissingContribution(missing.clone()));
        }
        self.params.noise_budget(self.contributors.len())?;
        let masks = AggregateMasks::new(
            self.params.id,
            self.crs,
            self.len,
            self.contributors.into_iter().collect(),
            self.sum[..self.sum.len() - self.len].to_vec(),
            self.carries,
        );
        let bodies = self.sum[self.sum.len() - self.len..].to_vec();
        Ok(Aggregate { params: self.params, masks, bodies, body_carries: self.body_carries })
    }
}

/// What the parties see of an aggregate to make their decryption shares: its masks, the carries
/// of their integer sums, its contributors with their hashes, and a digest of all that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateMasks {
    pub(crate) params_id: u16,
    pub(crate) crs: Crs,
    pub(crate) len: usize,
    pub(crate) contributors: Vec<(PartyId, ContributionHash)>,
    pub(crate) masks: Vec<u64>,
    /// Per mask coefficient, `⌊Σ_j mask_j / 2^64⌋` over the integers (as long as `masks`).
    pub(crate) carries: Vec<u8>,
    pub(crate) digest: [u8; 32],
}

impl AggregateMasks {
    pub(crate) fn new(
        params_id: u16,
        crs: Crs,
        len: usize,
        contributors: Vec<(PartyId, ContributionHash)>,
        masks: Vec<u64>,
        carries: Vec<u8>,
    ) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"fedcare/aggregate/v2");
        hasher.update(&params_id.to_le_bytes());
        hasher.update(&crs.0.to_le_bytes());
        hasher.update(&(len as u64).to_le_bytes());
        hasher.update(&(contributors.len() as u64).to_le_bytes());
        for (party, hash) in &contributors {
            hasher.update(&(party.as_str().len() as u64).to_le_bytes());
            hasher.update(party.as_str().as_bytes());
            hasher.update(&hash.0);
        }
        hash_words(&mut hasher, &masks);
        hasher.update(&carries);
        Self { params_id, crs, len, contributors, masks, carries, digest: *hasher.finalize().as_bytes() }
    }

    /// The fingerprint of the masks' integer lift under `challenge` ([`crate::check`]): equal to
    /// the sum of the contributors' own fingerprints exactly when the masks are their sum.
    pub fn lifted_fingerprint(&self, challenge: &Challenge) -> MaskFingerprint {
        challenge.lifted_fingerprint(&self.masks, &self.carries)
    }

    /// The contributors and their ciphertext hashes, sorted by party.
    pub fn contributors(&self) -> &[(PartyId, ContributionHash)] {
        &self.contributors
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the aggregate holds no value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The round's CRS.
    pub fn crs(&self) -> Crs {
        self.crs
    }

    /// The digest every decryption share is bound to.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
}

/// One party's decryption share of one aggregate: `⟨mask, s_i⟩ + smudging` for every value.
#[derive(Clone, PartialEq, Eq)]
pub struct DecryptionShare {
    pub(crate) params_id: u16,
    pub(crate) crs: Crs,
    pub(crate) party: PartyId,
    pub(crate) aggregate_digest: [u8; 32],
    pub(crate) partial: Vec<u64>,
}

impl core::fmt::Debug for DecryptionShare {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DecryptionShare")
            .field("party", &self.party)
            .field("len", &self.partial.len())
            .finish_non_exhaustive()
    }
}

impl DecryptionShare {
    /// The party that made it.
    pub fn party(&self) -> &PartyId {
        &self.party
    }
}

/// The sum of a round's ciphertexts, held by the aggregator (which cannot decrypt it alone).
#[derive(Debug, Clone)]
pub struct Aggregate {
    params: ThresholdParams,
    masks: AggregateMasks,
    bodies: Vec<u64>,
    /// Per body, `⌊Σ_j body_j / 2^64⌋` over the integers.
    body_carries: Vec<u8>,
}

impl Aggregate {
    /// What the parties need to make their decryption shares.
    pub fn masks(&self) -> &AggregateMasks {
        &self.masks
    }

    /// Subtracts one decryption share from every contributor and rounds: the exact sum of the
    /// contributors' plaintext words, modulo `2^plaintext_bits`.
    ///
    /// Refuses a missing, duplicate, foreign (another aggregate, round or parameter set) or
    /// wrongly sized share.
    pub fn combine(&self, shares: &[DecryptionShare]) -> Result<Vec<u64>, CryptoError> {
        Ok(self.decode_phases(self.every_share(shares)?.into_values()))
    }

    /// The shares by party, each checked ([`Self::check_share`]), one from every contributor.
    fn every_share<'a>(
        &self,
        shares: &'a [DecryptionShare],
    ) -> Result<BTreeMap<&'a PartyId, &'a DecryptionShare>, CryptoError> {
        let mut seen: BTreeMap<&PartyId, &DecryptionShare> = BTreeMap::new();
        for share in shares {
            self.check_share(share)?;
            if seen.insert(&share.party, share).is_some() {
                return Err(CryptoError::Duplicate(share.party.clone()));
            }
        }
        if let Some((missing, _)) = self.masks.contributors.iter().find(|(p, _)| !seen.contains_key(p)) {
            return Err(CryptoError::MissingShare(missing.clone()));
        }
        Ok(seen)
    }

    /// Subtracts every contributor's decryption share from the summed bodies, keeping the
    /// phases unrounded with the integer lift of each: what every party checks against the
    /// contributors' signed fingerprints before it accepts the sum ([`DecryptedSum`]). Refuses
    /// the shares [`Self::combine`] refuses.
    pub fn decrypted(&self, shares: &[DecryptionShare]) -> Result<DecryptedSum, CryptoError> {
        let mut decryption = self.start_decryption();
        for share in shares {
            decryption.subtract(self, share)?;
        }
        decryption.finish(self)
    }

    /// A decryption that takes the shares one at a time as they arrive ([`Decryption`]).
    pub fn start_decryption(&self) -> Decryption {
        Decryption {
            aggregate_digest: self.masks.digest,
            phases: self.bodies.clone(),
            // At most 64 contributors: the lift `carries − borrows` stays within [−64, 63].
            lifts: self.body_carries.iter().map(|&c| c as i8).collect(),
            seen: BTreeSet::new(),
        }
    }

    /// Refuses a share of another parameter set, round or aggregate, from a party that did not
    /// contribute, or of the wrong size: what [`Self::combine`] checks of every share, for a
    /// receiver that wants to refuse a bad share as it arrives.
    pub fn check_share(&self, share: &DecryptionShare) -> Result<(), CryptoError> {
        if share.params_id != self.params.id {
            return Err(CryptoError::WrongParams { expected: self.params.id, got: share.params_id });
        }
        if share.crs != self.masks.crs {
            return Err(CryptoError::WrongCrs);
        }
        if !self.masks.contributors.iter().any(|(p, _)| p == &share.party) {
            return Err(CryptoError::UnknownParty(share.party.clone()));
        }
        if share.aggregate_digest != self.masks.digest {
            return Err(CryptoError::ForeignAggregate(share.party.clone()));
        }
        if share.partial.len() != self.bodies.len() {
            return Err(CryptoError::LengthMismatch { expected: self.bodies.len(), got: share.partial.len() });
        }
        Ok(())
    }

    /// `round((body − Σ partial) / Δ)` for every value, over the shares given (unchecked).
    pub(super) fn decode_phases<'a>(&self, shares: impl Iterator<Item = &'a DecryptionShare>) -> Vec<u64> {
        let shares: Vec<&DecryptionShare> = shares.collect();
        let mut phases = self.bodies.clone();
        phases.par_chunks_mut(CHUNK).enumerate().for_each(|(chunk, phases)| {
            let start = chunk * CHUNK;
            for share in &shares {
                let partial = &share.partial[start..start + phases.len()];
                phases.iter_mut().zip(partial).for_each(|(x, &d)| *x = x.wrapping_sub(d));
            }
            phases.iter_mut().for_each(|x| *x = self.params.delta.round(*x));
        });
        phases
    }
}

/// An aggregate's decryption in progress: the summed bodies minus the shares subtracted so far,
/// with their integer lifts. Each share is checked and subtracted as it arrives and need not be
/// kept, so the aggregator holds one vector whatever the number of contributors; the order of
/// the shares does not change the result.
#[derive(Debug, Clone)]
pub struct Decryption {
    aggregate_digest: [u8; 32],
    phases: Vec<u64>,
    lifts: Vec<i8>,
    seen: BTreeSet<PartyId>,
}

impl Decryption {
    /// Checks `share` against `aggregate` (the one this decryption started from) as
    /// [`Aggregate::check_share`] does, refuses a second share of a party, and subtracts it.
    pub fn subtract(&mut self, aggregate: &Aggregate, share: &DecryptionShare) -> Result<(), CryptoError> {
        if aggregate.masks.digest != self.aggregate_digest {
            return Err(CryptoError::ForeignAggregate(share.party.clone()));
        }
        aggregate.check_share(share)?;
        if self.seen.contains(&share.party) {
            return Err(CryptoError::Duplicate(share.party.clone()));
        }
        self.phases
            .par_chunks_mut(CHUNK)
            .zip(self.lifts.par_chunks_mut(CHUNK))
            .zip(share.partial.par_chunks(CHUNK))
            .for_each(|((phases, lifts), partial)| {
                for ((phase, lift), &d) in phases.iter_mut().zip(lifts.iter_mut()).zip(partial) {
                    let (difference, borrow) = phase.overflowing_sub(d);
                    *phase = difference;
                    *lift -= i8::from(borrow);
                }
            });
        self.seen.insert(share.party.clone());
        Ok(())
    }

    /// Whether `party`'s share has been subtracted.
    pub fn has(&self, party: &PartyId) -> bool {
        self.seen.contains(party)
    }

    /// The decrypted sum, once every contributor's share is in.
    pub fn finish(self, aggregate: &Aggregate) -> Result<DecryptedSum, CryptoError> {
        if let Some((missing, _)) = aggregate.masks.contributors.iter().find(|(p, _)| !self.seen.contains(p)) {
            return Err(CryptoError::MissingShare(missing.clone()));
        }
        if aggregate.masks.digest != self.aggregate_digest {
            return Err(CryptoError::Malformed("a decryption finished against another aggregate"));
        }
        Ok(DecryptedSum::new(
            aggregate.params,
            aggregate.masks.crs,
            self.aggregate_digest,
            aggregate.masks.contributors.len(),
            self.phases,
            self.lifts,
        ))
    }
}

/// An aggregate after decryption, before rounding: per value the phase
/// `Σ_j body_j − Σ_j share_j mod 2^64` and its integer lift (`Σ_j (body_j − share_j) =
/// phase + lift·2^64` over the integers). Every party gets it and checks it against the
/// contributors' signed fingerprints of `body_j − share_j` ([`crate::check`]): only then does
/// it round it into the sum ([`Self::words`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptedSum {
    pub(crate) params: ThresholdParams,
    pub(crate) crs: Crs,
    pub(crate) aggregate_digest: [u8; 32],
    pub(crate) contributors: usize,
    pub(crate) phases: Vec<u64>,
    pub(crate) lifts: Vec<i8>,
    pub(crate) digest: [u8; 32],
}

impl DecryptedSum {
    pub(crate) fn new(
        params: ThresholdParams,
        crs: Crs,
        aggregate_digest: [u8; 32],
        contributors: usize,
        phases: Vec<u64>,
        lifts: Vec<i8>,
    ) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"fedcare/decrypted-sum/v1");
        hasher.update(&params.id.to_le_bytes());
        hasher.update(&crs.0.to_le_bytes());
        hasher.update(&aggregate_digest);
        hasher.update(&(contributors as u64).to_le_bytes());
        hasher.update(&(phases.len() as u64).to_le_bytes());
        hash_words(&mut hasher, &phases);
        hasher.update(bytemuck::cast_slice(&lifts));
        Self { params, crs, aggregate_digest, contributors, phases, lifts, digest: *hasher.finalize().as_bytes() }
    }

    /// The fingerprint of the integer lift under `challenge`: equal to the sum of the
    /// contributors' fingerprints of `body_j − share_j` exactly when the sum is theirs.
    pub fn lifted_fingerprint(&self, challenge: &Challenge) -> MaskFingerprint {
        challenge.signed_lifted_fingerprint(&self.phases, &self.lifts)
    }

    /// The rounded plaintext words (what [`Aggregate::combine`] returns). Only meaningful once
    /// checked ([`crate::PartySession::check_sum`]).
    pub fn words(&self) -> Vec<u64> {
        self.phases.iter().map(|&x| self.params.delta.round(x)).collect()
    }

    /// The digest every party commits to before the output challenge is drawn.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The digest of the aggregate it decrypts.
    pub fn aggregate_digest(&self) -> [u8; 32] {
        self.aggregate_digest
    }

    /// The round's CRS.
    pub fn crs(&self) -> Crs {
        self.crs
    }

    /// The number of contributors it sums.
    pub fn contributors(&self) -> usize {
        self.contributors
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.phases.len()
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.phases.is_empty()
    }
}
