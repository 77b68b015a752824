//! Every message of the protocol decodes random bytes into a value or an error, never a panic
//! (the bounded stand-in for a fuzzer that CI can run), and whatever decodes encodes back to a
//! message that decodes to the same value.

use fedcare_proto::v1;
use proptest::prelude::*;
use prost::Message;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check::<v1::JoinRequest>(&bytes)?;
        check::<v1::JoinReply>(&bytes)?;
        check::<v1::TaskRequest>(&bytes)?;
        check::<v1::TaskChunk>(&bytes)?;
        check::<v1::UploadChunk>(&bytes)?;
        check::<v1::StatusReply>(&bytes)?;
        check::<v1::LeaveRequest>(&bytes)?;
        check::<v1::FederationConfig>(&bytes)?;
    }
}

/// Decoding `bytes` as `M` either fails or gives a value that survives a round trip.
fn check<M: Message + Default + PartialEq + core::fmt::Debug>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(message) = M::decode(bytes) {
        let again = M::decode(message.encode_to_vec().as_slice());
        prop_assert_eq!(again.as_ref(), Ok(&message));
    }
    Ok(())
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
