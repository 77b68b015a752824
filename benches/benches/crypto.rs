//! Threshold encryption for 100k and 1M values with 10 parties: key-share generation, encrypt
//! (per party), aggregate (all ciphertexts), decryption share (per party), combine + decode,
//! and the bytes per value on the wire (printed once per size).
//!
//! Targets on the 2-core development machine (DESIGN §7): encrypt 1M ≤ 100 ms, decryption share
//! 1M ≤ 60 ms, ≤ 16.5 B/value.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fedcare_core::Codec;
use fedcare_crypto::{
    AggregateBuilder, Ciphertext, CollectivePublicKey, Crs, DecryptionShare, KeyShareCollector, PARAMS_V1, PartyId,
    PartySession, WireMessage,
};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const PARTIES: usize = 10;

struct Fixture {
    crs: Crs,
    key: CollectivePublicKey,
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
    let codec = Codec::new(PARAMS_V1.codec_config()).unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(values as u64);
    let words: Vec<Vec<u64>> = (0..PARTIES)
        .map(|_| {
            let update: Vec<f32> = (0..values).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            codec.encode(&update, 0.1).unwrap().words
        })
        .collect();
    let crs = Crs::random();
    let mut collector = KeyShareCollector::new(PARAMS_V1, crs);
    let mut sessions = Vec::new();
    for i in 0..PARTIES {
        let (session, share) = PartySession::new(PARAMS_V1, id(i), crs, 2).unwrap();
        collector.add(share).unwrap();
        sessions.push(session);
    }
    let key = collector.collective_key().unwrap();
    let ciphertexts = sessions.iter_mut().zip(&words).map(|(s, w)| s.encrypt(&key, w).unwrap()).collect();
    Fixture { crs, key, words, ciphertexts, sessions, codec }
}

fn aggregate(f: &Fixture, ciphertexts: &[Ciphertext]) -> fedcare_crypto::Aggregate {
    let mut builder = AggregateBuilder::new(PARAMS_V1, &f.key, ciphertexts[0].len());
    for (i, c) in ciphertexts.iter().enumerate() {
        builder.add(id(i), c).unwrap();
    }
    builder.finish().unwrap()
}

fn crypto(c: &mut Criterion) {
    let mut group = c.benchmark_group("crypto");
    group.sample_size(10);
    for values in [100_000usize, 1_000_000] {
        let mut f = fixture(values);
        let wire = f.ciphertexts[0].encode().unwrap().len();
        println!("crypto/{values}: ciphertext on the wire {wire} bytes = {:.3} B/value", wire as f64 / values as f64);
        group.throughput(Throughput::Elements(values as u64));

        group.bench_function(BenchmarkId::new("keygen", values), |b| {
            b.iter(|| PartySession::new(PARAMS_V1, id(0), f.crs, 2).unwrap());
        });
        group.bench_function(BenchmarkId::new("encrypt", values), |b| {
            b.iter_batched(
                || PartySession::new(PARAMS_V1, id(0), f.crs, 2).unwrap().0,
                |mut session| session.encrypt(&f.key, &f.words[0]).unwrap(),
                BatchSize::PerIteration,
            );
        });
        group.bench_function(BenchmarkId::new("aggregate-10", values), |b| {
            b.iter(|| aggregate(&f, &f.ciphertexts));
        });
        group.bench_function(BenchmarkId::new("decryption_share", values), |b| {
            b.iter_batched(
                || {
                    let (mut session, _) = PartySession::new(PARAMS_V1, id(0), f.crs, 2).unwrap();
                    let mut ciphertexts = f.ciphertexts.clone();
                    ciphertexts[0] = session.encrypt(&f.key, &f.words[0]).unwrap();
                    (session, aggregate(&f, &ciphertexts))
                },
                |(mut session, aggregate)| session.decryption_share(aggregate.masks()).unwrap(),
                BatchSize::PerIteration,
            );
        });

        // Shares of the fixture's round for combine + decode.
        let round = aggregate(&f, &f.ciphertexts);
        let shares: Vec<DecryptionShare> =
            f.sessions.iter_mut().map(|s| s.decryption_share(round.masks()).unwrap()).collect();
        group.bench_function(BenchmarkId::new("combine_decode", values), |b| {
            b.iter(|| f.codec.decode_sum(&round.combine(&shares).unwrap(), PARTIES as u32).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, crypto);
criterion_main!(benches);
