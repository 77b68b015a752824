//! libFuzzer binary of the `crypto_decryption_share` target (`fedcare_fuzz::crypto_decryption_share`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::crypto_decryption_share(data));
