//! Bit-packing of rounded ciphertext words: the top [`WireBits`] of each word, back to back.
//!
//! Word `i` of a section occupies bits `[i·b, (i+1)·b)` of the section's little-endian bit
//! stream; the section ends on a byte boundary with zero padding bits, which the decoder requires
//! (every section has exactly one encoding). [`Unpacker`] reads a section in pieces of any size
//! (what arrives of a stream), so a receiver never needs the whole section at once.

use super::CryptoError;
use super::params::{WireBits, packed_bytes};

/// Appends the top `bits` of every word (each already rounded: its dropped bits zero) to `out`.
pub(crate) fn pack(words: &[u64], bits: WireBits, out: &mut Vec<u8>) {
    out.reserve(packed_bytes(words.len(), bits));
    let mut acc: u128 = 0;
    let mut held = 0u32;
    for &word in words {
        debug_assert!(bits.holds(word), "a word packed before it was rounded");
        acc |= u128::from(bits.top(word)) << held;
        held += bits.0;
        if held >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            held -= 64;
        }
    }
    out.extend_from_slice(&acc.to_le_bytes()[..held.div_ceil(8) as usize]);
}

/// Reads a packed section piece by piece and hands out its words (shifted back into place).
#[derive(Debug, Clone)]
pub(crate) struct Unpacker {
    bits: WireBits,
    /// Bits received and not yet handed out, lowest first (fewer than `bits` between pieces).
    acc: u128,
    held: u32,
    /// Words still to hand out.
    remaining: usize,
    /// Whether bytes came after the last word's.
    surplus: bool,
}

impl Unpacker {
    /// An unpacker of a section of `count` words of `bits` bits.
    pub(crate) fn new(count: usize, bits: WireBits) -> Self {
        Self { bits, acc: 0, held: 0, remaining: count, surplus: false }
    }

    /// Hands every word completed by `piece` to `emit`, in order. The caller gives the section's
    /// bytes exactly ([`packed_bytes`]): bits beyond the last word are kept for [`Self::finish`].
    pub(crate) fn feed(&mut self, piece: &[u8], mut emit: impl FnMut(u64)) {
        let mask = (1u128 << self.bits.0) - 1;
        let mut drain = |this: &mut Self| {
            while this.held >= this.bits.0 && this.remaining > 0 {
                emit(this.bits.word((this.acc & mask) as u64));
                this.acc >>= this.bits.0;
                this.held -= this.bits.0;
                this.remaining -= 1;
            }
        };
        let mut eights = piece.chunks_exact(8);
        for eight in &mut eights {
            if self.remaining == 0 {
                self.surplus = true;
                return;
            }
            // Invariant: while words remain, fewer bits than a word's (at most 64) are held
            // between pushes, so 64 more fit in the accumulator.
            let bytes: [u8; 8] = eight.try_into().unwrap_or([0; 8]);
            self.acc |= u128::from(u64::from_le_bytes(bytes)) << self.held;
            self.held += 64;
            drain(self);
        }
        for &byte in eights.remainder() {
            if self.remaining == 0 {
                self.surplus = true;
                return;
            }
            self.acc |= u128::from(byte) << self.held;
            self.held += 8;
            drain(self);
        }
    }

    /// Checks that every word came and that the padding bits are zero.
    pub(crate) fn finish(self) -> Result<(), CryptoError> {
        if self.remaining > 0 {
            return Err(CryptoError::Malformed("a packed section ends before its last word"));
        }
        if self.surplus || self.held >= 8 || self.acc != 0 {
            return Err(CryptoError::Malformed("a packed section's padding is not zero"));
        }
        Ok(())
    }
}

/// The `count` words of a whole packed section.
pub(crate) fn unpack(section: &[u8], count: usize, bits: WireBits) -> Result<Vec<u64>, CryptoError> {
    let mut words = Vec::with_capacity(count);
    let mut unpacker = Unpacker::new(count, bits);
    unpacker.feed(section, |word| words.push(word));
    unpacker.finish()?;
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rounded(count: usize, bits: WireBits, seed: u64) -> Vec<u64> {
        let mut x = seed;
        (0..count)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                bits.round(x ^ (x >> 29))
            })
            .collect()
    }

    #[test]
    fn sections_round_trip_in_pieces_of_any_size() {
        for bits in [WireBits(39), WireBits(56), WireBits(64), WireBits(1)] {
            for count in [1, 7, 8, 9, 1000] {
                let words = rounded(count, bits, count as u64);
                let mut bytes = Vec::new();
                pack(&words, bits, &mut bytes);
                assert_eq!(bytes.len(), packed_bytes(count, bits));
                assert_eq!(unpack(&bytes, count, bits).unwrap(), words);
                for piece in [1, 3, 8, 13] {
                    let mut out = Vec::new();
                    let mut unpacker = Unpacker::new(count, bits);
                    bytes.chunks(piece).for_each(|p| unpacker.feed(p, |w| out.push(w)));
                    unpacker.finish().unwrap();
                    assert_eq!(out, words, "{bits:?}, {count} words in pieces of {piece}");
                }
            }
        }
    }

    #[test]
    fn short_sections_and_stray_padding_are_refused() {
        let bits = WireBits(39);
        let words = rounded(3, bits, 5);
        let mut bytes = Vec::new();
        pack(&words, bits, &mut bytes);
        assert!(unpack(&bytes[..bytes.len() - 1], 3, bits).is_err(), "a missing byte");
        let last = bytes.len() - 1;
        bytes[last] |= 0x80;
        assert!(unpack(&bytes, 3, bits).is_err(), "a padding bit set");
        let mut long = Vec::new();
        pack(&words, bits, &mut long);
        long.push(0);
        assert!(unpack(&long, 3, bits).is_err(), "a byte too many");
    }
}
