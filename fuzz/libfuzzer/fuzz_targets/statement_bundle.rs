//! libFuzzer binary of the `statement_bundle` target (`fedcare_fuzz::statement_bundle`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::statement_bundle(data));
