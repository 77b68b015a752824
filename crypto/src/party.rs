//! A party's side of one round: its secret key share, its one encryption, its one decryption share.
//!
//! [`PartySession`] enforces the rules that keep a party's key and update safe:
//! - the key share is fresh for the round (drawn in [`PartySession::new`]) and dropped (zeroized)
//!   as soon as it has made its decryption share: a second share is refused, since two
//!   decryptions under one key share leak it;
//! - the party encrypts once, under a collective key it summed itself
//!   ([`PartySession::collective_key`]) from the relayed public key shares, its own among them
//!   byte for byte: a key the aggregator made from a secret of its own is refused, whatever
//!   names it carries;
//! - it makes a decryption share only for an aggregate of its round that lists its own
//!   contribution (by hash), whose contributors are exactly the key holders it encrypted for
//!   (nobody omitted, nobody added), that has at least `min_parties` contributors, and whose
//!   masks pass the [`crate::check`] against the contributors' own fingerprints: exactly their
//!   sum, not one party's mask nor a sum with one coefficient changed;
//! - it accepts a decrypted sum only for the aggregate it made its share for and only when the
//!   sum passes the same kind of check against the contributors' fingerprints of body minus
//!   share ([`PartySession::check_sum`]): the aggregator cannot hand out another result.

use tfhe::core_crypto::algorithms::slice_algorithms::slice_binary_semi_reverse_negacyclic_convolution;
use tfhe::core_crypto::commons::math::random::{RandomGenerator, Seed};
use tfhe::core_crypto::prelude::{DefaultRandomGenerator, TUniform};

use rand_core::TryCryptoRng;
use rayon::prelude::*;

use super::CryptoError;
use super::aggregate::{AggregateMasks, DecryptedSum, DecryptionShare};
use super::check::{Challenge, MaskCheck, MaskFingerprint};
use super::ciphertext::{Ciphertext, ContributionHash, bin_seed, encrypt_seeded};
use super::keys::{CollectivePublicKey, Crs, KeyShareCollector, PartyId, PublicKeyShare, SecretKeyShare};
use super::params::ThresholdParams;
use super::random::{Purpose, SessionRandomness};

/// Adds `⟨mask_j, s⟩` for every value `j` to `out`: per bin, the semi-reversed negacyclic product
/// of the bin's mask polynomial with the key, whose coefficient `n−1−j` decrypts value `j`. The
/// bins run in parallel on the current rayon pool; each is exact, so the result does not depend
/// on the number of threads.
pub(super) fn add_mask_products(out: &mut [u64], masks: &[u64], key: &[u64]) {
    let n = key.len();
    masks
        .par_chunks_exact(n)
        .zip(out.par_chunks_mut(n))
        .for_each_init(|| vec![0u64; n], |product, (mask, values)| add_bin_product(values, product, mask, key));
}

/// [`add_mask_products`] for one bin, `product` being scratch space of `n` words.
fn add_bin_product(values: &mut [u64], product: &mut [u64], mask: &[u64], key: &[u64]) {
    let n = key.len();
    slice_binary_semi_reverse_negacyclic_convolution(product, mask, key);
    for (j, value) in values.iter_mut().enumerate() {
        *value = value.wrapping_add(product[n - 1 - j]);
    }
}

/// A decryption share's values before the key's products: smudging noise below `bound`, each
/// bin's drawn from its own seed derived from `seed`, in parallel; the same for any thread count.
pub(super) fn smudging_noise(len: usize, n: usize, bound: u32, seed: Seed) -> Vec<u64> {
    let mut partial = vec![0u64; len];
    partial.par_chunks_mut(n).enumerate().for_each(|(bin, values)| {
        let mut generator = RandomGenerator::<DefaultRandomGenerator>::new(bin_seed(seed, bin));
        generator.fill_slice_with_random_from_distribution(values, TUniform::<u64>::new(bound));
    });
    partial
}

/// One party's state for one round. (Fields are visible to the `crypto` tests, which bypass
/// the checks to show what they protect.)
#[derive(Debug)]
pub struct PartySession {
    params: ThresholdParams,
    pub(super) id: PartyId,
    crs: Crs,
    pub(super) min_parties: usize,
    pub(super) secret: Option<SecretKeyShare>,
    /// The public share this party published.
    own_share: PublicKeyShare,
    /// The collective key this party summed from the relayed shares.
    key: Option<CollectivePublicKey>,
    /// This party's contribution: what it encrypted for and its masks.
    pub(super) contribution: Option<Contribution>,
    /// This party's decryption share: of which aggregate, and its values.
    decryption: Option<Decryption>,
    /// Where its key share, encryption and smudging noise come from.
    randomness: SessionRandomness,
}

/// What a party remembers of its decryption share (for the output check).
#[derive(Debug)]
struct Decryption {
    aggregate_digest: [u8; 32],
    contributors: usize,
    partial: Vec<u64>,
}

/// What a party remembers of its own contribution.
#[derive(Debug)]
pub(super) struct Contribution {
    pub(super) hash: ContributionHash,
    pub(super) key_holders: Vec<PartyId>,
    pub(super) masks: Vec<u64>,
    /// Its ciphertext's bodies (what the output check needs).
    pub(super) bodies: Vec<u64>,
}

impl PartySession {
    /// Starts a round: draws a fresh secret key share and returns the public share to publish.
    ///
    /// `min_parties` is the fewest contributors an aggregate may have for this party to help
    /// decrypt it (at least 2: a one-party "aggregate" is that party's own update). `rng` is the
    /// caller's cryptographic random source: the session draws 32 bytes from it, once, for its
    /// key share, its encryption and its smudging noise ([`crate::random`]); its failure is
    /// [`CryptoError::Random`].
    pub fn new(
        params: ThresholdParams,
        id: PartyId,
        crs: Crs,
        min_parties: usize,
        rng: &mut impl TryCryptoRng,
    ) -> Result<(Self, PublicKeyShare), CryptoError> {
        params.noise_budget(min_parties.max(1))?;
        let randomness = SessionRandomness::draw(rng)?;
        let secret = SecretKeyShare::generate(&params, &randomness);
        let share = secret.public_share(&params, id.clone(), crs, &randomness);
        let session = Self {
            params,
            id,
            crs,
            min_parties: min_parties.max(2),
            secret: Some(secret),
            own_share: share.clone(),
            key: None,
            contribution: None,
            decryption: None,
            randomness,
        };
        Ok((session, share))
    }

    /// Sums the round's relayed public key shares into the collective key this party will
    /// encrypt under, refusing a set that lacks this party's own share (byte for byte) or has
    /// another round's, a malformed or a duplicate share.
    pub fn collective_key(&mut self, shares: &[PublicKeyShare]) -> Result<CollectivePublicKey, CryptoError> {
        if !shares.iter().any(|share| share == &self.own_share) {
            return Err(CryptoError::OwnKeyShareMissing);
        }
        let mut collector = KeyShareCollector::new(self.params, self.crs);
        for share in shares {
            collector.add(share.clone())?;
        }
        let key = collector.collective_key()?;
        self.key = Some(key.clone());
        Ok(key)
    }

    /// This party's id.
    pub fn id(&self) -> &PartyId {
        &self.id
    }

    /// Encrypts this party's plaintext words under the round's collective key (once per round).
    pub fn encrypt(&mut self, key: &CollectivePublicKey, words: &[u64]) -> Result<Ciphertext, CryptoError> {
        if key.params_id != self.params.id {
            return Err(CryptoError::WrongParams { expected: self.params.id, got: key.params_id });
        }
        if key.crs != self.crs {
            return Err(CryptoError::WrongCrs);
        }
        if key.body.len() != self.params.n() {
            return Err(CryptoError::LengthMismatch { expected: self.params.n(), got: key.body.len() });
        }
        if self.key.as_ref() != Some(key) {
            return Err(CryptoError::UnverifiedKey);
        }
        if self.contribution.is_some() {
            return Err(CryptoError::AlreadyContributed);
        }
        let seed = self.randomness.seed(Purpose::Encryption);
        let ciphertext = encrypt_seeded(&self.params, self.crs, &key.expand(&self.params), words, seed)?;
        let (masks, bodies) = ciphertext.data.split_at(ciphertext.data.len() - ciphertext.len);
        self.contribution = Some(Contribution {
            hash: ciphertext.hash(),
            key_holders: key.parties.clone(),
            masks: masks.to_vec(),
            bodies: bodies.to_vec(),
        });
        Ok(ciphertext)
    }

    /// This party's fingerprint of its own ciphertext's masks under `challenge` (to sign and
    /// publish: the others check the aggregate against the sum of all of them).
    pub fn mask_fingerprint(&self, challenge: &Challenge) -> Result<MaskFingerprint, CryptoError> {
        let contribution = self.contribution.as_ref().ok_or(CryptoError::OwnContributionMissing)?;
        Ok(challenge.fingerprint(&contribution.masks))
    }

    /// This party's decryption share of `aggregate`, made at most once: the key share is
    /// destroyed afterwards. `check` is the challenge and the sum of the contributors' signed
    /// fingerprints; masks that do not match it are refused ([`CryptoError::ForgedMasks`]).
    pub fn decryption_share(
        &mut self,
        aggregate: &AggregateMasks,
        check: &MaskCheck,
    ) -> Result<DecryptionShare, CryptoError> {
        if aggregate.params_id != self.params.id {
            return Err(CryptoError::WrongParams { expected: self.params.id, got: aggregate.params_id });
        }
        if aggregate.crs != self.crs {
            return Err(CryptoError::WrongCrs);
        }
        let n = self.params.n();
        if aggregate.masks.len() != self.params.bins(aggregate.len) * n {
            return Err(CryptoError::LengthMismatch {
                expected: self.params.bins(aggregate.len) * n,
                got: aggregate.masks.len(),
            });
        }
        let contributors = aggregate.contributors.len();
        if contributors < self.min_parties {
            return Err(CryptoError::TooFewContributors { contributors, min: self.min_parties });
        }
        let own = self.contribution.as_ref().ok_or(CryptoError::OwnContributionMissing)?;
        if !aggregate.contributors.iter().any(|(party, hash)| party == &self.id && hash == &own.hash) {
            return Err(CryptoError::OwnContributionMissing);
        }
        // Exactly the round's key holders (both lists are sorted): no omission, no stranger.
        if !aggregate.contributors.iter().map(|(party, _)| party).eq(own.key_holders.iter()) {
            return Err(CryptoError::ContributorsMismatch);
        }
        if aggregate.lifted_fingerprint(&check.challenge) != check.contributions {
            return Err(CryptoError::ForgedMasks);
        }
        let budget = self.params.noise_budget(contributors)?;
        // Taking the key out makes this the only share it ever makes; it is zeroized on drop.
        let secret = self.secret.take().ok_or(CryptoError::KeyShareSpent)?;

        let mut partial = smudging_noise(aggregate.len, n, budget.smudging.0, self.randomness.seed(Purpose::Smudging));
        add_mask_products(&mut partial, &aggregate.masks, secret.coefficients());
        drop(secret);
        self.decryption =
            Some(Decryption { aggregate_digest: aggregate.digest, contributors, partial: partial.clone() });
        Ok(DecryptionShare {
            params_id: self.params.id,
            crs: self.crs,
            party: self.id.clone(),
            aggregate_digest: aggregate.digest,
            partial,
        })
    }

    /// This party's fingerprint of its ciphertext's bodies minus its decryption share under
    /// `challenge` (to sign and publish: every party checks the decrypted sum against the sum of
    /// all of them, [`crate::check`]).
    pub fn output_fingerprint(&self, challenge: &Challenge) -> Result<MaskFingerprint, CryptoError> {
        let contribution = self.contribution.as_ref().ok_or(CryptoError::OwnContributionMissing)?;
        let decryption = self.decryption.as_ref().ok_or(CryptoError::OwnShareMissing)?;
        Ok(challenge.difference_fingerprint(&contribution.bodies, &decryption.partial))
    }

    /// The plaintext words of `sum`, once checked: it decrypts the aggregate this party made its
    /// share for, and its lift's fingerprint under `check`'s challenge equals the sum of the
    /// contributors' signed output fingerprints; anything else is refused
    /// ([`CryptoError::ForgedSum`]).
    pub fn check_sum(&self, sum: &DecryptedSum, check: &MaskCheck) -> Result<Vec<u64>, CryptoError> {
        let decryption = self.decryption.as_ref().ok_or(CryptoError::OwnShareMissing)?;
        if sum.params.id != self.params.id {
            return Err(CryptoError::WrongParams { expected: self.params.id, got: sum.params.id });
        }
        if sum.crs != self.crs {
            return Err(CryptoError::WrongCrs);
        }
        if sum.aggregate_digest != decryption.aggregate_digest || sum.contributors != decryption.contributors {
            return Err(CryptoError::ForeignAggregate(self.id.clone()));
        }
        if sum.len() != decryption.partial.len() {
            return Err(CryptoError::LengthMismatch { expected: decryption.partial.len(), got: sum.len() });
        }
        if sum.lifted_fingerprint(&check.challenge) != check.contributions {
            return Err(CryptoError::ForgedSum);
        }
        Ok(sum.words())
    }
}
