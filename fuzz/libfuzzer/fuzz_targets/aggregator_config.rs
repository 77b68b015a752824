//! libFuzzer binary of the `aggregator_config` target (`fedcare_fuzz::aggregator_config`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::aggregator_config(data));
