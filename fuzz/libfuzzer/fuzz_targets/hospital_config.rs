//! libFuzzer binary of the `hospital_config` target (`fedcare_fuzz::hospital_config`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::hospital_config(data));
