//! End-to-end tests of the threshold scheme, with access to crate internals where a test must
//! bypass a safety check to show what it protects (a missing share gives garbage).

use fedcare_core::{Codec, CodecConfig};
use rand::rngs::SysRng;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::wire::HEADER_LEN;
use super::*;

/// One round among `parties` parties: the sessions, the aggregate and every party's words.
struct Round {
    sessions: Vec<PartySession>,
    aggregate: Aggregate,
}

fn party(i: usize) -> PartyId {
    PartyId::new(format!("hospital-{i:02}")).unwrap()
}

/// `parties` fresh sessions, their public shares, and the collective key each summed itself.
fn key_generation(parties: usize, crs: Crs) -> (Vec<PartySession>, Vec<PublicKeyShare>, CollectivePublicKey) {
    let (mut sessions, shares): (Vec<_>, Vec<_>) =
        (0..parties).map(|i| PartySession::new(PARAMS_V2, party(i), crs, 2.min(parties), &mut SysRng).unwrap()).unzip();
    let keys: Vec<CollectivePublicKey> = sessions.iter_mut().map(|s| s.collective_key(&shares).unwrap()).collect();
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "every party sums the same key");
    let mut collector = KeyShareCollector::new(PARAMS_V2, crs);
    shares.iter().for_each(|share| collector.add(share.clone()).unwrap());
    assert_eq!(collector.collective_key().unwrap(), keys[0], "the aggregator sums the same key");
    (sessions, shares, keys[0].clone())
}

fn run_round(parties: usize, words: &[Vec<u64>]) -> Round {
    let (mut sessions, _, key) = key_generation(parties, Crs::random());
    let mut builder = AggregateBuilder::new(PARAMS_V2, &key, words[0].len());
    for (session, words) in sessions.iter_mut().zip(words) {
        let ciphertext = session.encrypt(&key, words).unwrap();
        builder.add(session.id().clone(), &ciphertext).unwrap();
    }
    Round { sessions, aggregate: builder.finish().unwrap() }
}

/// The honest mask check of a round: a challenge and the sum of every party's fingerprint.
fn honest_check(sessions: &[PartySession]) -> MaskCheck {
    let challenge = Challenge::new(*blake3::hash(b"test challenge").as_bytes());
    let contributions = sessions
        .iter()
        .map(|s| s.mask_fingerprint(&challenge).unwrap())
        .fold(MaskFingerprint::default(), MaskFingerprint::wrapping_add);
    MaskCheck { challenge, contributions }
}

fn shares_of(sessions: &mut [PartySession], masks: &AggregateMasks) -> Vec<DecryptionShare> {
    let check = honest_check(sessions);
    sessions.iter_mut().map(|s| s.decryption_share(masks, &check).unwrap()).collect()
}

fn decrypt(round: &mut Round) -> Vec<u64> {
    let masks = round.aggregate.masks().clone();
    let shares = shares_of(&mut round.sessions, &masks);
    round.aggregate.combine(&shares).unwrap()
}

/// Each party's random f32 vector (with extreme values mixed in), encoded by the codec.
fn encoded_updates(parties: usize, len: usize, seed: u64) -> (Codec, Vec<Vec<u64>>) {
    let codec = Codec::new(CodecConfig { max_parties: parties as u32, ..PARAMS_V2.codec_config() }).unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let limit = codec.max_value() as f32;
    let updates = (0..parties)
        .map(|_| {
            let values: Vec<f32> = (0..len)
                .map(|i| match i % 7 {
                    0 => limit,
                    1 => -limit,
                    _ => rng.random_range(-limit..limit),
                })
                .collect();
            codec.encode(&values, 1.0).unwrap().words
        })
        .collect();
    (codec, updates)
}

fn check_exact_sum(parties: usize, len: usize) {
    let (codec, updates) = encoded_updates(parties, len, parties as u64);
    let mut round = run_round(parties, &updates);
    let words = decrypt(&mut round);
    let mut expected = vec![0u64; len];
    for update in &updates {
        codec.add_assign(&mut expected, update).unwrap();
    }
    assert!(words == expected, "{parties} parties, {len} values: decrypted sum differs");
    let decoded = codec.decode_sum_integers(&words, parties as u32).unwrap();
    let mut integers = vec![0i64; len];
    for update in &updates {
        for (sum, v) in integers.iter_mut().zip(codec.decode_sum_integers(update, 1).unwrap()) {
            *sum += v;
        }
    }
    assert!(decoded == integers, "decoded integers differ");
}

#[test]
fn exact_sums_for_2_and_3_parties() {
    check_exact_sum(2, 8192 * 2 + 77);
    check_exact_sum(3, 1000);
}

#[test]
fn exact_sums_for_10_parties() {
    check_exact_sum(10, 8192 + 1);
}

#[test]
fn exact_sums_for_64_parties_at_the_extremes() {
    // Every party at the same extreme: the largest sums the plaintext space must hold.
    let codec = Codec::new(PARAMS_V2.codec_config()).unwrap();
    let limit = codec.max_value() as f32;
    let values: Vec<f32> = (0..300).map(|i| if i % 2 == 0 { limit } else { -limit }).collect();
    let update = codec.encode(&values, 1.0).unwrap().words;
    let updates = vec![update; 64];
    let mut round = run_round(64, &updates);
    let decoded = codec.decode_sum_integers(&decrypt(&mut round), 64).unwrap();
    let top = 64 * ((1i64 << 23) - 1);
    assert!(decoded.iter().enumerate().all(|(i, &v)| v == if i % 2 == 0 { top } else { -top }));
}

#[test]
fn combining_without_one_share_gives_garbage() {
    let parties = 3;
    let len = 4096;
    let updates = vec![vec![0u64; len]; parties];
    let mut round = run_round(parties, &updates);
    let masks = round.aggregate.masks().clone();
    let shares = shares_of(&mut round.sessions, &masks);
    // The API refuses an incomplete set ...
    assert_eq!(round.aggregate.combine(&shares[..2]), Err(CryptoError::MissingShare(party(2))));
    // ... and bypassing it shows why: without one share the words are uniformly random, not 0.
    let words = round.aggregate.decode_phases(shares[..2].iter());
    let zeros = words.iter().filter(|&&w| w == 0).count();
    assert!(zeros < 3, "{zeros} of {len} words decrypted to the true value");
    let top_bit_set = words.iter().filter(|&&w| w >> 29 == 1).count() as f64 / len as f64;
    assert!((top_bit_set - 0.5).abs() < 0.05, "top bit set in {top_bit_set} of the words");
}

#[test]
fn a_party_refuses_foreign_small_or_repeated_decryptions() {
    let parties = 3;
    let updates = vec![vec![5u64; 10]; parties];
    let mut round = run_round(parties, &updates);
    let masks = round.aggregate.masks().clone();
    let check = honest_check(&round.sessions);

    // An "aggregate" holding only another party's ciphertext.
    let single = AggregateMasks::new(
        masks.params_id,
        masks.crs,
        masks.len,
        masks.contributors[1..2].to_vec(),
        masks.masks.clone(),
        masks.carries.clone(),
    );
    assert_eq!(
        round.sessions[1].decryption_share(&single, &check),
        Err(CryptoError::TooFewContributors { contributors: 1, min: 2 })
    );
    // An aggregate that omits party 0's contribution.
    let without_me = AggregateMasks::new(
        masks.params_id,
        masks.crs,
        masks.len,
        masks.contributors[1..].to_vec(),
        masks.masks.clone(),
        masks.carries.clone(),
    );
    assert_eq!(round.sessions[0].decryption_share(&without_me, &check), Err(CryptoError::OwnContributionMissing));
    // An aggregate claiming party 0 contributed something else.
    let mut forged = masks.contributors.clone();
    forged[0].1 = ContributionHash([7; 32]);
    let forged =
        AggregateMasks::new(masks.params_id, masks.crs, masks.len, forged, masks.masks.clone(), masks.carries.clone());
    assert_eq!(round.sessions[0].decryption_share(&forged, &check), Err(CryptoError::OwnContributionMissing));
    // Another round's aggregate.
    // An aggregate that omits party 2 (who holds a key share).
    let partial = AggregateMasks::new(
        masks.params_id,
        masks.crs,
        masks.len,
        masks.contributors[..2].to_vec(),
        masks.masks.clone(),
        masks.carries.clone(),
    );
    assert_eq!(round.sessions[0].decryption_share(&partial, &check), Err(CryptoError::ContributorsMismatch));
    let other_round = AggregateMasks::new(
        masks.params_id,
        Crs(masks.crs.0 ^ 1),
        masks.len,
        masks.contributors.clone(),
        masks.masks.clone(),
        masks.carries.clone(),
    );
    assert_eq!(round.sessions[0].decryption_share(&other_round, &check), Err(CryptoError::WrongCrs));
    // Masks that are not the contributions' sum: one coefficient shifted by Δ·2^6 (the
    // key-recovery attack), or one party's own masks sent as "the aggregate".
    let with_masks = |m: Vec<u64>, carries: Vec<u8>| {
        AggregateMasks::new(masks.params_id, masks.crs, masks.len, masks.contributors.clone(), m, carries)
    };
    let mut shifted = masks.masks.clone();
    shifted[3] = shifted[3].wrapping_add(1 << 40);
    let shifted = with_masks(shifted, masks.carries.clone());
    assert_eq!(round.sessions[0].decryption_share(&shifted, &check), Err(CryptoError::ForgedMasks));
    let lone = round.sessions[1].contribution.as_ref().unwrap().masks.clone();
    let lone = with_masks(lone, vec![0; masks.carries.len()]);
    assert_eq!(round.sessions[0].decryption_share(&lone, &check), Err(CryptoError::ForgedMasks));

    // The real one works once, then the key share is spent.
    let share = round.sessions[0].decryption_share(&masks, &check).unwrap();
    assert_eq!(round.sessions[0].decryption_share(&masks, &check), Err(CryptoError::KeyShareSpent));

    // The aggregator refuses a share made for another aggregate, and duplicates.
    let mut foreign = share.clone();
    foreign.aggregate_digest = [0; 32];
    let rest: Vec<DecryptionShare> =
        round.sessions[1..].iter_mut().map(|s| s.decryption_share(&masks, &check).unwrap()).collect();
    let mut shares = rest.clone();
    shares.push(foreign);
    assert_eq!(round.aggregate.combine(&shares), Err(CryptoError::ForeignAggregate(party(0))));
    let mut shares = rest.clone();
    shares.push(share.clone());
    shares.push(share.clone());
    assert_eq!(round.aggregate.combine(&shares), Err(CryptoError::Duplicate(party(0))));
    let mut shares = rest;
    shares.push(share);
    assert_eq!(round.aggregate.combine(&shares).unwrap(), vec![15u64; 10]);
}

/// A source that repeats one byte (deterministic, for this test only), or fails.
struct ByteSource(Option<u8>);

impl rand_core::TryRng for ByteSource {
    type Error = std::io::Error;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        let byte = self.0.ok_or_else(|| std::io::Error::other("no randomness"))?;
        dst.fill(byte);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for ByteSource {}

/// A party's randomness is its caller's: the same source gives the same key share and the same
/// ciphertext, another source another, and a failing source is an error, never a default.
#[test]
fn a_party_draws_its_randomness_from_its_caller() {
    let crs = Crs(5);
    let start = |byte| PartySession::new(PARAMS_V2, party(0), crs, 2, &mut ByteSource(Some(byte))).unwrap();
    let ((mut first, share), (mut again, same)) = (start(1), start(1));
    assert_eq!(share, same);
    assert_ne!(start(2).1, share);
    let key = first.collective_key(core::slice::from_ref(&share)).unwrap();
    again.collective_key(core::slice::from_ref(&share)).unwrap();
    let words = [1, 2, 3];
    assert_eq!(
        first.encrypt(&key, &words).unwrap().encode().unwrap(),
        again.encrypt(&key, &words).unwrap().encode().unwrap()
    );
    let failed = PartySession::new(PARAMS_V2, party(0), crs, 2, &mut ByteSource(None)).unwrap_err();
    assert_eq!(failed, CryptoError::Random("no randomness".into()));
}

#[test]
fn messages_of_another_round_or_parameter_set_are_refused() {
    let crs = Crs::random();
    let (mut session, share) = PartySession::new(PARAMS_V2, party(0), crs, 2, &mut SysRng).unwrap();
    let mut other_round = KeyShareCollector::new(PARAMS_V2, Crs(crs.0 + 1));
    assert_eq!(other_round.add(share.clone()), Err(CryptoError::WrongCrs));

    let mut collector = KeyShareCollector::new(PARAMS_V2, crs);
    collector.add(share.clone()).unwrap();
    assert_eq!(collector.add(share.clone()), Err(CryptoError::Duplicate(party(0))));
    let (_, share_b) = PartySession::new(PARAMS_V2, party(1), crs, 2, &mut SysRng).unwrap();
    collector.add(share_b.clone()).unwrap();
    // The aggregator's key is not trusted: the party encrypts only under the key it summed.
    let key = collector.collective_key().unwrap();
    assert_eq!(session.encrypt(&key, &[1, 2, 3]).unwrap_err(), CryptoError::UnverifiedKey);
    assert_eq!(session.collective_key(core::slice::from_ref(&share_b)).unwrap_err(), CryptoError::OwnKeyShareMissing);
    assert_eq!(
        session.collective_key(&[share.clone(), share.clone(), share_b.clone()]).unwrap_err(),
        CryptoError::Duplicate(party(0))
    );
    assert_eq!(session.collective_key(&[share.clone(), share_b.clone()]).unwrap(), key);

    let ciphertext = session.encrypt(&key, &[1, 2, 3]).unwrap();
    assert_eq!(session.encrypt(&key, &[1, 2, 3]).unwrap_err(), CryptoError::AlreadyContributed);
    let other_key = CollectivePublicKey { crs: Crs(crs.0 + 1), ..key.clone() };
    let mut builder = AggregateBuilder::new(PARAMS_V2, &other_key, 3);
    assert_eq!(builder.add(party(0), &ciphertext), Err(CryptoError::WrongCrs));
    let mut builder = AggregateBuilder::new(PARAMS_V2, &key, 4);
    assert!(matches!(builder.add(party(0), &ciphertext), Err(CryptoError::LengthMismatch { .. })));
    let mut builder = AggregateBuilder::new(PARAMS_V2, &key, 3);
    assert_eq!(builder.add(party(7), &ciphertext), Err(CryptoError::UnknownParty(party(7))));
    builder.add(party(0), &ciphertext).unwrap();
    assert_eq!(builder.add(party(0), &ciphertext), Err(CryptoError::Duplicate(party(0))));
    // Party 1 holds a key share but has not contributed: the aggregate could never decrypt.
    assert_eq!(builder.finish().unwrap_err(), CryptoError::MissingContribution(party(1)));

    let (mut outsider, _) = PartySession::new(PARAMS_V2, party(9), crs, 2, &mut SysRng).unwrap();
    assert_eq!(outsider.encrypt(&key, &[1]).unwrap_err(), CryptoError::UnverifiedKey);
    let (mut fresh, fresh_share) = PartySession::new(PARAMS_V2, party(1), crs, 2, &mut SysRng).unwrap();
    let key = fresh.collective_key(&[share.clone(), fresh_share]).unwrap();
    assert!(matches!(fresh.encrypt(&key, &[1 << 30]), Err(CryptoError::WordOutOfRange { index: 0, .. })));
    assert_eq!(fresh.encrypt(&key, &[]).unwrap_err(), CryptoError::EmptyPlaintext);

    // Another parameter set on the wire.
    let other = ThresholdParams { id: 99, ..PARAMS_V2 };
    let bytes = share.encode().unwrap();
    assert_eq!(
        PublicKeyShare::decode(&bytes, &other, &WireLimits::default()),
        Err(CryptoError::WrongParams { expected: 99, got: PARAMS_V2.id })
    );
}

#[test]
fn every_message_round_trips_and_truncations_and_excess_are_refused() {
    let parties = 2;
    let updates = vec![vec![1u64; 9000]; parties];
    let (mut sessions, shares, key) = key_generation(parties, Crs::random());
    let mut builder = AggregateBuilder::new(PARAMS_V2, &key, 9000);
    let mut ciphertexts = Vec::new();
    for (s, u) in sessions.iter_mut().zip(&updates) {
        let c = s.encrypt(&key, u).unwrap();
        builder.add(s.id().clone(), &c).unwrap();
        ciphertexts.push(c);
    }
    let aggregate = builder.finish().unwrap();
    let masks = aggregate.masks().clone();
    let mask_check = honest_check(&sessions);
    let decryption = sessions[0].decryption_share(&masks, &mask_check).unwrap();
    let limits = WireLimits::default();

    fn check<M: WireMessage + PartialEq + core::fmt::Debug>(message: &M, limits: &WireLimits) {
        use fedcare_core::Error as EnvelopeError;
        let bytes = message.encode().unwrap();
        assert_eq!(&M::decode(&bytes, &PARAMS_V2, limits).unwrap(), message);
        for cut in [0, 3, HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + 17, bytes.len() / 2, bytes.len() - 1] {
            let err = M::decode(&bytes[..cut], &PARAMS_V2, limits).unwrap_err();
            assert!(
                matches!(err, CryptoError::Envelope(EnvelopeError::Truncated { .. })),
                "{} cut at {cut}: {err:?}",
                M::NAME
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        let err = M::decode(&long, &PARAMS_V2, limits).unwrap_err();
        assert_eq!(err, CryptoError::Envelope(EnvelopeError::TrailingBytes { count: 1 }));
        let mut version = bytes.clone();
        version[8] = 9;
        let err = M::decode(&version, &PARAMS_V2, limits).unwrap_err();
        assert!(matches!(err, CryptoError::Envelope(EnvelopeError::UnsupportedVersion { found: 9, .. })), "{err:?}");
        let mut magic = bytes.clone();
        magic[0] = b'X';
        let err = M::decode(&magic, &PARAMS_V2, limits).unwrap_err();
        assert_eq!(err, CryptoError::Envelope(EnvelopeError::BadMagic { format: "crypto message" }));
        let mut flipped = bytes.clone();
        flipped[HEADER_LEN + 1] ^= 4;
        let err = M::decode(&flipped, &PARAMS_V2, limits).unwrap_err();
        assert!(matches!(err, CryptoError::Envelope(EnvelopeError::ChecksumMismatch { .. })), "{err:?}");
        // Another kind behind a valid envelope.
        let mut payload = wire::FORMAT.open(&bytes, usize::MAX).unwrap().to_vec();
        payload[2] = if payload[2] == 5 { 1 } else { payload[2] + 1 };
        let other_kind = wire::FORMAT.seal(&payload).unwrap();
        assert!(matches!(M::decode(&other_kind, &PARAMS_V2, limits), Err(CryptoError::WrongKind { .. })));
        // Fields cut short behind a valid envelope.
        let short = wire::FORMAT.seal(&payload[..payload.len() - 1]).unwrap();
        let err = M::decode(&short, &PARAMS_V2, limits).unwrap_err();
        assert!(matches!(err, CryptoError::Truncated { .. } | CryptoError::WrongKind { .. }), "{err:?}");
    }
    check(&shares[0], &limits);
    check(&key, &limits);
    check(&ciphertexts[0], &limits);
    check(&masks, &limits);
    check(&decryption, &limits);

    // A ciphertext claiming more values than the limit is refused before any allocation.
    let small = WireLimits { max_values: 8999 };
    assert!(matches!(
        Ciphertext::decode(&ciphertexts[0].encode().unwrap(), &PARAMS_V2, &small),
        Err(CryptoError::TooLarge { .. })
    ));
    // A value count that lies, behind a valid envelope: refused by the limit, not allocated.
    let mut payload = wire::FORMAT.open(&ciphertexts[0].encode().unwrap(), usize::MAX).unwrap().to_vec();
    payload[19..27].copy_from_slice(&(u64::MAX).to_le_bytes());
    let lying = wire::FORMAT.seal(&payload).unwrap();
    assert!(matches!(Ciphertext::decode(&lying, &PARAMS_V2, &limits), Err(CryptoError::TooLarge { .. })));
    // Size on the wire: 56 bits per mask coefficient (two bins of 8192), 39 per body, a header.
    let size = ciphertexts[0].encode().unwrap().len();
    assert_eq!(size, HEADER_LEN + 16 + 8 + 2 * 8192 * 7 + (9000 * 39usize).div_ceil(8));
}

mod slot_mapping {
    use super::*;
    use tfhe::core_crypto::prelude::{
        ContiguousEntityContainer, LweCiphertextCount, LweCompactCiphertextList, LweDimension, LweSecretKey,
        decrypt_lwe_ciphertext,
    };

    /// The partial decryption's slot mapping (value j of a bin = coefficient n-1-j of the
    /// semi-reversed product) agrees exactly with tfhe's own expand-and-decrypt under the
    /// summed key: the raw phases are equal bit for bit.
    #[test]
    fn partial_decryption_agrees_with_tfhe_expand_and_decrypt() {
        let (mut sessions, _, key) = key_generation(3, Crs::random());
        let len = 8192 + 300;
        let words: Vec<u64> = (0..len as u64).map(|i| (i * 7919) % (1 << 30)).collect();
        let ciphertext = sessions[0].encrypt(&key, &words).unwrap();
        let n = PARAMS_V2.n();
        let (masks, bodies) = ciphertext.data.split_at(ciphertext.data.len() - len);

        // tfhe: expand the compact list, decrypt each LWE ciphertext under s = Σ s_i.
        let mut summed_key = vec![0u64; n];
        for session in &sessions {
            let secret = session.secret.as_ref().unwrap();
            summed_key.iter_mut().zip(secret.coefficients()).for_each(|(s, &k)| *s += k);
        }
        let summed_key = LweSecretKey::from_container(summed_key);
        let list = LweCompactCiphertextList::from_container(
            ciphertext.data.clone(),
            LweDimension(n).to_lwe_size(),
            LweCiphertextCount(len),
            super::super::keys::modulus(),
        );
        let tfhe_phases: Vec<u64> = list
            .expand_into_lwe_ciphertext_list()
            .iter()
            .map(|ct| decrypt_lwe_ciphertext(&summed_key, &ct).0)
            .collect();

        // Ours: each key holder's mask products, summed and subtracted from the bodies.
        let mut products = vec![0u64; len];
        for session in &sessions {
            super::super::party::add_mask_products(
                &mut products,
                masks,
                session.secret.as_ref().unwrap().coefficients(),
            );
        }
        let our_phases: Vec<u64> = bodies.iter().zip(&products).map(|(b, p)| b.wrapping_sub(*p)).collect();
        let mismatches = our_phases.iter().zip(&tfhe_phases).filter(|(a, b)| a != b).count();
        assert_eq!(mismatches, 0, "{mismatches} of {len} phases differ from tfhe's");

        let decoded: Vec<u64> = our_phases.iter().map(|&p| PARAMS_V2.delta.round(p)).collect();
        assert!(decoded == words, "phases do not decode to the plaintext");
    }
}

mod hostile_bytes {
    use super::*;
    use proptest::prelude::*;

    /// Every decoder's verdict on `bytes`: none may panic, and none may accept bytes that are
    /// not a well-formed message of its own kind.
    fn decode_all(bytes: &[u8]) -> [Result<(), CryptoError>; 5] {
        let limits = WireLimits { max_values: 1 << 16 };
        [
            PublicKeyShare::decode(bytes, &PARAMS_V2, &limits).map(drop),
            CollectivePublicKey::decode(bytes, &PARAMS_V2, &limits).map(drop),
            Ciphertext::decode(bytes, &PARAMS_V2, &limits).map(drop),
            AggregateMasks::decode(bytes, &PARAMS_V2, &limits).map(drop),
            DecryptionShare::decode(bytes, &PARAMS_V2, &limits).map(drop),
        ]
    }

    proptest! {
        /// Random fields behind a valid envelope of every kind never panic a decoder; a decoder
        /// of another kind refuses them by their kind, its own by their fields.
        #[test]
        fn random_bodies_never_panic(kind in 1u8..=5, body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut payload = PARAMS_V2.id.to_le_bytes().to_vec();
            payload.push(kind);
            payload.extend_from_slice(&body);
            let bytes = wire::FORMAT.seal(&payload).unwrap();
            for (index, verdict) in decode_all(&bytes).into_iter().enumerate() {
                if index + 1 != kind as usize {
                    prop_assert!(matches!(verdict, Err(CryptoError::WrongKind { .. })), "{verdict:?}");
                } else if let Err(error) = verdict {
                    prop_assert!(!matches!(error, CryptoError::Envelope(_) | CryptoError::WrongKind { .. }), "{error:?}");
                }
            }
        }

        /// Fully random bytes never panic either, and the envelope refuses them.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            for verdict in decode_all(&bytes) {
                prop_assert!(matches!(verdict, Err(CryptoError::Envelope(_))), "{verdict:?}");
            }
        }
    }
}

#[test]
fn every_party_checks_the_decrypted_sum_and_refuses_a_forged_one() {
    let (_, words) = encoded_updates(5, 20_000, 11);
    let mut round = run_round(5, &words);
    let masks = round.aggregate.masks().clone();
    let shares = shares_of(&mut round.sessions, &masks);
    let sum = round.aggregate.decrypted(&shares).unwrap();
    assert_eq!(sum.words(), round.aggregate.combine(&shares).unwrap());
    let bytes = sum.encode().unwrap();
    let sum = DecryptedSum::decode(&bytes, &PARAMS_V2, &WireLimits::default()).unwrap();

    let challenge = Challenge::new(*blake3::hash(b"output challenge").as_bytes());
    let contributions = round
        .sessions
        .iter()
        .map(|s| s.output_fingerprint(&challenge).unwrap())
        .fold(MaskFingerprint::default(), MaskFingerprint::wrapping_add);
    let check = MaskCheck { challenge, contributions };
    for session in &round.sessions {
        assert_eq!(session.check_sum(&sum, &check).unwrap(), sum.words());
    }
    // A changed result: one value moved by one unit of Δ (another model), its top bit flipped,
    // one party's share left out (its update in the clear is not what the others accept).
    let forge = |t: usize, delta: u64| {
        let mut phases = sum.phases.clone();
        phases[t] = phases[t].wrapping_add(delta);
        DecryptedSum::new(sum.params, sum.crs, sum.aggregate_digest, sum.contributors, phases, sum.lifts.clone())
    };
    for forged in [forge(0, 1 << 34), forge(19_999, 1 << 63), forge(7, 1)] {
        assert_eq!(round.sessions[2].check_sum(&forged, &check), Err(CryptoError::ForgedSum));
    }
    let mut other = sum.clone();
    other.aggregate_digest = [9; 32];
    assert_eq!(round.sessions[0].check_sum(&other, &check), Err(CryptoError::ForeignAggregate(party(0))));
    let short = &bytes[..bytes.len() - 1];
    assert!(DecryptedSum::decode(short, &PARAMS_V2, &WireLimits::default()).is_err());
}

/// Encryption (from fixed seeds), aggregation, decryption shares (fixed smudging seeds) and
/// combination give the same words, bit for bit, on 1 thread and on 4: every parallel pass is
/// exact or draws each bin's randomness from its own seed.
#[test]
fn every_pass_is_bit_identical_whatever_the_thread_count() {
    use core::num::NonZeroUsize;
    use tfhe::core_crypto::commons::math::random::Seed;

    let parties = 3;
    let (sessions, _, key) = key_generation(parties, Crs::random());
    let n = PARAMS_V2.n();
    let len = 2 * n + 123;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let words: Vec<Vec<u64>> =
        (0..parties).map(|_| (0..len).map(|_| rng.random_range(0..1u64 << 20)).collect()).collect();
    let expanded = key.expand(&PARAMS_V2);
    let run = |threads: usize| {
        let pool = threads::CryptoPool::new(NonZeroUsize::new(threads).unwrap()).unwrap();
        assert_eq!(pool.threads(), threads);
        pool.run(|| {
            let ciphertexts: Vec<Ciphertext> = words
                .iter()
                .enumerate()
                .map(|(i, w)| super::ciphertext::encrypt_seeded(&PARAMS_V2, key.crs, &expanded, w, Seed(i as u128 + 1)))
                .collect::<Result<_, _>>()
                .unwrap();
            let mut builder = AggregateBuilder::new(PARAMS_V2, &key, len);
            for (session, ciphertext) in sessions.iter().zip(&ciphertexts) {
                builder.add(session.id().clone(), ciphertext).unwrap();
            }
            let aggregate = builder.finish().unwrap();
            let masks = aggregate.masks();
            let shares: Vec<DecryptionShare> = sessions
                .iter()
                .enumerate()
                .map(|(i, session)| {
                    let mut partial = super::party::smudging_noise(len, n, 20, Seed(100 + i as u128));
                    super::party::add_mask_products(
                        &mut partial,
                        &masks.masks,
                        session.secret.as_ref().unwrap().coefficients(),
                    );
                    DecryptionShare {
                        params_id: PARAMS_V2.id,
                        crs: key.crs,
                        party: session.id().clone(),
                        aggregate_digest: masks.digest,
                        partial,
                    }
                })
                .collect();
            let decrypted = aggregate.decrypted(&shares).unwrap();
            let combined = aggregate.combine(&shares).unwrap();
            let data: Vec<Vec<u64>> = ciphertexts.iter().map(|c| c.data.clone()).collect();
            (
                data,
                masks.masks.clone(),
                shares.iter().map(|s| s.partial.clone()).collect::<Vec<_>>(),
                decrypted,
                combined,
            )
        })
    };
    let (one, four) = (run(1), run(4));
    assert!(one.0 == four.0, "ciphertexts differ between 1 and 4 threads");
    assert!(one.1 == four.1, "aggregate masks differ");
    assert!(one.2 == four.2, "decryption shares differ");
    assert!(one.3 == four.3, "decrypted sums differ");
    assert!(one.4 == four.4, "combined words differ");
    let expected: Vec<u64> = (0..len).map(|j| words.iter().map(|w| w[j]).sum::<u64>()).collect();
    assert!(one.4 == expected, "the combined words are the plaintexts' sum");
    // Another seed gives another ciphertext (the seed is used).
    let other = super::ciphertext::encrypt_seeded(&PARAMS_V2, key.crs, &expanded, &words[0], Seed(9)).unwrap();
    assert!(other.data != one.0[0]);
}

#[test]
fn key_shares_are_light_and_ciphertexts_are_rounded_to_their_wire_bits() {
    let (mut sessions, _, key) = key_generation(3, Crs::random());
    for session in &sessions {
        let weight: u64 = session.secret.as_ref().unwrap().coefficients().iter().sum();
        assert!(weight <= PARAMS_V2.n() as u64 / 2, "a key share of weight {weight}");
    }
    let len = 8192 + 5;
    let words: Vec<u64> = (0..len as u64).map(|i| (i * 104729) % (1 << 30)).collect();
    let ciphertext = sessions[0].encrypt(&key, &words).unwrap();
    let (masks, bodies) = ciphertext.data.split_at(ciphertext.data.len() - len);
    assert!(masks.iter().all(|&w| PARAMS_V2.mask_bits.holds(w)), "a mask coefficient with its low bits set");
    assert!(bodies.iter().all(|&w| PARAMS_V2.body_bits.holds(w)), "a body with its low bits set");
    // The rounding is real: the top bits vary (not all words were cleared).
    assert!(masks.iter().any(|&w| w != 0) && bodies.iter().any(|&w| w != 0));
}

/// Streams `bytes` into `builder` for `party` in pieces of `piece` bytes.
fn stream_in(
    builder: &mut AggregateBuilder,
    party: PartyId,
    bytes: &[u8],
    piece: usize,
) -> Result<ContributionHash, CryptoError> {
    let mut stream = builder.begin(party)?;
    for chunk in bytes.chunks(piece) {
        match stream.read(chunk) {
            Ok(()) => builder.add_run(&stream)?,
            Err(error) => {
                builder.abandon(stream.party(), &error.to_string());
                return Err(error);
            }
        }
    }
    builder.commit(stream)
}

#[test]
fn streamed_contributions_sum_exactly_as_whole_ones_in_pieces_of_any_size() {
    let (codec, updates) = encoded_updates(3, 8192 + 777, 11);
    let (mut sessions, _, key) = key_generation(3, Crs::random());
    let ciphertexts: Vec<Ciphertext> =
        sessions.iter_mut().zip(&updates).map(|(s, w)| s.encrypt(&key, w).unwrap()).collect();
    let mut whole = AggregateBuilder::new(PARAMS_V2, &key, updates[0].len());
    for (session, ciphertext) in sessions.iter().zip(&ciphertexts) {
        whole.add(session.id().clone(), ciphertext).unwrap();
    }
    let whole = whole.finish().unwrap();
    // Pieces that split the head, the masks' end and a word; and whole messages.
    for piece in [1 << 20, 4099, 45, 7] {
        let mut streamed = AggregateBuilder::new(PARAMS_V2, &key, updates[0].len());
        for (session, ciphertext) in sessions.iter().zip(&ciphertexts) {
            let hash = stream_in(&mut streamed, session.id().clone(), &ciphertext.encode().unwrap(), piece).unwrap();
            assert_eq!(hash, ciphertext.hash(), "the streamed hash is the ciphertext's");
        }
        let streamed = streamed.finish().unwrap();
        assert_eq!(streamed.masks(), whole.masks(), "pieces of {piece} bytes: other masks or carries");
    }
    let mut round = Round { sessions, aggregate: whole };
    let words = decrypt(&mut round);
    let mut expected = vec![0u64; updates[0].len()];
    updates.iter().for_each(|u| codec.add_assign(&mut expected, u).unwrap());
    assert!(words == expected);
}

#[test]
fn a_stream_refused_at_its_head_leaves_the_sum_and_one_broken_later_breaks_it() {
    let len = 300;
    let (mut sessions, _, key) = key_generation(2, Crs::random());
    let words: Vec<u64> = (0..len as u64).collect();
    let bytes = sessions[0].encrypt(&key, &words).unwrap().encode().unwrap();
    let mut builder = AggregateBuilder::new(PARAMS_V2, &key, len);
    let id = sessions[0].id().clone();

    // Another round's ciphertext, or one of another length: refused before any word; the same
    // party may then send its real one.
    let (mut other, _, other_key) = key_generation(2, Crs::random());
    let foreign = other[0].encrypt(&other_key, &words).unwrap().encode().unwrap();
    assert_eq!(stream_in(&mut builder, id.clone(), &foreign, 64).unwrap_err(), CryptoError::WrongCrs);
    let shorter = sessions[1].encrypt(&key, &words[..299]).unwrap().encode().unwrap();
    assert!(matches!(stream_in(&mut builder, id.clone(), &shorter, 64), Err(CryptoError::LengthMismatch { .. })));
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(
        matches!(stream_in(&mut builder, id.clone(), &trailing, 1 << 20), Err(CryptoError::TrailingBytes { count: 1 })),
        "a byte beyond the end"
    );
    assert!(builder.broken().is_none(), "a piece is refused whole: nothing of it went in");
    stream_in(&mut builder, id.clone(), &bytes, 1 << 20).unwrap();

    // A stream that stops midway, once words went in: the sum is broken for everyone after.
    let mut builder = AggregateBuilder::new(PARAMS_V2, &key, len);
    let mut stream = builder.begin(id.clone()).unwrap();
    stream.read(&bytes[..bytes.len() / 2]).unwrap();
    builder.add_run(&stream).unwrap();
    assert!(builder.commit(stream).is_err(), "a stream that ended early");
    assert!(matches!(builder.begin(sessions[1].id().clone()), Err(CryptoError::BrokenAggregate(_))));
    assert!(matches!(builder.finish(), Err(CryptoError::BrokenAggregate(_))));

    // A byte changed in transit: the checksum catches it at the end, and the sum is broken.
    let mut builder = AggregateBuilder::new(PARAMS_V2, &key, len);
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 1;
    assert!(matches!(stream_in(&mut builder, id.clone(), &flipped, 1000), Err(CryptoError::Envelope(_))));
    assert!(builder.broken().is_some());

    // A stream abandoned before any word (its connection went at once): nothing lost.
    let mut builder = AggregateBuilder::new(PARAMS_V2, &key, len);
    let mut stream = builder.begin(id.clone()).unwrap();
    stream.read(&bytes[..20]).unwrap();
    assert!(stream.run().is_empty());
    assert!(matches!(builder.begin(id.clone()), Err(CryptoError::Duplicate(_))), "one stream per party");
    builder.abandon(&id, "the connection closed");
    assert!(builder.broken().is_none());
    stream_in(&mut builder, id, &bytes, 333).unwrap();
}

#[test]
fn shares_subtracted_as_they_arrive_give_the_same_sum_in_any_order() {
    let (_, updates) = encoded_updates(3, 500, 5);
    let mut round = run_round(3, &updates);
    let masks = round.aggregate.masks().clone();
    let shares = shares_of(&mut round.sessions, &masks);
    let all_at_once = round.aggregate.decrypted(&shares).unwrap();
    let mut decryption = round.aggregate.start_decryption();
    for share in shares.iter().rev() {
        decryption.subtract(&round.aggregate, share).unwrap();
    }
    assert!(matches!(decryption.subtract(&round.aggregate, &shares[0]), Err(CryptoError::Duplicate(_))));
    assert_eq!(decryption.finish(&round.aggregate).unwrap(), all_at_once);

    let mut partial = round.aggregate.start_decryption();
    partial.subtract(&round.aggregate, &shares[1]).unwrap();
    assert!(matches!(partial.finish(&round.aggregate), Err(CryptoError::MissingShare(_))));
    let other = run_round(3, &updates);
    let mut foreign = other.aggregate.start_decryption();
    assert!(matches!(foreign.subtract(&round.aggregate, &shares[0]), Err(CryptoError::ForeignAggregate(_))));
}
