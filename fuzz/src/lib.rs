//! # fedcare-fuzz
//!
//! One fuzz target per decoder that a peer or a file can reach, as a plain function of the input
//! bytes ([`TARGETS`]): the protobuf messages a peer sends and their conversions into protocol
//! types, signed statements and their relayed bundles, every crypto wire message a peer sends
//! (and the aggregator's streaming reception of a contribution), the model file, the checkpoint,
//! the common envelope, the server state a task carries, a hospital's CSV through a schema,
//! schema TOML, both configuration files, `explore.json` and `metrics.jsonl`.
//!
//! Each target feeds its bytes to the public decoder. An `Err` is the expected answer to bad
//! bytes; a panic is a finding. Where the format has an encoder, a decoded value is encoded
//! again and the round trip must be stable: what the encoder writes decodes, and encodes to the
//! same bytes (`decode(encode(x))` equals `x` wherever the type has no floats; where it has,
//! the bytes are compared, so that a NaN does not count as a change).
//!
//! Formats in the checksummed envelope (`fedcare_core::envelope`) are decoded twice: as given,
//! and with the envelope's length and CRC-32 rewritten to fit the payload ([`repaired`]), so that
//! a mutated payload reaches the field decoders instead of stopping at the checksum.
//!
//! The same functions run three ways: under libFuzzer (`fuzz/libfuzzer`, one binary per target,
//! `fuzz/run.sh`), over every committed input as an ordinary test on the stable toolchain
//! (`tests/corpus.rs`, part of `cargo test --workspace`), and on the inputs that
//! `examples/seeds.rs` makes. Inputs above [`MAX_INPUT`] are ignored, so the fuzzer stays fast.
#![forbid(unsafe_code)]

use core::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use fedcare_core::envelope::{self, Format};
use fedcare_core::explore::{ExploreReport, resolve_columns};
use fedcare_core::top_k::choose_top_k;
use fedcare_core::{ColumnStats, ModelFile, ServerOptimizerConfig};
use fedcare_crypto::wire::WireMessage;
use fedcare_crypto::{
    AggregateBuilder, AggregateMasks, Ciphertext, CollectivePublicKey, Crs, DecryptedSum, DecryptionShare,
    KeyShareCollector, MaskFingerprint, PARAMS_V2, PartyId, PublicKeyShare, WireLimits,
};
use fedcare_data::{BadRows, Schema, read_csv_bytes, record_lines};
use fedcare_federation::config::{AggregatorConfig, HospitalConfig};
use fedcare_federation::convert;
use fedcare_federation::persistence::{metrics_text, parse_metrics};
use fedcare_federation::transfer::{Assembler, split_sections};
use fedcare_proto::v1;
use fedcare_protocol::checkpoint::{CHECKPOINT_FORMAT, Checkpoint};
use fedcare_protocol::roster::Consortium;
use fedcare_protocol::selection::ServerState;
use fedcare_protocol::signing::Signed;
use fedcare_protocol::transcript::{Claim, Endorsed, Statement, check_endorsements, decode_bundle, encode_bundle};
use fedcare_protocol::{FileDigest, NodeId, StateDigest};
use prost::Message;

/// The largest input a target reads; larger ones return at once.
pub const MAX_INPUT: usize = 1 << 20;

/// The wire limits of the crypto targets: small, so that a length field near them is cheap.
pub const WIRE_LIMITS: WireLimits = WireLimits { max_values: 64 };

/// The party whose contribution [`crypto_contribution_stream`] receives.
pub const STREAM_PARTY: &str = "hospital-a";

/// The schema of [`csv_small_schema`]: numeric columns (with edges, plain, an age band, a count
/// of earlier rows in the group), categorical ones (a vocabulary, an ICD-9 group, `top_k`
/// buckets), a group and a drop rule.
pub const SMALL_SCHEMA: &str = r#"
id = "wards/v1"
label = { column = "died", positive = ["yes"] }
group = "patient"
drop_if = [["ward", "morgue"]]

[[numeric]]
name = "age"
edges = [20, 40, 60]

[[numeric]]
name = "stay"

[[numeric]]
name = "band"
transform = "age_band"

[[numeric]]
name = "visit"
transform = "earlier_in_group"

[[categorical]]
name = "sex"
vocabulary = ["F", "M"]

[[categorical]]
name = "diagnosis"
vocabulary = ["circulatory", "diabetes", "other"]
transform = "icd9_group"

[[categorical]]
name = "ward"
top_k = 2
buckets = 16
"#;

/// A fuzz target: its name (the corpus folder and the libFuzzer binary), what it decodes, and
/// its function.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The name of its corpus folder (`corpus/<name>`) and of its libFuzzer binary.
    pub name: &'static str,
    /// The decoder it drives, in words.
    pub decoder: &'static str,
    /// Feeds one input to the decoder; panics on a finding.
    pub run: fn(&[u8]),
}

macro_rules! targets {
    ($($name:ident: $decoder:literal),* $(,)?) => {
        /// Every fuzz target, in the order `fuzz/run.sh` runs them.
        pub const TARGETS: &[Target] = &[$(Target { name: stringify!($name), decoder: $decoder, run: $name }),*];
    };
}

targets! {
    proto_join_reply: "v1::JoinReply (prost) -> convert::settings_from_proto -> Consortium::check_settings; settings_to_proto round trip and digest",
    proto_task_stream: "a stream of v1::TaskChunk (prost, length-delimited) -> transfer::Assembler, split_sections -> convert::task_from_proto; task_header round trip",
    proto_upload_stream: "a stream of v1::UploadChunk (prost, length-delimited) -> convert::upload_header_from_proto, transfer::Assembler; upload_header_to_proto round trip",
    proto_messages: "v1::JoinRequest, TaskRequest (session_from_proto), LeaveRequest, StatusRequest, StatusReply, Session (prost), by the first byte; prost round trip",
    signed_statement: "postcard Signed -> Signed::verify, Statement::of, Consortium::check, Statement::check_context, a key share claim -> PublicKeyShare::decode, a fingerprint claim -> MaskFingerprint::from_bytes; postcard round trips",
    statement_bundle: "transcript::decode_bundle -> Statement::of; check_endorsements (file and state); encode_bundle round trip",
    crypto_public_key_share: "PublicKeyShare::decode (PARAMS_V2, small WireLimits); encode round trip",
    crypto_ciphertext: "Ciphertext::decode (PARAMS_V2, small WireLimits); encode round trip",
    crypto_aggregate_masks: "AggregateMasks::decode (PARAMS_V2, small WireLimits); encode round trip",
    crypto_decryption_share: "DecryptionShare::decode (PARAMS_V2, small WireLimits); encode round trip",
    crypto_decrypted_sum: "DecryptedSum::decode (PARAMS_V2, small WireLimits); encode round trip",
    crypto_contribution_stream: "AggregateBuilder::begin, ContributionStream::read piece by piece, add_run, commit; checked against Ciphertext::decode and AggregateBuilder::add of the whole",
    model_file: "ModelFile::from_bytes (formats 3 to 5) -> transcript::endorsements; to_bytes round trip",
    checkpoint: "Checkpoint::from_bytes; to_bytes round trip",
    envelope: "envelope::Format::open and header for the model file, checkpoint and crypto formats; seal round trip",
    server_state: "postcard ServerState (a Confirm task's section) -> ServerState::check (FedAvg, FedAdam); postcard round trip",
    csv_diabetes130: "read_csv_bytes on Schema::diabetes130 -> moments, buckets, top_k, explore counts, split, to_dataset_with",
    csv_small_schema: "read_csv_bytes on SMALL_SCHEMA -> moments, buckets, top_k, explore counts, split, to_dataset_with",
    schema_toml: "Schema::from_toml -> width, top_k_shapes, explore_columns, feature_names",
    aggregator_config: "toml AggregatorConfig -> plan(); toml round trip",
    hospital_config: "toml HospitalConfig; toml round trip",
    explore_report: "serde_json ExploreReport (explore.json); JSON round trip",
    metrics_jsonl: "persistence::parse_metrics (metrics.jsonl); metrics_text round trip",
}

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// `bytes` with the common envelope's length and CRC-32 rewritten to fit the payload after its
/// 18-byte header (`None` when there is no header, or the payload is too long for one).
pub fn repaired(bytes: &[u8]) -> Option<Vec<u8>> {
    let payload = bytes.get(envelope::HEADER_LEN..)?;
    let length = u32::try_from(payload.len()).ok()?;
    let mut out = bytes.to_vec();
    out[10..14].copy_from_slice(&length.to_le_bytes());
    out[14..18].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    Some(out)
}

/// The input as given, then repaired when that changes it.
fn with_repaired(data: &[u8], mut run: impl FnMut(&[u8])) {
    run(data);
    if let Some(fixed) = repaired(data).filter(|fixed| fixed.as_slice() != data) {
        run(&fixed);
    }
}

/// Whether the input is too large to look at.
fn too_large(data: &[u8]) -> bool {
    data.len() > MAX_INPUT
}

/// Re-encoding `message` and decoding it gives the same message, and the same bytes again.
fn prost_stable<M: Message + Default + PartialEq + core::fmt::Debug>(message: &M) {
    let bytes = message.encode_to_vec();
    let again = M::decode(bytes.as_slice()).expect("prost decodes what it encoded");
    assert_eq!(again.encode_to_vec(), bytes, "prost re-encodes a message to other bytes");
}

/// Postcard encodes `value`, decodes it back, and encodes it to the same bytes; returns the value
/// read back.
fn postcard_stable<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T, what: &str) -> T {
    let bytes = postcard::to_allocvec(value).unwrap_or_else(|e| panic!("a decoded {what} does not encode: {e}"));
    let again: T = postcard::from_bytes(&bytes).unwrap_or_else(|e| panic!("an encoded {what} does not decode: {e}"));
    let bytes_again =
        postcard::to_allocvec(&again).unwrap_or_else(|e| panic!("a {what} read back does not encode: {e}"));
    assert_eq!(bytes_again, bytes, "a {what} encodes to other bytes once read back");
    again
}

// ---------------------------------------------------------------------------------------------
// Protobuf messages into protocol types.

/// A hospital's `JoinReply`: the federation's settings as it receives them.
pub fn proto_join_reply(data: &[u8]) {
    if too_large(data) {
        return;
    }
    let Ok(reply) = v1::JoinReply::decode(data) else { return };
    prost_stable(&reply);
    let Some(config) = reply.config else { return };
    let Ok(settings) = convert::settings_from_proto(&config) else { return };
    let _ = Consortium::new(BTreeMap::new()).check_settings(&settings);
    let _ = settings.layout.setup_statistics();
    // The settings' own wire form reads back to settings with that same wire form, whose digest
    // is the one the aggregator computes.
    let wire = convert::settings_to_proto(&settings);
    let again = convert::settings_from_proto(&wire)
        .unwrap_or_else(|e| panic!("settings read from a peer do not read back from their own wire form: {e}"));
    assert_eq!(
        convert::settings_to_proto(&again).encode_to_vec(),
        wire.encode_to_vec(),
        "the settings' wire form changes once read back"
    );
    assert_eq!(again.digest, convert::settings_digest(&again), "the digest is not that of the wire form");
}

/// A hospital's reception of a task, as `fetch_task` reads the stream: one header, then data
/// chunks up to the total its sections announce (the chunks are length-delimited messages).
pub fn proto_task_stream(data: &[u8]) {
    if too_large(data) {
        return;
    }
    let mut rest = data;
    let Ok(first) = v1::TaskChunk::decode_length_delimited(&mut rest) else { return };
    let Some(v1::task_chunk::Part::Header(header)) = first.part else { return };
    let total = header.section_sizes.iter().try_fold(0u64, |sum, &s| sum.checked_add(s)).unwrap_or(u64::MAX);
    let Ok(mut assembler) = Assembler::new(total, MAX_INPUT as u64) else { return };
    while !rest.is_empty() {
        let Ok(chunk) = v1::TaskChunk::decode_length_delimited(&mut rest) else { return };
        let Some(v1::task_chunk::Part::Data(bytes)) = chunk.part else { return };
        if assembler.push(&bytes).is_err() {
            return;
        }
    }
    let Ok(payload) = assembler.finish() else { return };
    let Ok(sections) = split_sections(&payload, &header.section_sizes) else { return };
    assert_eq!(sections.len(), header.section_sizes.len(), "one section per announced size");
    let Ok(task) = convert::task_from_proto(&header, sections) else { return };
    let _ = task.key();
    let wire = convert::task_header(&task);
    assert_eq!(wire.section_sizes, header.section_sizes, "the sections' sizes change");
    let again = convert::task_from_proto(&wire, task.sections.clone())
        .unwrap_or_else(|e| panic!("a task read from a peer does not read back from its own header: {e}"));
    assert_eq!(
        convert::task_header(&again).encode_to_vec(),
        wire.encode_to_vec(),
        "the task header changes once read back"
    );
    assert_eq!(
        (again.kind, again.session, again.session_kind, again.crs),
        (task.kind, task.session, task.session_kind, task.crs)
    );
}

/// The aggregator's reception of an upload: one header, then data chunks up to its total.
pub fn proto_upload_stream(data: &[u8]) {
    if too_large(data) {
        return;
    }
    let mut rest = data;
    let Ok(first) = v1::UploadChunk::decode_length_delimited(&mut rest) else { return };
    let Some(v1::upload_chunk::Part::Header(wire)) = first.part else { return };
    let header = convert::upload_header_from_proto(&wire);
    let back = convert::upload_header_to_proto(&header, wire.total_bytes);
    assert_eq!(convert::upload_header_from_proto(&back), header, "an upload header changes once read back");
    let Ok(mut assembler) = Assembler::new(wire.total_bytes, MAX_INPUT as u64) else { return };
    while !rest.is_empty() {
        let Ok(chunk) = v1::UploadChunk::decode_length_delimited(&mut rest) else { return };
        let Some(v1::upload_chunk::Part::Data(bytes)) = chunk.part else { return };
        if assembler.push(&bytes).is_err() {
            return;
        }
    }
    if let Ok(payload) = assembler.finish() {
        assert_eq!(payload.len() as u64, wire.total_bytes, "an upload of another size than announced");
    }
}

/// The other messages of the service, chosen by the first byte.
pub fn proto_messages(data: &[u8]) {
    if too_large(data) {
        return;
    }
    let Some((&which, bytes)) = data.split_first() else { return };
    match which % 6 {
        0 => {
            if let Ok(request) = v1::JoinRequest::decode(bytes) {
                prost_stable(&request);
            }
        }
        1 => {
            if let Ok(request) = v1::TaskRequest::decode(bytes) {
                prost_stable(&request);
                if let Some(session) = request.after {
                    let id = convert::session_from_proto(session);
                    assert_eq!(convert::session_to_proto(id), session, "a session changes once read back");
                }
            }
        }
        2 => {
            if let Ok(request) = v1::LeaveRequest::decode(bytes) {
                prost_stable(&request);
                // What the aggregator keeps of the reason for its log.
                let _: String = request.reason.chars().take(500).collect();
            }
        }
        3 => {
            if let Ok(request) = v1::StatusRequest::decode(bytes) {
                prost_stable(&request);
            }
        }
        4 => {
            if let Ok(reply) = v1::StatusReply::decode(bytes) {
                prost_stable(&reply);
            }
        }
        _ => {
            if let Ok(session) = v1::Session::decode(bytes) {
                prost_stable(&session);
                assert_eq!(convert::session_to_proto(convert::session_from_proto(session)), session);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Signed statements.

/// A signed statement, as the coordinator reads an upload and a hospital a relayed one.
pub fn signed_statement(data: &[u8]) {
    if too_large(data) {
        return;
    }
    let Ok(signed) = postcard::from_bytes::<Signed>(data) else { return };
    assert!(
        NodeId::new(signed.signer.as_str()).is_ok(),
        "a decoded signer is not a valid node id: {:?}",
        signed.signer
    );
    assert_eq!(postcard_stable(&signed, "signed statement"), signed);
    let verified = signed.verify().is_ok();
    let pins = BTreeMap::from([(signed.signer.as_str().to_owned(), signed.public_key.fingerprint())]);
    assert_eq!(Consortium::new(pins).check(&signed).is_ok(), verified, "the roster check differs from the signature's");
    let Ok(statement) = Statement::of(&signed) else { return };
    assert_eq!(postcard_stable(&statement, "statement"), statement);
    statement
        .check_context(&signed.signer, &statement, statement.claim.step())
        .unwrap_or_else(|e| panic!("a statement is refused in its own context: {e}"));
    match &statement.claim {
        Claim::KeyShare(bytes) => crypto_public_key_share(bytes),
        Claim::Fingerprint { fingerprint, .. } | Claim::SumFingerprint { fingerprint, .. } => {
            if let Some(parsed) = MaskFingerprint::from_bytes(fingerprint) {
                assert_eq!(&parsed.to_bytes(), fingerprint, "a mask fingerprint changes once read back");
            }
        }
        _ => {}
    }
}

/// A relayed bundle of signed statements, and the same bytes as endorsements.
pub fn statement_bundle(data: &[u8]) {
    if too_large(data) {
        return;
    }
    let first_output = match decode_bundle(data) {
        Ok(bundle) => {
            let encoded = encode_bundle(&bundle);
            let again = decode_bundle(&encoded).unwrap_or_else(|e| panic!("an encoded bundle does not decode: {e}"));
            assert_eq!(again, bundle, "a bundle changes once read back");
            let statements: Vec<Statement> = bundle.iter().filter_map(|s| Statement::of(s).ok()).collect();
            statements.iter().find_map(|s| match s.claim {
                Claim::Output { state, file, .. } => Some((state, file)),
                _ => None,
            })
        }
        Err(_) => None,
    };
    let (state, file) = first_output.unwrap_or((StateDigest([0; 32]), FileDigest([0; 32])));
    let _ = check_endorsements(data, Endorsed::File(file));
    let _ = check_endorsements(data, Endorsed::State(state));
}

// ---------------------------------------------------------------------------------------------
// The crypto wire.

/// Decodes `data` (as given and repaired) as an `M`; a decoded message encodes, decodes back to
/// itself, and encodes to the same bytes.
fn crypto_message<M: WireMessage + PartialEq + core::fmt::Debug>(data: &[u8]) {
    if too_large(data) {
        return;
    }
    with_repaired(data, |bytes| {
        let Ok(message) = M::decode(bytes, &PARAMS_V2, &WIRE_LIMITS) else { return };
        let encoded = message.encode().unwrap_or_else(|e| panic!("a decoded {} does not encode: {e}", M::NAME));
        let again = M::decode(&encoded, &PARAMS_V2, &WIRE_LIMITS)
            .unwrap_or_else(|e| panic!("an encoded {} does not decode: {e}", M::NAME));
        assert_eq!(again, message, "a {} changes once read back", M::NAME);
        assert_eq!(again.encode().ok(), Some(encoded), "a {} encodes to other bytes once read back", M::NAME);
    });
}

/// A hospital's public key share (relayed in a key share statement).
pub fn crypto_public_key_share(data: &[u8]) {
    crypto_message::<PublicKeyShare>(data);
}

/// A hospital's contribution, decoded whole.
pub fn crypto_ciphertext(data: &[u8]) {
    crypto_message::<Ciphertext>(data);
}

/// The aggregate masks a hospital receives in a Challenge task.
pub fn crypto_aggregate_masks(data: &[u8]) {
    crypto_message::<AggregateMasks>(data);
}

/// A hospital's decryption share.
pub fn crypto_decryption_share(data: &[u8]) {
    crypto_message::<DecryptionShare>(data);
}

/// The decrypted sum a hospital receives in a Result task, or uploads to a resuming aggregator.
pub fn crypto_decrypted_sum(data: &[u8]) {
    crypto_message::<DecryptedSum>(data);
}

thread_local! {
    /// The collective key of [`crypto_contribution_stream`]'s last CRS.
    static STREAM_KEY: RefCell<Option<CollectivePublicKey>> = const { RefCell::new(None) };
}

/// A collective key for `crs` whose only key holder is [`STREAM_PARTY`] (its words are zero:
/// the aggregator never reads them).
fn stream_key(crs: Crs) -> CollectivePublicKey {
    STREAM_KEY.with(|cell| {
        let mut cached = cell.borrow_mut();
        if let Some(key) = cached.as_ref().filter(|key| key.crs() == crs) {
            return key.clone();
        }
        let mut payload = PARAMS_V2.id.to_le_bytes().to_vec();
        payload.push(PublicKeyShare::KIND);
        payload.extend_from_slice(&crs.0.to_le_bytes());
        payload.push(STREAM_PARTY.len() as u8);
        payload.extend_from_slice(STREAM_PARTY.as_bytes());
        payload.resize(payload.len() + 8 * PARAMS_V2.n(), 0);
        // Invariant: a hand-made share of the parameter set's size, in its envelope, decodes.
        let bytes = fedcare_crypto::wire::FORMAT.seal(&payload).expect("a share fits an envelope");
        let share = PublicKeyShare::decode(&bytes, &PARAMS_V2, &WireLimits::default()).expect("a well-formed share");
        let mut collector = KeyShareCollector::new(PARAMS_V2, crs);
        collector.add(share).expect("the first share of its round");
        let key = collector.collective_key().expect("one party is within the noise budget");
        *cached = Some(key.clone());
        key
    })
}

/// The aggregator's reception of one contribution piece by piece, as its upload streams in. The
/// first byte sets the piece size (0: the whole message at once; `b`: `97·b` bytes), the rest is
/// the message (its envelope repaired first). The builder is made for the CRS and the value
/// count the message's own head names (capped at [`WIRE_LIMITS`]), so that the fuzzer reaches the
/// words. Whatever the pieces, the stream accepts exactly the messages that decode whole, with
/// the same hash, and adds the same sum.
pub fn crypto_contribution_stream(data: &[u8]) {
    let Some((&split, message)) = data.split_first() else { return };
    if too_large(message) {
        return;
    }
    let message = repaired(message).unwrap_or_else(|| message.to_vec());
    let head = fedcare_crypto::wire::HEADER_LEN;
    let crs = message.get(head..head + 16).map_or(0, |b| u128::from_le_bytes(b.try_into().unwrap_or([0; 16])));
    let len = message.get(head + 16..head + 24).map_or(1, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    let len = usize::try_from(len).unwrap_or(usize::MAX).clamp(1, WIRE_LIMITS.max_values);
    let crs = Crs(crs);
    let key = stream_key(crs);
    let party = PartyId::new(STREAM_PARTY).expect("a valid party id");
    let mut builder = AggregateBuilder::new(PARAMS_V2, &key, len);
    let mut stream = builder.begin(party.clone()).expect("the key's holder may begin");
    let piece = if split == 0 { message.len().max(1) } else { 97 * usize::from(split) };
    let mut read = Ok(());
    for chunk in message.chunks(piece) {
        read = stream.read(chunk).and_then(|()| builder.add_run(&stream));
        if read.is_err() {
            break;
        }
    }
    let streamed = match read {
        Ok(()) => builder.commit(stream),
        Err(error) => {
            builder.abandon(&party, &error.to_string());
            Err(error)
        }
    };
    let whole =
        Ciphertext::decode(&message, &PARAMS_V2, &WIRE_LIMITS).ok().filter(|c| c.crs() == crs && c.len() == len);
    match (streamed, whole) {
        (Ok(hash), Some(ciphertext)) => {
            assert_eq!(hash, ciphertext.hash(), "the streamed contribution's hash is not the ciphertext's");
            let streamed_sum = builder.finish().unwrap_or_else(|e| panic!("a streamed sum does not finish: {e}"));
            let mut whole_builder = AggregateBuilder::new(PARAMS_V2, &key, len);
            whole_builder.add(party, &ciphertext).unwrap_or_else(|e| panic!("a whole ciphertext is refused: {e}"));
            let whole_sum = whole_builder.finish().unwrap_or_else(|e| panic!("a whole sum does not finish: {e}"));
            assert_eq!(streamed_sum.masks(), whole_sum.masks(), "the streamed sum is not the whole one");
        }
        (Ok(_), None) => panic!("the stream accepted a contribution that does not decode whole"),
        (Err(error), Some(_)) => panic!("the stream refused a contribution that decodes whole: {error}"),
        (Err(_), None) => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Files in the envelope, and what a task carries.

/// A model file (formats 3 to 5), as `fedcare predict` and a hospital read it.
pub fn model_file(data: &[u8]) {
    if too_large(data) {
        return;
    }
    with_repaired(data, |bytes| {
        let Ok(file) = ModelFile::from_bytes(bytes) else { return };
        let _ = file.probability(0.5);
        let _ = fedcare_protocol::transcript::endorsements(&file);
        let encoded = file.to_bytes().unwrap_or_else(|e| panic!("a decoded model file does not encode: {e}"));
        let again =
            ModelFile::from_bytes(&encoded).unwrap_or_else(|e| panic!("an encoded model file does not decode: {e}"));
        assert_eq!(again.to_bytes().ok(), Some(encoded), "a model file encodes to other bytes once read back");
        let _ = again.endorsed_bytes();
    });
}

/// The aggregator's checkpoint, as a restarted aggregator reads it.
pub fn checkpoint(data: &[u8]) {
    if too_large(data) {
        return;
    }
    with_repaired(data, |bytes| {
        let Ok(checkpoint) = Checkpoint::from_bytes(bytes) else { return };
        let encoded = checkpoint.to_bytes().unwrap_or_else(|e| panic!("a decoded checkpoint does not encode: {e}"));
        let again =
            Checkpoint::from_bytes(&encoded).unwrap_or_else(|e| panic!("an encoded checkpoint does not decode: {e}"));
        assert_eq!(again.to_bytes().ok(), Some(encoded), "a checkpoint encodes to other bytes once read back");
    });
}

/// The common envelope of every format: an opened envelope seals back to the same bytes.
pub fn envelope(data: &[u8]) {
    if too_large(data) {
        return;
    }
    const FORMATS: [Format; 3] = [fedcare_core::model_file::FORMAT, CHECKPOINT_FORMAT, fedcare_crypto::wire::FORMAT];
    with_repaired(data, |bytes| {
        for format in FORMATS {
            let header = format.header(bytes);
            match format.open(bytes, MAX_INPUT) {
                Ok(payload) => {
                    let header = header.unwrap_or_else(|e| panic!("an envelope opens but its header does not: {e}"));
                    assert_eq!((header.length, header.checksum), (payload.len(), crc32fast::hash(payload)));
                    let sealed =
                        format.seal(payload).unwrap_or_else(|e| panic!("an opened payload does not seal: {e}"));
                    assert_eq!(sealed, bytes, "an opened envelope seals to other bytes");
                }
                Err(_) => {
                    let _ = header;
                }
            }
        }
    });
}

/// The server state a Confirm task carries (postcard), checked against both server rules.
pub fn server_state(data: &[u8]) {
    if too_large(data) {
        return;
    }
    let Ok(state) = postcard::from_bytes::<ServerState>(data) else { return };
    let len = state.best.as_ref().map_or(0, |best| best.params.len());
    let _ = state.check(ServerOptimizerConfig::FedAvg { lr: 1.0 }, len);
    let _ = state.check(ServerOptimizerConfig::FedAdam { lr: 0.1, beta1: 0.9, beta2: 0.99, tau: 0.01 }, len);
    postcard_stable(&state, "server state");
}

// ---------------------------------------------------------------------------------------------
// A hospital's files.

/// A CSV through `schema` the way a hospital reads it and uses it: both bad-row policies, the
/// setup counts, the `top_k` choice, the exploration counts, the split and the encoding.
fn csv_through(schema: &Schema, data: &[u8]) {
    let lines = record_lines(data);
    for bad_rows in [BadRows::Reject, BadRows::Skip { limit: 1000 }] {
        let Ok((table, report)) = read_csv_bytes(data, Path::new("fuzz.csv"), schema, bad_rows) else { continue };
        assert_eq!(table.rows(), report.rows, "the report counts other rows than the table holds");
        assert!(
            table.lines().iter().all(|line| lines.binary_search(line).is_ok()),
            "a kept row's line is not one of the file's records"
        );
        let _ = report.summary();
        let stats: Vec<ColumnStats> = table.numeric_moments().iter().map(|m| m.stats()).collect();
        let bounded: Vec<(f64, f64)> =
            schema.numeric.iter().map(|c| c.value_range().unwrap_or((f64::NEG_INFINITY, f64::INFINITY))).collect();
        let _ = table.numeric_moments_within(&bounded);
        let buckets = table.bucket_counts(schema);
        let top_k: Vec<Vec<u32>> = (schema.top_k_shapes().iter().zip(&buckets))
            .map(|(shape, counts)| choose_top_k(counts, shape.k as usize))
            .collect();
        let columns = resolve_columns(&schema.explore_columns(), &stats);
        let _ = table.explore_counts(schema, &columns);
        let _ = table.to_dataset_with(schema, &stats, &top_k);
        if let Ok((train, test)) = table.split_for_evaluation(0.25, 7) {
            assert_eq!(train.rows() + test.rows(), table.rows(), "a split loses or makes rows");
            let _ = train.to_dataset_with(schema, &stats, &top_k);
        }
    }
}

/// A CSV file of the UCI Diabetes-130 layout, through the built-in schema.
pub fn csv_diabetes130(data: &[u8]) {
    if too_large(data) {
        return;
    }
    thread_local! {
        static SCHEMA: Schema = Schema::diabetes130(true);
    }
    SCHEMA.with(|schema| csv_through(schema, data));
}

/// A CSV file through [`SMALL_SCHEMA`].
pub fn csv_small_schema(data: &[u8]) {
    if too_large(data) {
        return;
    }
    thread_local! {
        // Invariant: the schema is a constant checked by the corpus test.
        static SCHEMA: Schema = Schema::from_toml(SMALL_SCHEMA).expect("the small schema is valid");
    }
    SCHEMA.with(|schema| csv_through(schema, data));
}

/// A schema TOML file and what a hospital and `fedcare explore` derive from it.
pub fn schema_toml(data: &[u8]) {
    if too_large(data) {
        return;
    }
    let Ok(text) = core::str::from_utf8(data) else { return };
    let Ok(schema) = Schema::from_toml(text) else { return };
    let width = schema.width();
    let names = schema.feature_names();
    assert_eq!(names.len(), width, "a schema names other inputs than its width");
    let _ = schema.top_k_shapes();
    let _ = schema.label_description();
    for column in schema.explore_columns() {
        let _ = column.validate();
        let _ = column.cells();
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration.

/// Writes `value` as TOML and reads it back; it writes the same text again.
fn toml_stable<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T, what: &str) -> T {
    let text = toml::to_string(value).unwrap_or_else(|e| panic!("a decoded {what} does not write as TOML: {e}"));
    let again: T = toml::from_str(&text).unwrap_or_else(|e| panic!("a written {what} does not read back: {e}\n{text}"));
    let text_again = toml::to_string(&again).unwrap_or_else(|e| panic!("a {what} read back does not write: {e}"));
    assert_eq!(text_again, text, "a {what} writes other TOML once read back");
    again
}

/// `aggregator.toml` and the plan it describes.
pub fn aggregator_config(data: &[u8]) {
    if too_large(data) {
        return;
    }
    let Ok(text) = core::str::from_utf8(data) else { return };
    let Ok(config) = toml::from_str::<AggregatorConfig>(text) else { return };
    let plan = config.plan();
    let again = toml_stable(&config, "aggregator configuration");
    assert_eq!(again.plan().is_ok(), plan.is_ok(), "a configuration read back plans differently");
}

/// `hospital.toml`.
pub fn hospital_config(data: &[u8]) {
    if too_large(data) {
        return;
    }
    let Ok(text) = core::str::from_utf8(data) else { return };
    let Ok(config) = toml::from_str::<HospitalConfig>(text) else { return };
    let _ = config.consortium.min_participants(2);
    let _ = BadRows::from_limit(config.bad_rows_limit);
    toml_stable(&config, "hospital configuration");
}

// ---------------------------------------------------------------------------------------------
// Reports.

/// `explore.json`, as `fedcare explore --render` reads it.
pub fn explore_report(data: &[u8]) {
    if too_large(data) {
        return;
    }
    let Ok(report) = serde_json::from_slice::<ExploreReport>(data) else { return };
    let text =
        serde_json::to_string_pretty(&report).unwrap_or_else(|e| panic!("a decoded report does not encode: {e}"));
    let again: ExploreReport =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("an encoded report does not decode: {e}\n{text}"));
    assert_eq!(again, report, "a report changes once read back");
}

/// `metrics.jsonl`, as the CLI's reports read it.
pub fn metrics_jsonl(data: &[u8]) {
    if too_large(data) {
        return;
    }
    let Ok(text) = core::str::from_utf8(data) else { return };
    let Ok(records) = parse_metrics(text) else { return };
    let written = metrics_text(&records);
    let again = parse_metrics(&written).unwrap_or_else(|e| panic!("written metrics do not parse: {e}\n{written}"));
    assert_eq!(again, records, "round records change once read back");
}
