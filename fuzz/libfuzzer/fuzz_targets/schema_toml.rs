//! libFuzzer binary of the `schema_toml` target (`fedcare_fuzz::schema_toml`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::schema_toml(data));
