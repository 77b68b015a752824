//! The one envelope every fedcare file and binary message travels in: the model file, the
//! aggregator's checkpoint and the threshold-encryption wire messages.
//!
//! ```text
//! offset  size  field
//!      0     8  magic, one per format (b"FEDCMODL", b"FEDCCKPT", b"FEDCWIRE")
//!      8     2  format version, u16 little-endian
//!     10     4  payload length in bytes, u32 little-endian
//!     14     4  CRC-32 (IEEE) of the payload, u32 little-endian
//!     18     …  payload
//! ```
//!
//! Opening never panics and never trusts the bytes. It checks, in this order: the size limit
//! (before anything else, so a hostile length costs nothing), that a header is there, the magic,
//! the version, the length (a short payload is [`Error::Truncated`], a long one
//! [`Error::TrailingBytes`]) and the checksum; only then does the caller decode the payload.

use alloc::vec::Vec;

use crate::{Error, Result};

/// Bytes before the payload.
pub const HEADER_LEN: usize = 18;
/// The largest payload a length field can name.
pub const MAX_PAYLOAD: usize = u32::MAX as usize;

/// One envelope format: its magic, the version this build writes and reads, and a name for
/// errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// First bytes of every envelope of this format.
    pub magic: [u8; 8],
    /// The version this build writes and reads (any other is refused).
    pub version: u16,
    /// What the format is, for errors ("model file", "checkpoint", …).
    pub name: &'static str,
}

impl Format {
    /// `payload` in an envelope; refuses a payload longer than [`MAX_PAYLOAD`].
    pub fn seal(&self, payload: &[u8]) -> Result<Vec<u8>> {
        self.seal_with(payload.len(), |out| out.extend_from_slice(payload))
    }

    /// An envelope whose payload `write` appends (with about `capacity` bytes), without first
    /// building the payload on its own: large messages are written once.
    pub fn seal_with(&self, capacity: usize, write: impl FnOnce(&mut Vec<u8>)) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(HEADER_LEN.saturating_add(capacity));
        bytes.extend_from_slice(&self.magic);
        bytes.extend_from_slice(&self.version.to_le_bytes());
        bytes.extend_from_slice(&[0; 8]);
        write(&mut bytes);
        let payload_len = bytes.len() - HEADER_LEN;
        let length =
            u32::try_from(payload_len).map_err(|_| Error::FileTooLarge { size: payload_len, limit: MAX_PAYLOAD })?;
        let checksum = crc32fast::hash(&bytes[HEADER_LEN..]);
        bytes[10..14].copy_from_slice(&length.to_le_bytes());
        bytes[14..18].copy_from_slice(&checksum.to_le_bytes());
        Ok(bytes)
    }

    /// The payload of an envelope of at most `limit` bytes, after every check of the header.
    pub fn open<'a>(&self, bytes: &'a [u8], limit: usize) -> Result<&'a [u8]> {
        if bytes.len() > limit {
            return Err(Error::FileTooLarge { size: bytes.len(), limit });
        }
        let header = bytes.get(..HEADER_LEN).ok_or(Error::Truncated { needed: HEADER_LEN, got: bytes.len() })?;
        let Header { length, checksum } = self.header(header)?;
        let payload = &bytes[HEADER_LEN..];
        if payload.len() < length {
            return Err(Error::Truncated { needed: HEADER_LEN + length, got: bytes.len() });
        }
        if payload.len() > length {
            return Err(Error::TrailingBytes { count: payload.len() - length });
        }
        let computed = crc32fast::hash(payload);
        if computed != checksum {
            return Err(Error::ChecksumMismatch { stored: checksum, computed });
        }
        Ok(payload)
    }

    /// The payload's length and checksum from an envelope's first [`HEADER_LEN`] bytes, after
    /// checking the magic and the version: for a reader that takes the payload piece by piece
    /// (it must then check the length and the checksum itself, as [`Self::open`] does).
    pub fn header(&self, header: &[u8]) -> Result<Header> {
        let header = header.get(..HEADER_LEN).ok_or(Error::Truncated { needed: HEADER_LEN, got: header.len() })?;
        if header[..8] != self.magic {
            return Err(Error::BadMagic { format: self.name });
        }
        let version = u16::from_le_bytes([header[8], header[9]]);
        if version != self.version {
            return Err(Error::UnsupportedVersion { format: self.name, found: version, supported: self.version });
        }
        Ok(Header {
            length: u32::from_le_bytes([header[10], header[11], header[12], header[13]]) as usize,
            checksum: u32::from_le_bytes([header[14], header[15], header[16], header[17]]),
        })
    }
}

/// What an envelope's header says of its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The payload's length in bytes.
    pub length: usize,
    /// The CRC-32 (IEEE) the payload must have.
    pub checksum: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const TEST: Format = Format { magic: *b"FEDCTEST", version: 7, name: "test envelope" };

    #[test]
    fn an_envelope_round_trips_and_every_bad_header_is_named() {
        let sealed = TEST.seal(b"payload").unwrap();
        assert_eq!(sealed.len(), HEADER_LEN + 7);
        assert_eq!(TEST.open(&sealed, 1 << 10).unwrap(), b"payload");
        assert_eq!(TEST.seal_with(0, |out| out.extend_from_slice(b"payload")).unwrap(), sealed);
        for cut in 0..sealed.len() {
            assert!(matches!(TEST.open(&sealed[..cut], 1 << 10), Err(Error::Truncated { .. })), "cut at {cut}");
        }
        assert_eq!(TEST.open(&sealed, 10), Err(Error::FileTooLarge { size: sealed.len(), limit: 10 }));
        let other = Format { magic: *b"FEDCELSE", ..TEST };
        assert_eq!(other.open(&sealed, 1 << 10), Err(Error::BadMagic { format: "test envelope" }));
        let newer = Format { version: 8, ..TEST };
        assert_eq!(
            newer.open(&sealed, 1 << 10),
            Err(Error::UnsupportedVersion { format: "test envelope", found: 7, supported: 8 })
        );
        let mut flipped = sealed.clone();
        flipped[HEADER_LEN] ^= 1;
        assert!(matches!(TEST.open(&flipped, 1 << 10), Err(Error::ChecksumMismatch { .. })));
        let mut long = sealed.clone();
        long.push(0);
        assert_eq!(TEST.open(&long, 1 << 10), Err(Error::TrailingBytes { count: 1 }));
        let empty = TEST.seal(&[]).unwrap();
        assert_eq!(TEST.open(&empty, 1 << 10).unwrap(), &[] as &[u8]);
        assert_eq!(vec![0u8; 0], TEST.open(&empty, HEADER_LEN).unwrap());
    }
}
