//! libFuzzer binary of the `proto_join_reply` target (`fedcare_fuzz::proto_join_reply`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::proto_join_reply(data));
