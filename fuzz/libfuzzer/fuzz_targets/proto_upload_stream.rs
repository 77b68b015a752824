//! libFuzzer binary of the `proto_upload_stream` target (`fedcare_fuzz::proto_upload_stream`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedcare_fuzz::proto_upload_stream(data));
