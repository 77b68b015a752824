//! `fedcare bench-crypto`: runs the whole threshold protocol once on this machine, checks that
//! the decrypted sum is exact, and reports the time of every phase and the bytes on the wire.
//!
//! All parties run here, one after the other; per-party figures are medians over the parties.

use core::time::Duration;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use fedcare_core::Codec;
use fedcare_crypto::{
    AggregateBuilder, Challenge, Crs, DecryptedSum, DecryptionShare, MaskCheck, MaskFingerprint, PARAMS_V2, PartyId,
    PartySession, WireLimits, WireMessage,
};
use rand::rngs::SysRng;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// `fedcare bench-crypto`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Values per party (model parameters).
    #[arg(long, default_value_t = 1_000_000)]
    values: usize,
    /// Parties (hospitals), 1 to 64.
    #[arg(long, default_value_t = 10)]
    parties: usize,
    /// Seed of the random plaintexts (keys and noise always come from the OS).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads of the encrypted path (default: one per core).
    #[arg(long)]
    threads: Option<core::num::NonZeroUsize>,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let pool = fedcare_crypto::threads::CryptoPool::new(
        args.threads.unwrap_or_else(fedcare_crypto::threads::default_threads),
    )?;
    let report = pool.run(|| measure(args.values, args.parties, args.seed))?;
    print!("{}", report.table(pool.threads()));
    Ok(())
}

/// Timings and sizes of one run of the protocol.
#[derive(Debug, Clone)]
struct CryptoBenchReport {
    /// Values per party.
    values: usize,
    /// Parties.
    parties: usize,
    /// Key share generation, median per party.
    keygen: Duration,
    /// Collective key from the relayed shares, median per party.
    collective_key: Duration,
    /// Median time of one party's fingerprint of its own masks.
    fingerprint: Duration,
    /// Encryption, median per party.
    encrypt: Duration,
    /// Adding all ciphertexts (aggregator).
    aggregate: Duration,
    /// Decryption share, median per party.
    decryption_share: Duration,
    /// Combining the shares into the unrounded sum and decoding it (aggregator).
    combine_decode: Duration,
    /// One party's fingerprint of its bodies minus its share, median.
    output_fingerprint: Duration,
    /// One party's check of the decrypted sum (and rounding it), median.
    sum_check: Duration,
    /// Bytes of the decrypted sum sent to each party.
    sum_bytes: usize,
    /// Bytes of one party's ciphertext on the wire.
    ciphertext_bytes: usize,
    /// Bytes of one decryption share on the wire.
    share_bytes: usize,
    /// Bytes of the aggregate masks sent to each party.
    masks_bytes: usize,
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// Runs the protocol for `parties` parties with `values` random values each and checks exactness.
fn measure(values: usize, parties: usize, seed: u64) -> Result<CryptoBenchReport> {
    ensure!(values > 0, "--values must be at least 1");
    let params = PARAMS_V2;
    params.noise_budget(parties).context("this party count is not supported")?;
    let codec = Codec::new(fedcare_core::CodecConfig { max_parties: parties as u32, ..params.codec_config() })?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let limit = codec.max_value() as f32;
    let updates: Vec<Vec<u64>> = (0..parties)
        .map(|_| {
            let update: Vec<f32> = (0..values).map(|_| rng.random_range(-limit..limit)).collect();
            codec.encode(&update, 1.0).map(|e| e.words)
        })
        .collect::<Result<_, _>>()?;

    let crs = Crs::random();
    let mut shares = Vec::with_capacity(parties);
    let mut sessions = Vec::with_capacity(parties);
    let mut keygen = Vec::with_capacity(parties);
    for i in 0..parties {
        let id = PartyId::new(format!("party-{i}"))?;
        let (result, time) = timed(|| PartySession::new(params, id, crs, 2.min(parties), &mut SysRng));
        let (session, share) = result?;
        keygen.push(time);
        shares.push(share);
        sessions.push(session);
    }
    // Every party sums the relayed shares itself (it does not trust the aggregator's key).
    let mut collective = Vec::with_capacity(parties);
    let mut key = None;
    for session in &mut sessions {
        let (result, time) = timed(|| session.collective_key(&shares));
        collective.push(time);
        key = Some(result?);
    }
    let key = key.context("no party")?;

    let mut encrypt = Vec::with_capacity(parties);
    let mut ciphertexts = Vec::with_capacity(parties);
    for (session, words) in sessions.iter_mut().zip(&updates) {
        let (ciphertext, time) = timed(|| session.encrypt(&key, words));
        encrypt.push(time);
        ciphertexts.push(ciphertext?);
    }
    let ciphertext_bytes = ciphertexts[0].encode()?.len();

    let (aggregate, aggregate_time) = timed(|| -> Result<_> {
        let mut builder = AggregateBuilder::new(params, &key, values);
        for (session, ciphertext) in sessions.iter().zip(&ciphertexts) {
            builder.add(session.id().clone(), ciphertext)?;
        }
        Ok(builder.finish()?)
    });
    let aggregate = aggregate?;
    let masks = aggregate.masks();
    let masks_bytes = masks.encode()?.len();

    // The mask check: each party's fingerprint of its own masks, then each party's check of the
    // aggregate against their sum (inside its decryption share).
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(&crs.0.to_le_bytes());
    let challenge = Challenge::new(seed);
    let mut fingerprint = Vec::with_capacity(parties);
    let mut contributions = MaskFingerprint::default();
    for session in &sessions {
        let (result, time) = timed(|| session.mask_fingerprint(&challenge));
        fingerprint.push(time);
        contributions = contributions.wrapping_add(result?);
    }
    let check = MaskCheck { challenge, contributions };
    let mut decryption = Vec::with_capacity(parties);
    let mut shares = Vec::with_capacity(parties);
    for session in &mut sessions {
        let (share, time) = timed(|| session.decryption_share(masks, &check));
        decryption.push(time);
        shares.push(share?);
    }
    let share_bytes = shares[0].encode()?.len();
    // The decoders must accept what was just encoded (the bench also checks the wire path).
    DecryptionShare::decode(&shares[0].encode()?, &params, &WireLimits::default())?;

    let (decrypted, combine_decode) = timed(|| -> Result<_> {
        let sum = aggregate.decrypted(&shares)?;
        let integers = codec.decode_sum_integers(&sum.words(), parties as u32)?;
        Ok((sum, integers))
    });
    let (sum, decoded) = decrypted?;
    let sum_bytes = sum.encode()?.len();
    let sum = DecryptedSum::decode(&sum.encode()?, &params, &WireLimits::default())?;

    // The output check: each party's fingerprint of its bodies minus its share under a second
    // challenge, then each party's check of the sum against their total.
    let mut output_seed = seed;
    output_seed[31] ^= 1;
    let output_challenge = Challenge::new(output_seed);
    let mut output_fingerprint = Vec::with_capacity(parties);
    let mut outputs = MaskFingerprint::default();
    for session in &sessions {
        let (result, time) = timed(|| session.output_fingerprint(&output_challenge));
        output_fingerprint.push(time);
        outputs = outputs.wrapping_add(result?);
    }
    let output_check = MaskCheck { challenge: output_challenge, contributions: outputs };
    let mut sum_check = Vec::with_capacity(parties);
    for session in &sessions {
        let (words, time) = timed(|| session.check_sum(&sum, &output_check));
        sum_check.push(time);
        ensure!(words? == sum.words(), "a party's checked sum differs from the aggregator's");
    }
    let mut expected = vec![0i64; values];
    for update in &updates {
        for (sum, v) in expected.iter_mut().zip(codec.decode_sum_integers(update, 1)?) {
            *sum += v;
        }
    }
    ensure!(decoded == expected, "the decrypted sum differs from the plaintext sum");

    Ok(CryptoBenchReport {
        values,
        parties,
        keygen: median(keygen),
        collective_key: median(collective),
        fingerprint: median(fingerprint),
        encrypt: median(encrypt),
        aggregate: aggregate_time,
        decryption_share: median(decryption),
        combine_decode,
        output_fingerprint: median(output_fingerprint),
        sum_check: median(sum_check),
        sum_bytes,
        ciphertext_bytes,
        share_bytes,
        masks_bytes,
    })
}

impl CryptoBenchReport {
    /// The report as a table.
    fn table(&self, threads: usize) -> String {
        let ms = |d: Duration| format!("{:>10.2} ms", d.as_secs_f64() * 1e3);
        let per_value = |bytes: usize| format!("{:>10.2} B/value", bytes as f64 / self.values as f64);
        let mut out = format!(
            "threshold encryption ({}), {} values, {} parties, {threads} crypto threads: the decrypted sum is exact\n\n",
            PARAMS_V2.name, self.values, self.parties
        );
        let rows = [
            ("key share generation (per party)", ms(self.keygen)),
            ("collective key from the shares (per party)", ms(self.collective_key)),
            ("encrypt (per party)", ms(self.encrypt)),
            ("aggregate all ciphertexts (aggregator)", ms(self.aggregate)),
            ("fingerprint of own masks (per party)", ms(self.fingerprint)),
            ("mask check + decryption share (per party)", ms(self.decryption_share)),
            ("combine + decode (aggregator)", ms(self.combine_decode)),
            ("fingerprint of bodies − share (per party)", ms(self.output_fingerprint)),
            ("check of the decrypted sum (per party)", ms(self.sum_check)),
            ("ciphertext on the wire (per party)", per_value(self.ciphertext_bytes)),
            ("aggregate masks on the wire (to each party)", per_value(self.masks_bytes)),
            ("decryption share on the wire (per party)", per_value(self.share_bytes)),
            ("decrypted sum on the wire (to each party)", per_value(self.sum_bytes)),
        ];
        for (name, value) in rows {
            out.push_str(&format!("{name:<44}{value}\n"));
        }
        out
    }
}
