//! libFuzzer binary of the `crypto_aggregate_masks` target (`fedcare_fuzz::crypto_aggregate_masks`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::crypto_aggregate_masks(data));
