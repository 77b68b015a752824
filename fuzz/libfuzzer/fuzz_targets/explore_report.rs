//! libFuzzer binary of the `explore_report` target (`fedcare_fuzz::explore_report`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::explore_report(data));
