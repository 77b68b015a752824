//! The byte form of a model's parameters: little-endian `f32`s, the form every task carries
//! and every state digest covers. Decoding checks the count and that every value is finite.

use bytes::Bytes;

use crate::error::ProtocolError;

/// `f32` parameters as little-endian bytes.
pub fn params_to_bytes(params: &[f32]) -> Bytes {
    if cfg!(target_endian = "little") {
        Bytes::copy_from_slice(bytemuck::cast_slice(params))
    } else {
        params.iter().flat_map(|p| p.to_le_bytes()).collect::<Vec<u8>>().into()
    }
}

/// Little-endian bytes as `f32` parameters, checking the count and finiteness.
pub fn params_from_bytes(bytes: &[u8], expected: usize) -> Result<Vec<f32>, ProtocolError> {
    if bytes.len() != expected * 4 {
        return Err(ProtocolError::Invalid {
            field: "model",
            value: format!("{} bytes", bytes.len()),
            expected: format!("{} bytes ({expected} parameters)", expected * 4),
        });
    }
    let params: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if let Some(index) = params.iter().position(|p| !p.is_finite()) {
        return Err(ProtocolError::Model(fedcare_core::Error::NonFiniteValue { index }));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_round_trip_and_bad_models_are_refused() {
        let params = [0.5f32, -1.25, 3.0];
        assert_eq!(params_from_bytes(&params_to_bytes(&params), 3).unwrap(), params);
        assert!(matches!(params_from_bytes(&params_to_bytes(&params), 4), Err(ProtocolError::Invalid { .. })));
        let nan = params_to_bytes(&[1.0, f32::NAN]);
        assert!(matches!(params_from_bytes(&nan, 2), Err(ProtocolError::Model(_))));
    }
}
