//! libFuzzer binary of the `metrics_jsonl` target (`fedcare_fuzz::metrics_jsonl`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::metrics_jsonl(data));
