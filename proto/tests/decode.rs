//! Every message of the protocol decodes random bytes into a value or an error, never a panic
//! (the bounded stand-in for a fuzzer that CI can run).

use fedcare_proto::v1;
use proptest::prelude::*;
use prost::Message;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = v1::JoinRequest::decode(bytes.as_slice());
        let _ = v1::JoinReply::decode(bytes.as_slice());
        let _ = v1::TaskRequest::decode(bytes.as_slice());
        let _ = v1::TaskChunk::decode(bytes.as_slice());
        let _ = v1::UploadChunk::decode(bytes.as_slice());
        let _ = v1::StatusReply::decode(bytes.as_slice());
        let _ = v1::FederationConfig::decode(bytes.as_slice());
    }
}

#[test]
fn an_upload_header_round_trips() {
    let chunk = v1::UploadChunk {
        part: Some(v1::upload_chunk::Part::Header(v1::UploadHeader {
            federation_id: "f".into(),
            session: Some(v1::Session { round: 3, attempt: 1 }),
            node_id: "h1".into(),
            kind: v1::UploadKind::Contribution as i32,
            total_bytes: 1 << 24,
        })),
    };
    assert_eq!(v1::UploadChunk::decode(chunk.encode_to_vec().as_slice()).unwrap(), chunk);
}
