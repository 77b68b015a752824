//! libFuzzer binary of the `crypto_contribution_stream` target (`fedcare_fuzz::crypto_contribution_stream`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::crypto_contribution_stream(data));
