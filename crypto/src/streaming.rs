//! The aggregator's reception of one contribution as it arrives: a ciphertext's wire bytes piece
//! by piece, every run of words a piece completes going into the round's running sum at once, so
//! that the aggregator never holds a whole ciphertext (its memory is the sum's, whatever the
//! number of parties).
//!
//! [`ContributionStream`] checks everything the header says (envelope, parameter set, kind,
//! round, length, size) before it hands out a single word, so a contribution refused there
//! leaves the sum untouched. It hashes the words as they pass ([`ContributionHash`], the same as
//! [`crate::Ciphertext::hash`]) and checks the envelope's CRC-32 at the end. Words added to the
//! sum cannot be taken back: a contribution that fails after its first words went in (a stream
//! that breaks off, a bad checksum, bytes beyond the end) breaks the sum
//! ([`crate::AggregateBuilder::abandon`]), and the round must restart with fresh keys.

use fedcare_core::envelope;

use super::CryptoError;
use super::ciphertext::{ContributionHash, hash_prefix, le_bytes};
use super::keys::{Crs, PartyId};
use super::packing::Unpacker;
use super::params::{ThresholdParams, packed_bytes};
use super::wire::{FORMAT, HEADER_LEN, ciphertext_head};

/// Bytes of a ciphertext message before its words: the envelope, parameter set and kind, the
/// CRS and the value count.
const HEAD_LEN: usize = HEADER_LEN + 16 + 8;

/// A run of consecutive words of a ciphertext (masks, then bodies), starting at word `start`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordRun {
    pub(crate) start: usize,
    pub(crate) words: Vec<u64>,
}

impl WordRun {
    /// Whether the run holds no word.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

/// One party's ciphertext being received, piece by piece.
#[derive(Debug)]
pub struct ContributionStream {
    params: ThresholdParams,
    party: PartyId,
    crs: Crs,
    len: usize,
    /// The bytes before the words, until all of them came.
    head: Vec<u8>,
    /// The envelope's checksum, once the head is read.
    checksum: Option<u32>,
    crc: crc32fast::Hasher,
    hash: blake3::Hasher,
    /// Bytes of the masks' and the bodies' sections still to come.
    mask_bytes: usize,
    body_bytes: usize,
    masks: Option<Unpacker>,
    bodies: Unpacker,
    /// The index of the next word in the ciphertext's data.
    next: usize,
    /// The words the last piece completed (one buffer for the whole stream).
    run: WordRun,
}

impl ContributionStream {
    /// A stream of `party`'s ciphertext of `len` values made under `params` for the round `crs`.
    pub(crate) fn new(params: ThresholdParams, crs: Crs, len: usize, party: PartyId) -> Self {
        let mask_words = params.bins(len) * params.n();
        Self {
            params,
            party,
            crs,
            len,
            head: Vec::with_capacity(HEAD_LEN),
            checksum: None,
            crc: crc32fast::Hasher::new(),
            hash: blake3::Hasher::new(),
            mask_bytes: packed_bytes(mask_words, params.mask_bits),
            body_bytes: packed_bytes(len, params.body_bits),
            masks: Some(Unpacker::new(mask_words, params.mask_bits)),
            bodies: Unpacker::new(len, params.body_bits),
            next: 0,
            run: WordRun::default(),
        }
    }

    /// The party whose ciphertext it is.
    pub fn party(&self) -> &PartyId {
        &self.party
    }

    /// The run of words the last [`Self::read`] completed.
    pub fn run(&self) -> &WordRun {
        &self.run
    }

    /// Reads the next piece of the message into [`Self::run`]: the words it completed (none
    /// while the head is still coming). Refuses a head that does not match the round before
    /// any word, and bytes beyond the message's end.
    pub fn read(&mut self, mut piece: &[u8]) -> Result<(), CryptoError> {
        self.run.start = self.next;
        self.run.words.clear();
        if self.checksum.is_none() {
            let wanted = (HEAD_LEN - self.head.len()).min(piece.len());
            self.head.extend_from_slice(&piece[..wanted]);
            piece = &piece[wanted..];
            if self.head.len() < HEAD_LEN {
                return Ok(());
            }
            self.open_head()?;
        }
        if piece.len() > self.mask_bytes + self.body_bytes {
            return Err(CryptoError::TrailingBytes { count: piece.len() - self.mask_bytes - self.body_bytes });
        }
        self.crc.update(piece);
        let run = &mut self.run;
        let in_masks = piece.len().min(self.mask_bytes);
        let (mask_piece, body_piece) = piece.split_at(in_masks);
        if let Some(masks) = self.masks.as_mut() {
            masks.feed(mask_piece, |word| run.words.push(word));
            self.mask_bytes -= mask_piece.len();
            if self.mask_bytes == 0 {
                self.masks.take().map_or(Ok(()), Unpacker::finish)?;
            }
        }
        self.bodies.feed(body_piece, |word| run.words.push(word));
        self.body_bytes -= body_piece.len();
        self.hash.update(&le_bytes(&run.words));
        self.next += run.words.len();
        Ok(())
    }

    /// Checks the head: the envelope, then the parameter set, the kind, the round, the value
    /// count and the size the envelope announces.
    fn open_head(&mut self) -> Result<(), CryptoError> {
        let header = FORMAT.header(&self.head).map_err(CryptoError::Envelope)?;
        let fields = &self.head[envelope::HEADER_LEN..];
        self.crc.update(fields);
        let (crs, len) = ciphertext_head(fields, &self.params)?;
        if crs != self.crs {
            return Err(CryptoError::WrongCrs);
        }
        if len != self.len as u64 {
            return Err(CryptoError::LengthMismatch { expected: self.len, got: len.try_into().unwrap_or(usize::MAX) });
        }
        let expected = HEAD_LEN - envelope::HEADER_LEN + self.mask_bytes + self.body_bytes;
        if header.length != expected {
            return Err(CryptoError::Malformed("the envelope's length is not the ciphertext's"));
        }
        self.hash = hash_prefix(self.params.id, self.crs, self.len);
        self.checksum = Some(header.checksum);
        Ok(())
    }

    /// The contribution's hash, once every byte came and the checksum holds.
    pub fn finish(self) -> Result<ContributionHash, CryptoError> {
        let missing = self.mask_bytes + self.body_bytes;
        let Some(stored) = self.checksum else {
            return Err(CryptoError::Truncated { needed: HEAD_LEN as u64, got: self.head.len() as u64 });
        };
        if missing > 0 {
            return Err(CryptoError::Malformed("the ciphertext ended before its last word"));
        }
        self.bodies.finish()?;
        let computed = self.crc.finalize();
        if computed != stored {
            return Err(CryptoError::Envelope(fedcare_core::Error::ChecksumMismatch { stored, computed }));
        }
        Ok(ContributionHash(*self.hash.finalize().as_bytes()))
    }
}
