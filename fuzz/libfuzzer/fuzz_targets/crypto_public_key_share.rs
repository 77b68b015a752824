//! libFuzzer binary of the `crypto_public_key_share` target (`fedcare_fuzz::crypto_public_key_share`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::crypto_public_key_share(data));
