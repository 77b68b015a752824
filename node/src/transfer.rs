//! Chunked transfer of large payloads over the gRPC streams, with explicit size caps.
//!
//! A payload of several sections (a collective key, a model, a ciphertext…) goes as a header
//! message followed by data messages of at most [`CHUNK_BYTES`] bytes. The receiver knows the
//! total from the header, refuses a header claiming more than its cap, refuses data beyond the
//! total (`OutOfRange`) and a stream that ends short of it (`DataLoss`).

use fedcare_proto::CHUNK_BYTES;
use tonic::Status;

/// Splits the concatenation of `sections` into chunks of at most [`CHUNK_BYTES`].
pub fn chunks(sections: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current = Vec::with_capacity(CHUNK_BYTES);
    for section in sections {
        let mut rest = *section;
        while !rest.is_empty() {
            let take = (CHUNK_BYTES - current.len()).min(rest.len());
            current.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if current.len() == CHUNK_BYTES {
                out.push(core::mem::replace(&mut current, Vec::with_capacity(CHUNK_BYTES)));
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Accumulates data chunks up to an announced total.
#[derive(Debug)]
pub struct Assembler {
    expected: usize,
    bytes: Vec<u8>,
}

impl Assembler {
    /// Expects `total` bytes, refusing a total above `cap`.
    pub fn new(total: u64, cap: u64) -> Result<Self, Status> {
        if total > cap {
            return Err(Status::out_of_range(format!("payload of {total} bytes exceeds the limit of {cap}")));
        }
        let expected = usize::try_from(total).map_err(|_| Status::out_of_range("payload too large"))?;
        // Memory grows with the data that actually arrives, not with what a header claims.
        Ok(Self { expected, bytes: Vec::with_capacity(expected.min(CHUNK_BYTES)) })
    }

    /// Adds one chunk, refusing data beyond the total.
    pub fn push(&mut self, data: &[u8]) -> Result<(), Status> {
        if self.bytes.len() + data.len() > self.expected {
            return Err(Status::out_of_range(format!(
                "stream carries more than the {} bytes its header announced",
                self.expected
            )));
        }
        self.bytes.extend_from_slice(data);
        Ok(())
    }

    /// The payload, refusing a stream that ended early.
    pub fn finish(self) -> Result<Vec<u8>, Status> {
        if self.bytes.len() != self.expected {
            return Err(Status::data_loss(format!(
                "stream ended after {} of {} bytes",
                self.bytes.len(),
                self.expected
            )));
        }
        Ok(self.bytes)
    }
}

/// Splits `payload` into sections of the given sizes.
pub fn split_sections(payload: &[u8], sizes: &[u64]) -> Result<Vec<Vec<u8>>, Status> {
    let mut out = Vec::with_capacity(sizes.len());
    let mut at = 0usize;
    for &size in sizes {
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| at.checked_add(s))
            .filter(|&e| e <= payload.len())
            .ok_or_else(|| Status::data_loss("payload shorter than its sections"))?;
        out.push(payload[at..end].to_vec());
        at = end;
    }
    if at != payload.len() {
        return Err(Status::data_loss("payload longer than its sections"));
    }
    Ok(out)
}

/// `f32` parameters as little-endian bytes.
pub fn params_to_bytes(params: &[f32]) -> Vec<u8> {
    params.iter().flat_map(|p| p.to_le_bytes()).collect()
}

/// Little-endian bytes as `f32` parameters, checking the count and finiteness.
pub fn params_from_bytes(bytes: &[u8], expected: usize) -> Result<Vec<f32>, Status> {
    if bytes.len() != expected * 4 {
        return Err(Status::invalid_argument(format!("model of {} bytes, expected {}", bytes.len(), expected * 4)));
    }
    let params: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if params.iter().any(|p| !p.is_finite()) {
        return Err(Status::invalid_argument("model holds a non-finite parameter"));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_reassemble_and_bad_streams_are_refused() {
        let a = vec![1u8; CHUNK_BYTES + 10];
        let b = vec![2u8; 5];
        let parts = chunks(&[&a, &b]);
        assert_eq!(parts.len(), 2);
        let mut asm = Assembler::new((a.len() + b.len()) as u64, u64::MAX).unwrap();
        parts.iter().for_each(|p| asm.push(p).unwrap());
        let whole = asm.finish().unwrap();
        assert_eq!(split_sections(&whole, &[a.len() as u64, 5]).unwrap(), vec![a.clone(), b]);
        assert_eq!(Assembler::new(11, 10).unwrap_err().code(), tonic::Code::OutOfRange);
        let mut short = Assembler::new(10, 10).unwrap();
        short.push(&[0; 4]).unwrap();
        assert_eq!(short.push(&[0; 7]).unwrap_err().code(), tonic::Code::OutOfRange);
        assert_eq!(short.finish().unwrap_err().code(), tonic::Code::DataLoss);
    }
}
