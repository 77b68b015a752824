//! libFuzzer binary of the `signed_statement` target (`fedcare_fuzz::signed_statement`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::signed_statement(data));
