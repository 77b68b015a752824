//! Chunked transfer of large payloads over the gRPC streams, with explicit size caps: what the
//! shells cut into chunk messages and put together again, without the streams themselves.
//!
//! A payload of several sections (a collective key, a model, a ciphertext…) goes as a header
//! message followed by data messages of at most [`CHUNK_BYTES`] bytes. Sections are shared
//! [`Bytes`]: a chunk is a slice of its section, never a copy, so sending one model to ten
//! hospitals costs one model in memory. The receiver knows the total from the header, refuses a
//! header claiming more than its cap, data beyond the total ([`TransferError::Overflow`]) and a
//! stream that ends short of it ([`TransferError::Short`]).

use bytes::{Bytes, BytesMut};
use fedcare_proto::CHUNK_BYTES;

use crate::error::TransferError;

/// The chunks of the concatenation of `sections`, each at most [`CHUNK_BYTES`]: slices of the
/// sections (a chunk never spans two sections).
pub fn chunks(sections: &[Bytes]) -> Vec<Bytes> {
    let mut out = Vec::new();
    for section in sections {
        let mut at = 0;
        while at < section.len() {
            let end = (at + CHUNK_BYTES).min(section.len());
            out.push(section.slice(at..end));
            at = end;
        }
    }
    out
}

/// Accumulates data chunks up to an announced total.
#[derive(Debug)]
pub struct Assembler {
    expected: u64,
    bytes: BytesMut,
}

impl Assembler {
    /// Expects `total` bytes, refusing a total above `cap`.
    pub fn new(total: u64, cap: u64) -> Result<Self, TransferError> {
        if total > cap || usize::try_from(total).is_err() {
            return Err(TransferError::TooLarge { total, limit: cap });
        }
        // Memory grows with the data that actually arrives, not with what a header claims.
        Ok(Self { expected: total, bytes: BytesMut::with_capacity((total as usize).min(CHUNK_BYTES)) })
    }

    /// Adds one chunk, refusing data beyond the total.
    pub fn push(&mut self, data: &[u8]) -> Result<(), TransferError> {
        if self.bytes.len() as u64 + data.len() as u64 > self.expected {
            return Err(TransferError::Overflow { expected: self.expected });
        }
        self.bytes.extend_from_slice(data);
        Ok(())
    }

    /// The payload, refusing a stream that ended early.
    pub fn finish(self) -> Result<Bytes, TransferError> {
        if self.bytes.len() as u64 != self.expected {
            return Err(TransferError::Short { got: self.bytes.len() as u64, expected: self.expected });
        }
        Ok(self.bytes.freeze())
    }
}

/// Splits `payload` into sections of the given sizes (slices, not copies).
pub fn split_sections(payload: &Bytes, sizes: &[u64]) -> Result<Vec<Bytes>, TransferError> {
    let total = sizes.iter().try_fold(0u64, |sum, &s| sum.checked_add(s));
    if total != Some(payload.len() as u64) {
        return Err(TransferError::Sections { payload: payload.len() as u64, sections: total.unwrap_or(u64::MAX) });
    }
    let mut out = Vec::with_capacity(sizes.len());
    let mut at = 0usize;
    for &size in sizes {
        // Invariant: the sizes add up to the payload's length, which fits a usize.
        let end = at + size as usize;
        out.push(payload.slice(at..end));
        at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_reassemble_and_bad_streams_are_refused() {
        let a = Bytes::from(vec![1u8; CHUNK_BYTES + 10]);
        let b = Bytes::from(vec![2u8; 5]);
        let parts = chunks(&[a.clone(), b.clone()]);
        assert_eq!(parts.iter().map(Bytes::len).collect::<Vec<_>>(), [CHUNK_BYTES, 10, 5]);
        assert_eq!(parts[0].as_ptr(), a.as_ptr(), "a chunk is a slice of its section, not a copy");
        let mut asm = Assembler::new((a.len() + b.len()) as u64, u64::MAX).unwrap();
        parts.iter().for_each(|p| asm.push(p).unwrap());
        let whole = asm.finish().unwrap();
        assert_eq!(split_sections(&whole, &[a.len() as u64, 5]).unwrap(), vec![a.clone(), b]);
        assert_eq!(
            split_sections(&whole, &[a.len() as u64, 6]).unwrap_err(),
            TransferError::Sections { payload: whole.len() as u64, sections: whole.len() as u64 + 1 }
        );
        assert!(split_sections(&whole, &[u64::MAX, 2]).is_err(), "sizes that overflow");
        assert_eq!(Assembler::new(11, 10).unwrap_err(), TransferError::TooLarge { total: 11, limit: 10 });
        let mut short = Assembler::new(10, 10).unwrap();
        short.push(&[0; 4]).unwrap();
        assert_eq!(short.push(&[0; 7]).unwrap_err(), TransferError::Overflow { expected: 10 });
        assert_eq!(short.finish().unwrap_err(), TransferError::Short { got: 4, expected: 10 });
    }
}
