//! libFuzzer binary of the `checkpoint` target (`fedcare_fuzz::checkpoint`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::checkpoint(data));
