//! Property tests of the fixed-point codec: encode, sum, decode is exact; clipping is counted;
//! overflowing configurations are refused.

use fedcare_core::{Codec, CodecConfig, Error};
use proptest::prelude::*;

fn config_strategy() -> impl Strategy<Value = CodecConfig> {
    (2u32..=40, 0u32..=30, 1u32..=4096, 2u32..=63).prop_map(|(value_bits, frac_bits, max_parties, plaintext_bits)| {
        CodecConfig { value_bits, frac_bits, max_parties, plaintext_bits }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any mix of up to max_parties encodings (including the extreme values) decodes to the exact
    /// integer sum of the parties' own encodings.
    #[test]
    fn sum_of_encodings_decodes_exactly(
        parties in 1usize..=64,
        len in 1usize..40,
        seed_values in proptest::collection::vec(-9.0f32..9.0, 64 * 40),
        extremes in proptest::collection::vec(0u8..4, 64 * 40),
        weights in proptest::collection::vec(0.01f64..1.0, 64),
    ) {
        let codec = Codec::new(CodecConfig::default()).unwrap();
        let limit = codec.max_value() as f32;
        let mut sum = vec![0u64; len];
        let mut expected = vec![0i64; len];
        for (party, &weight) in weights.iter().enumerate().take(parties) {
            let values: Vec<f32> = (0..len).map(|i| {
                let k = party * len + i;
                match extremes[k] { 0 => limit, 1 => -limit, _ => seed_values[k] }
            }).collect();
            let encoded = codec.encode(&values, weight).unwrap();
            let own = codec.decode_sum_integers(&encoded.words, 1).unwrap();
            for (e, o) in expected.iter_mut().zip(&own) {
                *e += o;
            }
            codec.add_assign(&mut sum, &encoded.words).unwrap();
        }
        prop_assert_eq!(codec.decode_sum_integers(&sum, parties as u32).unwrap(), expected.clone());
        let decoded = codec.decode_sum(&sum, parties as u32).unwrap();
        for (d, e) in decoded.iter().zip(&expected) {
            prop_assert_eq!(*d, (*e as f64 * codec.resolution()) as f32);
        }
    }

    /// Encoding then decoding one value is within half a step, or clipped and counted.
    #[test]
    fn out_of_range_values_are_clipped_and_counted(values in proptest::collection::vec(-100.0f32..100.0, 1..200)) {
        let codec = Codec::new(CodecConfig::default()).unwrap();
        let encoded = codec.encode(&values, 1.0).unwrap();
        let decoded = codec.decode_sum(&encoded.words, 1).unwrap();
        let mut clipped = 0;
        for (&v, &d) in values.iter().zip(&decoded) {
            if f64::from(v).abs() > codec.max_value() + codec.resolution() / 2.0 {
                clipped += 1;
                prop_assert!((f64::from(d).abs() - codec.max_value()).abs() < 1e-6);
                prop_assert_eq!(d.signum(), v.signum());
            } else {
                prop_assert!((f64::from(d) - f64::from(v)).abs() <= codec.resolution() / 2.0 + 1e-6);
            }
        }
        prop_assert_eq!(encoded.clipped, clipped);
    }

    /// A configuration is accepted exactly when its worst-case sum fits the plaintext space, and
    /// an accepted one never overflows at its worst case.
    #[test]
    fn overflowing_configurations_are_refused(config in config_strategy()) {
        let max_integer = (1i128 << (config.value_bits - 1)) - 1;
        let fits = config.plaintext_bits >= config.value_bits
            && i128::from(config.max_parties) * max_integer < (1i128 << (config.plaintext_bits - 1));
        match Codec::new(config) {
            Ok(codec) => {
                prop_assert!(fits);
                let parties = config.max_parties.min(300);
                let top = vec![codec.max_value() as f32 * 2.0; 1];
                let mut sum = vec![0u64; 1];
                for _ in 0..parties {
                    codec.add_assign(&mut sum, &codec.encode(&top, 1.0).unwrap().words).unwrap();
                }
                prop_assert_eq!(codec.decode_sum_integers(&sum, parties).unwrap()[0], i64::from(parties) * max_integer as i64);
            }
            Err(Error::CodecOverflow { .. }) => prop_assert!(!fits),
            Err(Error::InvalidCodec { name, .. }) => prop_assert_eq!(name, "plaintext_bits"),
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }
}

#[test]
fn the_designs_headroom_takes_64_parties_and_refuses_65() {
    let ok = CodecConfig { max_parties: 64, ..CodecConfig::default() };
    assert!(Codec::new(ok).is_ok());
    let over = CodecConfig { max_parties: 65, ..CodecConfig::default() };
    assert_eq!(Codec::new(over), Err(Error::CodecOverflow { value_bits: 24, max_parties: 65, plaintext_bits: 30 }));
}
