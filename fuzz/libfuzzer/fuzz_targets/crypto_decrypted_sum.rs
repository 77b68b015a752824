//! libFuzzer binary of the `crypto_decrypted_sum` target (`fedcare_fuzz::crypto_decrypted_sum`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::crypto_decrypted_sum(data));
