//! libFuzzer binary of the `envelope` target (`fedcare_fuzz::envelope`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::envelope(data));
