//! libFuzzer binary of the `csv_diabetes130` target (`fedcare_fuzz::csv_diabetes130`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::csv_diabetes130(data));
