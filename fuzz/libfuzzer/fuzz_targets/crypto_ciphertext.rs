//! libFuzzer binary of the `crypto_ciphertext` target (`fedcare_fuzz::crypto_ciphertext`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::crypto_ciphertext(data));
