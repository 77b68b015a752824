//! Wire encoding of every crypto message: the [`fedcare_core::envelope`] (magic `b"FEDCWIRE"`,
//! version, length, CRC-32) around a payload that names the parameter set and the message kind.
//!
//! ```text
//! envelope (18 bytes): magic b"FEDCWIRE" | format version u16 | payload length u32 | CRC-32 u32
//! payload: parameter set id u16 | kind u8 | the kind's fields:
//! kind 1 PublicKeyShare      : crs u128 | party | body n × u64
//! kind 2 CollectivePublicKey : crs u128 | parties u16 | party × parties | body n × u64
//! kind 3 Ciphertext          : crs u128 | len u64 | masks ⌈len/n⌉·n × packed(mask_bits) | bodies len × packed(body_bits)
//! kind 4 AggregateMasks      : crs u128 | len u64 | contributors u16 | (party | hash 32 B) × contributors | masks ⌈len/n⌉·n × packed(mask_bits) | ⌈len/n⌉·n × u8 carries
//! kind 5 DecryptionShare     : crs u128 | party | aggregate digest 32 B | len u64 | len × u64
//! kind 6 DecryptedSum        : crs u128 | aggregate digest 32 B | contributors u16 | len u64 | phases len × u64 | lifts len × i8
//! party: length u8 (1..=128) | UTF-8 bytes.   All integers little-endian.
//! packed(b): the top b bits of every (rounded) word, back to back, zero-padded to a byte
//!            ([`crate::packing`]); b is the parameter set's (56 for masks, 39 for bodies).
//! ```
//!
//! Decoding refuses a message larger than [`WireLimits`] allows *before* reading or allocating
//! anything for it, checks the envelope, then the parameter set and the kind, requires the exact
//! length the fields imply, and never panics. The CRS is checked by the receiver (collector,
//! aggregate builder or party session), which knows the round.
//!
//! Golden vectors of every kind, with the program that makes them, are in `crypto/tests/golden/`.

use fedcare_core::envelope::Format;

use super::CryptoError;
use super::aggregate::{AggregateMasks, DecryptedSum, DecryptionShare};
use super::ciphertext::{Ciphertext, ContributionHash, le_bytes};
use super::keys::{CollectivePublicKey, Crs, MAX_PARTY_ID_LEN, PartyId, PublicKeyShare};
use super::packing::{pack, unpack};
use super::params::{ThresholdParams, WireBits, packed_bytes};

/// The wire format version this build writes and reads (2: inside the common envelope; 3:
/// aggregate masks carry their carries; 4: masks and bodies bit-packed at their wire bits).
pub const WIRE_VERSION: u16 = 4;
/// The envelope of every crypto message.
pub const FORMAT: Format = Format { magic: *b"FEDCWIRE", version: WIRE_VERSION, name: "crypto message" };
/// Bytes before a message's fields: the envelope, the parameter set id and the kind.
pub const HEADER_LEN: usize = fedcare_core::envelope::HEADER_LEN + 3;

/// Limits on what a decoder accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireLimits {
    /// Most values in a ciphertext, aggregate or decryption share.
    pub max_values: usize,
}

impl Default for WireLimits {
    /// 2^24 values (a 16M-parameter model: 256 MiB of ciphertext).
    fn default() -> Self {
        Self { max_values: 1 << 24 }
    }
}

/// A message with a wire encoding.
pub trait WireMessage: Sized {
    /// The kind byte in the header.
    const KIND: u8;
    /// The kind's name, for errors.
    const NAME: &'static str;

    /// The message's bytes; refused only for a message too large for an envelope (4 GiB).
    fn encode(&self) -> Result<Vec<u8>, CryptoError>;

    /// Decodes a message made under `params`, within `limits`.
    fn decode(bytes: &[u8], params: &ThresholdParams, limits: &WireLimits) -> Result<Self, CryptoError>;
}

/// Appends a message's fields to its envelope.
struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    /// The envelope of a message of kind `M` whose fields `write` appends (about `capacity` bytes).
    fn seal<M: WireMessage>(
        params_id: u16,
        capacity: usize,
        write: impl FnOnce(&mut Writer<'_>),
    ) -> Result<Vec<u8>, CryptoError> {
        FORMAT
            .seal_with(capacity + 3, |out| {
                out.extend_from_slice(&params_id.to_le_bytes());
                out.push(M::KIND);
                write(&mut Writer(out));
            })
            .map_err(CryptoError::Envelope)
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn crs(&mut self, crs: Crs) {
        self.0.extend_from_slice(&crs.0.to_le_bytes());
    }
    fn party(&mut self, party: &PartyId) {
        // PartyId guarantees 1..=128 bytes.
        self.0.push(party.as_str().len() as u8);
        self.0.extend_from_slice(party.as_str().as_bytes());
    }
    fn bytes(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
    fn words(&mut self, words: &[u64]) {
        self.0.extend_from_slice(&le_bytes(words));
    }
    fn packed(&mut self, words: &[u64], bits: WireBits) {
        pack(words, bits, self.0);
    }
}

/// Reads a message's fields from its payload.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Checks the size limit, the envelope, the parameter set and the kind; returns a reader
    /// positioned at the message's fields.
    fn open<M: WireMessage>(bytes: &'a [u8], params: &ThresholdParams, limit: u64) -> Result<Self, CryptoError> {
        if bytes.len() as u64 > limit {
            return Err(CryptoError::TooLarge { size: bytes.len() as u64, limit });
        }
        let payload = FORMAT.open(bytes, usize::MAX).map_err(CryptoError::Envelope)?;
        Self::fields::<M>(payload, params)
    }
    /// A reader of a payload's fields, after checking its parameter set and kind.
    fn fields<M: WireMessage>(payload: &'a [u8], params: &ThresholdParams) -> Result<Self, CryptoError> {
        let mut reader = Self { bytes: payload, at: 0 };
        let params_id = reader.u16()?;
        if params_id != params.id {
            return Err(CryptoError::WrongParams { expected: params.id, got: params_id });
        }
        let kind = reader.take(1)?[0];
        if kind != M::KIND {
            return Err(CryptoError::WrongKind { expected: M::NAME, got: kind });
        }
        Ok(reader)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], CryptoError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(CryptoError::Truncated { needed: self.at as u64 + n as u64, got: self.bytes.len() as u64 })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CryptoError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, CryptoError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, CryptoError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn crs(&mut self) -> Result<Crs, CryptoError> {
        Ok(Crs(u128::from_le_bytes(self.array()?)))
    }
    fn party(&mut self) -> Result<PartyId, CryptoError> {
        let len = self.take(1)?[0] as usize;
        if len == 0 || len > MAX_PARTY_ID_LEN {
            return Err(CryptoError::PartyIdLength { len, max: MAX_PARTY_ID_LEN });
        }
        let text =
            core::str::from_utf8(self.take(len)?).map_err(|_| CryptoError::Malformed("party id is not UTF-8"))?;
        PartyId::new(text)
    }
    fn value_count(&mut self, limits: &WireLimits) -> Result<usize, CryptoError> {
        let len = self.u64()?;
        if len == 0 {
            return Err(CryptoError::Malformed("zero values"));
        }
        if len > limits.max_values as u64 {
            return Err(CryptoError::TooLarge { size: len, limit: limits.max_values as u64 });
        }
        Ok(len as usize)
    }
    /// Exactly `count` words; the remaining bytes are checked before allocating.
    fn words(&mut self, count: usize) -> Result<Vec<u64>, CryptoError> {
        let bytes = self.take(count.checked_mul(8).ok_or(CryptoError::Malformed("word count overflows"))?)?;
        // Invariant: `chunks_exact(8)` yields 8-byte slices, so the conversion cannot fail.
        Ok(bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect())
    }
    /// Exactly `count` words packed at `bits` bits.
    fn packed(&mut self, count: usize, bits: WireBits) -> Result<Vec<u64>, CryptoError> {
        unpack(self.take(packed_bytes(count, bits))?, count, bits)
    }
    fn finish(self) -> Result<(), CryptoError> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            count => Err(CryptoError::TrailingBytes { count }),
        }
    }
}

/// Largest encoding of `values` words plus fixed fields, used as the pre-allocation size limit.
fn limit_for(values: usize, params: &ThresholdParams) -> u64 {
    let words = params.ciphertext_words(values) as u64;
    HEADER_LEN as u64 + 9 * words + 64 + params.max_parties.0 as u64 * (1 + MAX_PARTY_ID_LEN as u64 + 32)
}

impl WireMessage for PublicKeyShare {
    const KIND: u8 = 1;
    const NAME: &'static str = "public key share";

    fn encode(&self) -> Result<Vec<u8>, CryptoError> {
        Writer::seal::<Self>(self.params_id, 16 + 129 + self.body.len() * 8, |w| {
            w.crs(self.crs);
            w.party(&self.party);
            w.words(&self.body);
        })
    }

    fn decode(bytes: &[u8], params: &ThresholdParams, _limits: &WireLimits) -> Result<Self, CryptoError> {
        let mut r = Reader::open::<Self>(bytes, params, limit_for(params.n(), params))?;
        let crs = r.crs()?;
        let party = r.party()?;
        let body = r.words(params.n())?;
        r.finish()?;
        Ok(Self { params_id: params.id, crs, party, body })
    }
}

impl WireMessage for CollectivePublicKey {
    const KIND: u8 = 2;
    const NAME: &'static str = "collective public key";

    fn encode(&self) -> Result<Vec<u8>, CryptoError> {
        Writer::seal::<Self>(self.params_id, 18 + self.parties.len() * 129 + self.body.len() * 8, |w| {
            w.crs(self.crs);
            // At most max_parties (64) parties: the collector refuses more.
            w.u16(self.parties.len() as u16);
            self.parties.iter().for_each(|p| w.party(p));
            w.words(&self.body);
        })
    }

    fn decode(bytes: &[u8], params: &ThresholdParams, _limits: &WireLimits) -> Result<Self, CryptoError> {
        let mut r = Reader::open::<Self>(bytes, params, limit_for(params.n(), params))?;
        let crs = r.crs()?;
        let count = r.u16()? as usize;
        if count == 0 || count > params.max_parties.0 {
            return Err(CryptoError::PartyCount { parties: count, max: params.max_parties.0, params: params.name });
        }
        let parties = (0..count).map(|_| r.party()).collect::<Result<Vec<_>, _>>()?;
        if !parties.windows(2).all(|w| w[0] < w[1]) {
            return Err(CryptoError::Malformed("collective key parties are not sorted and distinct"));
        }
        let body = r.words(params.n())?;
        r.finish()?;
        Ok(Self { params_id: params.id, crs, parties, body })
    }
}

impl WireMessage for Ciphertext {
    const KIND: u8 = 3;
    const NAME: &'static str = "ciphertext";

    fn encode(&self) -> Result<Vec<u8>, CryptoError> {
        let params = ThresholdParams::by_id(self.params_id).ok_or(CryptoError::UnknownParams(self.params_id))?;
        let (masks, bodies) = self.data.split_at(self.data.len() - self.len);
        Writer::seal::<Self>(self.params_id, 24 + params.ciphertext_wire_bytes(self.len), |w| {
            w.crs(self.crs);
            w.u64(self.len as u64);
            w.packed(masks, params.mask_bits);
            w.packed(bodies, params.body_bits);
        })
    }

    fn decode(bytes: &[u8], params: &ThresholdParams, limits: &WireLimits) -> Result<Self, CryptoError> {
        let mut r = Reader::open::<Self>(bytes, params, limit_for(limits.max_values, params))?;
        let crs = r.crs()?;
        let len = r.value_count(limits)?;
        let mut data = r.packed(params.bins(len) * params.n(), params.mask_bits)?;
        data.extend(r.packed(len, params.body_bits)?);
        r.finish()?;
        Ok(Self { params_id: params.id, crs, len, data })
    }
}

/// The CRS and value count of a ciphertext message, from the start of its payload (the
/// parameter set and the kind checked): what a receiver taking the words piece by piece checks
/// before the first one ([`crate::ContributionStream`]).
pub(crate) fn ciphertext_head(payload: &[u8], params: &ThresholdParams) -> Result<(Crs, u64), CryptoError> {
    let mut r = Reader::fields::<Ciphertext>(payload, params)?;
    Ok((r.crs()?, r.u64()?))
}

impl WireMessage for AggregateMasks {
    const KIND: u8 = 4;
    const NAME: &'static str = "aggregate masks";

    fn encode(&self) -> Result<Vec<u8>, CryptoError> {
        let params = ThresholdParams::by_id(self.params_id).ok_or(CryptoError::UnknownParams(self.params_id))?;
        let size =
            26 + self.contributors.len() * 161 + packed_bytes(self.masks.len(), params.mask_bits) + self.masks.len();
        Writer::seal::<Self>(self.params_id, size, |w| {
            w.crs(self.crs);
            w.u64(self.len as u64);
            // At most max_parties (64) contributors: the builder's noise check refuses more.
            w.u16(self.contributors.len() as u16);
            for (party, hash) in &self.contributors {
                w.party(party);
                w.bytes(&hash.0);
            }
            w.packed(&self.masks, params.mask_bits);
            w.bytes(&self.carries);
        })
    }

    fn decode(bytes: &[u8], params: &ThresholdParams, limits: &WireLimits) -> Result<Self, CryptoError> {
        let mut r = Reader::open::<Self>(bytes, params, limit_for(limits.max_values, params))?;
        let crs = r.crs()?;
        let len = r.value_count(limits)?;
        let count = r.u16()? as usize;
        if count == 0 || count > params.max_parties.0 {
            return Err(CryptoError::PartyCount { parties: count, max: params.max_parties.0, params: params.name });
        }
        let contributors = (0..count)
            .map(|_| Ok((r.party()?, ContributionHash(r.array()?))))
            .collect::<Result<Vec<_>, CryptoError>>()?;
        if !contributors.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(CryptoError::Malformed("aggregate contributors are not sorted and distinct"));
        }
        let masks = r.packed(params.bins(len) * params.n(), params.mask_bits)?;
        let carries = r.take(masks.len())?.to_vec();
        if carries.iter().any(|&c| usize::from(c) >= count) {
            return Err(CryptoError::Malformed("a carry larger than the contributors allow"));
        }
        r.finish()?;
        Ok(Self::new(params.id, crs, len, contributors, masks, carries))
    }
}

impl WireMessage for DecryptionShare {
    const KIND: u8 = 5;
    const NAME: &'static str = "decryption share";

    fn encode(&self) -> Result<Vec<u8>, CryptoError> {
        Writer::seal::<Self>(self.params_id, 16 + 129 + 32 + 8 + self.partial.len() * 8, |w| {
            w.crs(self.crs);
            w.party(&self.party);
            w.bytes(&self.aggregate_digest);
            w.u64(self.partial.len() as u64);
            w.words(&self.partial);
        })
    }

    fn decode(bytes: &[u8], params: &ThresholdParams, limits: &WireLimits) -> Result<Self, CryptoError> {
        let mut r = Reader::open::<Self>(bytes, params, limit_for(limits.max_values, params))?;
        let crs = r.crs()?;
        let party = r.party()?;
        let aggregate_digest = r.array()?;
        let len = r.value_count(limits)?;
        let partial = r.words(len)?;
        r.finish()?;
        Ok(Self { params_id: params.id, crs, party, aggregate_digest, partial })
    }
}

impl WireMessage for DecryptedSum {
    const KIND: u8 = 6;
    const NAME: &'static str = "decrypted sum";

    fn encode(&self) -> Result<Vec<u8>, CryptoError> {
        Writer::seal::<Self>(self.params.id, 16 + 32 + 2 + 8 + self.phases.len() * 9, |w| {
            w.crs(self.crs);
            w.bytes(&self.aggregate_digest);
            // At most max_parties (64) contributors.
            w.u16(self.contributors as u16);
            w.u64(self.phases.len() as u64);
            w.words(&self.phases);
            w.bytes(bytemuck::cast_slice(&self.lifts));
        })
    }

    fn decode(bytes: &[u8], params: &ThresholdParams, limits: &WireLimits) -> Result<Self, CryptoError> {
        let mut r = Reader::open::<Self>(bytes, params, limit_for(limits.max_values, params))?;
        let crs = r.crs()?;
        let aggregate_digest = r.array()?;
        let contributors = r.u16()? as usize;
        if contributors == 0 || contributors > params.max_parties.0 {
            return Err(CryptoError::PartyCount {
                parties: contributors,
                max: params.max_parties.0,
                params: params.name,
            });
        }
        let len = r.value_count(limits)?;
        let phases = r.words(len)?;
        let lifts: Vec<i8> = bytemuck::cast_slice(r.take(len)?).to_vec();
        // Σ_j (body_j − share_j) lies in (−N·2^64, N·2^64).
        let bound = contributors as i32;
        if lifts.iter().any(|&l| !(-bound..bound).contains(&i32::from(l))) {
            return Err(CryptoError::Malformed("a lift larger than the contributors allow"));
        }
        r.finish()?;
        Ok(Self::new(*params, crs, aggregate_digest, contributors, phases, lifts))
    }
}
