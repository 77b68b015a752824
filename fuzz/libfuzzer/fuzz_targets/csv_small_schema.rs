//! libFuzzer binary of the `csv_small_schema` target (`fedcare_fuzz::csv_small_schema`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::csv_small_schema(data));
