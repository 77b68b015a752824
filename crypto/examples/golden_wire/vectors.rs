//! The golden vectors of `fedcare-crypto`'s wire messages, the same bytes on every run. Shared by
//! the generator (`crypto/examples/golden_wire/main.rs`) and the test that checks them
//! (`crypto/tests/golden_wire.rs`); `crypto/tests/golden/README.md` lists the files.
//!
//! Real keys, encryptions and decryption shares draw from the operating system's random source,
//! so the messages a party makes cannot be fixed. The party-made messages here (public key
//! share, ciphertext, decryption share) are laid out by hand instead, field by field from the
//! table in `crypto/src/wire.rs`, with words from a fixed-seed SplitMix64 in place of key and
//! ciphertext words (the wire format cannot tell them apart: any words are valid), and decoded
//! by the library. The aggregator's messages (collective key, aggregate masks, decrypted sum)
//! are then the library's own, made from those with no randomness at all: two parties'
//! key shares summed, their ciphertexts aggregated, their decryption shares subtracted.

use fedcare_crypto::wire::WireMessage;
use fedcare_crypto::{
    AggregateBuilder, AggregateMasks, Challenge, Ciphertext, CollectivePublicKey, Crs, DecryptedSum, DecryptionShare,
    KeyShareCollector, MaskFingerprint, PARAMS_V2, PartyId, PublicKeyShare, WireLimits,
};

/// The round's CRS in every message.
pub(crate) const CRS: Crs = Crs(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
/// Values per ciphertext (one bin of masks; 3 bodies of 39 bits end in 3 padding bits).
pub(crate) const VALUES: usize = 3;
/// The two parties; the committed party-made messages are the first one's.
pub(crate) const PARTIES: [&str; 2] = ["hospital-a", "hospital-b"];
/// The seed of the mask-check challenge of `mask_fingerprint.bin`.
pub(crate) const CHALLENGE_SEED: [u8; 32] = [7; 32];

/// The wire version these vectors are written in (`wire::WIRE_VERSION` when they were made).
const WIRE_VERSION: u16 = 4;
/// Bits on the wire of a mask coefficient and of a body (`PARAMS_V2.mask_bits`, `.body_bits`).
const MASK_BITS: u32 = 56;
const BODY_BITS: u32 = 39;

/// SplitMix64: the fixed words standing in for key and ciphertext words.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A message's payload, written field by field.
struct Payload(Vec<u8>);

impl Payload {
    /// The parameter set id and the kind.
    fn new(kind: u8) -> Self {
        let mut bytes = PARAMS_V2.id.to_le_bytes().to_vec();
        bytes.push(kind);
        Self(bytes)
    }
    fn crs(mut self) -> Self {
        self.0.extend_from_slice(&CRS.0.to_le_bytes());
        self
    }
    fn party(mut self, name: &str) -> Self {
        self.0.push(u8::try_from(name.len()).expect("a short party id"));
        self.0.extend_from_slice(name.as_bytes());
        self
    }
    fn u64(mut self, value: u64) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }
    fn bytes(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn words(mut self, words: &[u64]) -> Self {
        words.iter().for_each(|w| self.0.extend_from_slice(&w.to_le_bytes()));
        self
    }
    /// `values` (each below `2^bits`) back to back, lowest bit first, zero-padded to a byte.
    fn packed(mut self, values: &[u64], bits: u32) -> Self {
        let (mut acc, mut held) = (0u128, 0u32);
        for &value in values {
            assert!(value >> bits == 0, "a value wider than {bits} bits");
            acc |= u128::from(value) << held;
            held += bits;
            while held >= 8 {
                self.0.push(acc as u8);
                acc >>= 8;
                held -= 8;
            }
        }
        if held > 0 {
            self.0.push(acc as u8);
        }
        self
    }
    /// The envelope: magic, version, payload length, CRC-32 of the payload, payload.
    fn seal(self) -> Vec<u8> {
        let mut bytes = b"FEDCWIRE".to_vec();
        bytes.extend_from_slice(&WIRE_VERSION.to_le_bytes());
        bytes.extend_from_slice(&u32::try_from(self.0.len()).expect("a small message").to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&self.0).to_le_bytes());
        bytes.extend_from_slice(&self.0);
        bytes
    }
}

fn decode<M: WireMessage>(bytes: &[u8]) -> M {
    M::decode(bytes, &PARAMS_V2, &WireLimits::default())
        .unwrap_or_else(|error| panic!("a hand-made {} does not decode: {error}", M::NAME))
}

/// One party's hand-made messages and the words in them.
pub(crate) struct PartyMessages {
    /// Its public key share (kind 1).
    pub(crate) key_share: Vec<u8>,
    /// Its ciphertext (kind 3).
    pub(crate) ciphertext: Vec<u8>,
    /// The ciphertext's mask coefficients, as the library holds them (shifted into place).
    pub(crate) masks: Vec<u64>,
}

/// Party `index`'s public key share and ciphertext, from words seeded by its index.
fn party_messages(index: usize) -> PartyMessages {
    let mut words = SplitMix(0x6665_6463_6172_6500 + index as u64);
    let n = PARAMS_V2.n();
    let body: Vec<u64> = (0..n).map(|_| words.next()).collect();
    let key_share = Payload::new(1).crs().party(PARTIES[index]).words(&body).seal();
    let masks: Vec<u64> = (0..n).map(|_| words.next() >> (64 - MASK_BITS)).collect();
    let bodies: Vec<u64> = (0..VALUES).map(|_| words.next() >> (64 - BODY_BITS)).collect();
    let ciphertext =
        Payload::new(3).crs().u64(VALUES as u64).packed(&masks, MASK_BITS).packed(&bodies, BODY_BITS).seal();
    let masks = masks.iter().map(|m| m << (64 - MASK_BITS)).collect();
    PartyMessages { key_share, ciphertext, masks }
}

/// Party `index`'s decryption share of the aggregate with `digest`.
fn decryption_share(index: usize, digest: [u8; 32]) -> Vec<u8> {
    let mut words = SplitMix(0x7368_6172_6500 + index as u64);
    let partial: Vec<u64> = (0..VALUES).map(|_| words.next()).collect();
    Payload::new(5).crs().party(PARTIES[index]).bytes(&digest).u64(VALUES as u64).words(&partial).seal()
}

/// Every message of one round of the two parties.
pub(crate) struct Round {
    /// Both parties' hand-made messages.
    pub(crate) parties: [PartyMessages; 2],
    /// The first party's decryption share (hand-made).
    pub(crate) decryption_share: Vec<u8>,
    /// The collective key the library sums from the two key shares.
    pub(crate) collective_key: CollectivePublicKey,
    /// The aggregate masks the library sums from the two ciphertexts.
    pub(crate) aggregate_masks: AggregateMasks,
    /// The decrypted sum the library makes from the aggregate and the two decryption shares.
    pub(crate) decrypted_sum: DecryptedSum,
    /// The aggregate masks' lifted fingerprint under [`CHALLENGE_SEED`].
    pub(crate) fingerprint: MaskFingerprint,
}

/// The round: the parties' messages by hand, the aggregator's by the library.
pub(crate) fn round() -> Round {
    let parties = [party_messages(0), party_messages(1)];
    let ids = PARTIES.map(|p| PartyId::new(p).expect("a valid party id"));
    let mut collector = KeyShareCollector::new(PARAMS_V2, CRS);
    for party in &parties {
        collector.add(decode::<PublicKeyShare>(&party.key_share)).expect("a share of the round");
    }
    let collective_key = collector.collective_key().expect("two parties fit the noise budget");
    let mut builder = AggregateBuilder::new(PARAMS_V2, &collective_key, VALUES);
    for (id, party) in ids.iter().zip(&parties) {
        builder.add(id.clone(), &decode::<Ciphertext>(&party.ciphertext)).expect("a ciphertext of the round");
    }
    let aggregate = builder.finish().expect("every key holder contributed");
    let digest = aggregate.masks().digest();
    let shares = [decryption_share(0, digest), decryption_share(1, digest)];
    let decrypted_sum = aggregate
        .decrypted(&shares.iter().map(|s| decode::<DecryptionShare>(s)).collect::<Vec<_>>())
        .expect("every contributor's share of this aggregate");
    let challenge = Challenge::new(CHALLENGE_SEED);
    let fingerprint = aggregate.masks().lifted_fingerprint(&challenge);
    // The round is a real one as far as the mask check goes: the aggregate's masks are the sum
    // of the contributions' (each party's own fingerprint of its masks adds up to the lift's).
    let own = parties
        .iter()
        .map(|p| challenge.fingerprint(&p.masks))
        .fold(MaskFingerprint::default(), |a, b| a.wrapping_add(b));
    assert_eq!(fingerprint, own, "the aggregate masks fail the mask check");
    let [decryption_share, _] = shares;
    Round {
        parties,
        decryption_share,
        collective_key,
        aggregate_masks: aggregate.masks().clone(),
        decrypted_sum,
        fingerprint,
    }
}

/// Every vector: file name and bytes, in the order the README lists them.
pub(crate) fn all() -> Vec<(&'static str, Vec<u8>)> {
    let Round { parties: [first, _], decryption_share, collective_key, aggregate_masks, decrypted_sum, fingerprint } =
        round();
    let encoded = |message: Result<Vec<u8>, _>| message.expect("a small message fits an envelope");
    vec![
        ("public_key_share.bin", first.key_share),
        ("collective_public_key.bin", encoded(collective_key.encode())),
        ("ciphertext.bin", first.ciphertext),
        ("aggregate_masks.bin", encoded(aggregate_masks.encode())),
        ("decryption_share.bin", decryption_share),
        ("decrypted_sum.bin", encoded(decrypted_sum.encode())),
        ("mask_fingerprint.bin", fingerprint.to_bytes()),
    ]
}
