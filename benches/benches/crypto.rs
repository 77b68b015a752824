//! Threshold encryption for 100k and 1M values with 10 parties: key-share generation, the
//! collective key a party sums from the shares, encrypt (per party), aggregate (all
//! ciphertexts), a party's fingerprint of its own masks, the mask check with the decryption
//! share (per party), combine + decode, and the bytes per value on the wire (printed once per
//! size). The parallel phases (encrypt, aggregate, decryption share, combine) run on 1 crypto
//! thread and on one per core (`…/t1`, `…/tN`).
//!
//! Targets on the 2-core development machine (docs/design.md §10): encrypt 1M ≤ 100 ms, decryption share
//! 1M ≤ 60 ms, ≤ 16.5 B/value.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fedcare_core::Codec;
use fedcare_crypto::threads::CryptoPool;
use fedcare_crypto::{
    AggregateBuilder, Challenge, Ciphertext, CollectivePublicKey, Crs, DecryptionShare, MaskCheck, MaskFingerprint,
    PARAMS_V2, PartyId, PartySession, PublicKeyShare, WireMessage,
};
use rand::rngs::SysRng;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const PARTIES: usize = 10;

struct Fixture {
    crs: Crs,
    key: CollectivePublicKey,
    shares: Vec<PublicKeyShare>,
    words: Vec<Vec<u64>>,
    ciphertexts: Vec<Ciphertext>,
    /// The parties that made `ciphertexts` (each can still make its one decryption share).
    sessions: Vec<PartySession>,
    codec: Codec,
}

fn id(i: usize) -> PartyId {
    PartyId::new(format!("hospital-{i}")).unwrap()
}

fn fixture(values: usize) -> Fixture {
    let codec = Codec::new(PARAMS_V2.codec_config()).unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(values as u64);
    let words: Vec<Vec<u64>> = (0..PARTIES)
        .map(|_| {
            let update: Vec<f32> = (0..values).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            codec.encode(&update, 0.1).unwrap().words
        })
        .collect();
    let crs = Crs::random();
    let (mut sessions, shares): (Vec<_>, Vec<_>) =
        (0..PARTIES).map(|i| PartySession::new(PARAMS_V2, id(i), crs, 2, &mut SysRng).unwrap()).unzip();
    let keys: Vec<CollectivePublicKey> = sessions.iter_mut().map(|s| s.collective_key(&shares).unwrap()).collect();
    let key = keys[0].clone();
    let ciphertexts = sessions.iter_mut().zip(&words).map(|(s, w)| s.encrypt(&key, w).unwrap()).collect();
    Fixture { crs, key, shares, words, ciphertexts, sessions, codec }
}

/// A fresh party 0 that has summed its collective key (with its new share in place of the
/// fixture's), and that key.
fn fresh_party(f: &Fixture) -> (PartySession, CollectivePublicKey) {
    let (mut session, share) = PartySession::new(PARAMS_V2, id(0), f.crs, 2, &mut SysRng).unwrap();
    let mut shares = f.shares.clone();
    shares[0] = share;
    let key = session.collective_key(&shares).unwrap();
    (session, key)
}

fn challenge() -> Challenge {
    Challenge::new([7; 32])
}

/// The honest mask check of `sessions`' contributions.
fn mask_check<'a>(sessions: impl IntoIterator<Item = &'a PartySession>) -> MaskCheck {
    let contributions = sessions
        .into_iter()
        .map(|s| s.mask_fingerprint(&challenge()).unwrap())
        .fold(MaskFingerprint::default(), MaskFingerprint::wrapping_add);
    MaskCheck { challenge: challenge(), contributions }
}

fn aggregate(f: &Fixture, ciphertexts: &[Ciphertext]) -> fedcare_crypto::Aggregate {
    let mut builder = AggregateBuilder::new(PARAMS_V2, &f.key, ciphertexts[0].len());
    for (i, c) in ciphertexts.iter().enumerate() {
        builder.add(id(i), c).unwrap();
    }
    builder.finish().unwrap()
}

fn crypto(c: &mut Criterion) {
    let mut group = c.benchmark_group("crypto");
    group.sample_size(10);
    // One crypto thread, and one per core (a second pool only where there is more than one core).
    let cores = fedcare_crypto::threads::default_threads();
    let counts = if cores.get() > 1 { vec![core::num::NonZeroUsize::MIN, cores] } else { vec![cores] };
    let pools: Vec<CryptoPool> = counts.into_iter().map(|t| CryptoPool::new(t).unwrap()).collect();
    for values in [100_000usize, 1_000_000] {
        let mut f = fixture(values);
        let wire = f.ciphertexts[0].encode().unwrap().len();
        println!("crypto/{values}: ciphertext on the wire {wire} bytes = {:.3} B/value", wire as f64 / values as f64);
        group.throughput(Throughput::Elements(values as u64));

        group.bench_function(BenchmarkId::new("keygen", values), |b| {
            b.iter(|| PartySession::new(PARAMS_V2, id(0), f.crs, 2, &mut SysRng).unwrap());
        });
        group.bench_function(BenchmarkId::new("collective_key-10", values), |b| {
            b.iter_batched(
                || PartySession::new(PARAMS_V2, id(0), f.crs, 2, &mut SysRng).unwrap(),
                |(mut session, share)| {
                    let mut shares = f.shares.clone();
                    shares[0] = share;
                    session.collective_key(&shares).unwrap()
                },
                BatchSize::PerIteration,
            );
        });
        for pool in &pools {
            let threads = pool.threads();
            group.bench_function(BenchmarkId::new(format!("encrypt/t{threads}"), values), |b| {
                b.iter_batched(
                    || fresh_party(&f),
                    |(mut session, key)| pool.run(|| session.encrypt(&key, &f.words[0]).unwrap()),
                    BatchSize::PerIteration,
                );
            });
            group.bench_function(BenchmarkId::new(format!("aggregate-10/t{threads}"), values), |b| {
                b.iter(|| pool.run(|| aggregate(&f, &f.ciphertexts)));
            });
        }
        group.bench_function(BenchmarkId::new("mask_fingerprint", values), |b| {
            b.iter(|| f.sessions[0].mask_fingerprint(&challenge()).unwrap());
        });
        for pool in &pools {
            let threads = pool.threads();
            group.bench_function(BenchmarkId::new(format!("mask_check+decryption_share/t{threads}"), values), |b| {
                b.iter_batched(
                    || {
                        let (mut session, key) = fresh_party(&f);
                        let mut ciphertexts = f.ciphertexts.clone();
                        ciphertexts[0] = session.encrypt(&key, &f.words[0]).unwrap();
                        let check = mask_check(core::iter::once(&session).chain(&f.sessions[1..]));
                        // The aggregator's own key holders list: the same names as the fresh key.
                        let mut builder = AggregateBuilder::new(PARAMS_V2, &key, values);
                        for (i, c) in ciphertexts.iter().enumerate() {
                            builder.add(id(i), c).unwrap();
                        }
                        (session, builder.finish().unwrap(), check)
                    },
                    |(mut session, aggregate, check)| {
                        pool.run(|| session.decryption_share(aggregate.masks(), &check).unwrap())
                    },
                    BatchSize::PerIteration,
                );
            });
        }

        // Shares of the fixture's round for combine + decode.
        let round = aggregate(&f, &f.ciphertexts);
        let check = mask_check(&f.sessions);
        let shares: Vec<DecryptionShare> =
            f.sessions.iter_mut().map(|s| s.decryption_share(round.masks(), &check).unwrap()).collect();
        for pool in &pools {
            let threads = pool.threads();
            group.bench_function(BenchmarkId::new(format!("combine_decode/t{threads}"), values), |b| {
                b.iter(|| pool.run(|| f.codec.decode_sum(&round.combine(&shares).unwrap(), PARTIES as u32).unwrap()));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, crypto);
criterion_main!(benches);
