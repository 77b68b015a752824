//! libFuzzer binary of the `server_state` target (`fedcare_fuzz::server_state`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::server_state(data));
