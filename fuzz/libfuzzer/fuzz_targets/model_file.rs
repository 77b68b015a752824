//! libFuzzer binary of the `model_file` target (`fedcare_fuzz::model_file`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::model_file(data));
