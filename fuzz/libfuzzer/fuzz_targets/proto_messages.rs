//! libFuzzer binary of the `proto_messages` target (`fedcare_fuzz::proto_messages`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::proto_messages(data));
