//! A lying aggregator against real hospitals over gRPC + mTLS on 127.0.0.1. Each test plays a
//! compromised aggregator with one transition changed (the coordinator's `Liar` hooks) and
//! checks that every honest hospital refuses, names the reason, and — before it refuses — has
//! released nothing that decrypts one hospital's data: no decryption share was made for the
//! attacked session (its ledger holds no entry for it).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod common;

use bytes::Bytes;
use fedcare_federation::config::AggregatorConfig;
use fedcare_federation::coordinator::Liar;
use fedcare_federation::error::TrustError;
use fedcare_federation::hospital::{Connection, HospitalData, HospitalNode, trainer::CpuTrainer};
use fedcare_federation::participant::LEDGER_FILE;
use fedcare_federation::protocol::{NodeId, TaskKind};
use fedcare_federation::server::AggregatorServer;
use fedcare_federation::signing::{Signed, SigningKey};
use fedcare_federation::transcript::{Claim, Statement, decode_bundle, encode_bundle, endorsements};
use fedcare_federation::{FederationError, tls};

const HOSPITALS: [&str; 3] = ["hospital-a", "hospital-b", "hospital-c"];

/// One federation's outcome: each hospital's result and ledger lines.
struct Run {
    results: Vec<Result<(), FederationError>>,
    ledgers: Vec<Vec<String>>,
    /// The aggregator's model file at the end (absent when none was written).
    model: Option<Vec<u8>>,
}

impl Run {
    /// Every hospital refused with an error that `expected` accepts, or was stopped because the
    /// federation ended when the first refusals made it too small (it then never met the lie,
    /// and released nothing either), told so at its next task or upload; at least one refused.
    fn all_refused(&self, expected: impl Fn(&FederationError) -> bool) {
        let mut refused = 0;
        for (name, result) in HOSPITALS.iter().zip(&self.results) {
            match result {
                Err(error) if expected(error) => refused += 1,
                Err(FederationError::Stopped(why)) if why.contains("hospitals remain") => {}
                // Its upload raced the end the others' refusals caused.
                Err(FederationError::Rpc { status, .. }) if status.message() == "the federation has ended" => {}
                other => panic!("{name}: expected a refusal, got {other:?}"),
            }
        }
        assert!(refused > 0, "no hospital refused: {:?}", self.results);
    }

    /// No hospital made a decryption share for any session but the listed slots.
    fn ledgers_hold_only(&self, slots: &[&str]) {
        for (name, lines) in HOSPITALS.iter().zip(&self.ledgers) {
            let kinds: Vec<&str> = lines.iter().map(String::as_str).collect();
            assert!(kinds.iter().all(|l| slots.iter().any(|s| l.contains(s))), "{name}'s ledger: {kinds:?}");
            assert_eq!(kinds.len(), slots.len(), "{name}'s ledger: {kinds:?}");
        }
    }
}

fn config(names: &[String], rounds: u32, out: &Path, pki: &Path) -> AggregatorConfig {
    AggregatorConfig {
        privacy: None,
        federation_id: "liar".into(),
        // Every hospital is needed: the first refusal ends the federation, so each hospital
        // meets the lie in the same session (no restart without it).
        min_hospitals: names.len().min(3) as u32,
        rounds,
        patience: None,
        phase_timeout_secs: 20,
        ..common::plan(names, 20, out, pki)
    }
}

/// Runs a federation of [`HOSPITALS`] (plus `extra` enrolled certificates that hospitals do not
/// have on their rosters) over mTLS, with `liar` in the aggregator; `extra` members are run
/// as hospitals too, with a roster that lists everyone.
async fn federation(liar: Liar, rounds: u32, extra: &[&str]) -> Run {
    tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let roster: Vec<String> = HOSPITALS.iter().map(|s| s.to_string()).collect();
    let everyone: Vec<String> = roster.iter().cloned().chain(extra.iter().map(|s| s.to_string())).collect();
    tls::generate_dev_pki(&pki, &everyone, &[]).unwrap();
    let config = config(&everyone, rounds, &dir.path().join("out"), &pki);
    let server_tls = tls::server_tls(&config.tls.ca, &config.tls.cert, &config.tls.key).unwrap();
    let aggregator = AggregatorServer::new(config.plan().unwrap()).unwrap();
    aggregator.set_liar(liar);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://localhost:{}", listener.local_addr().unwrap().port());
    let serving = tokio::spawn(async move { aggregator.serve(listener, server_tls).await });

    let state = |name: &str| dir.path().join("state").join(name);
    let nodes: Vec<_> = everyone
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let (cert, key) = tls::party_files(&pki, name);
            let tls = tls::client_tls(&config.tls.ca, &cert, &key, "localhost").unwrap();
            let connection = Connection::Tls { url: url.clone(), tls };
            let data = HospitalData::Ready(fedcare_data::plain::synthetic_hospital(index, everyone.len(), 300, 1));
            let members = if index < HOSPITALS.len() { &roster } else { &everyone };
            let trust = tls::dev_trust(&pki, name, members, &state(name)).unwrap();
            let node = HospitalNode::new(connection, "liar", data, Box::new(CpuTrainer), trust);
            tokio::spawn(async move { node.run().await.map(|_| ()) })
        })
        .collect();
    let mut results = Vec::new();
    for node in nodes {
        results.push(node.await.unwrap());
    }
    let _ = serving.await;
    results.truncate(HOSPITALS.len());
    let ledgers = HOSPITALS.iter().map(|name| ledger(&state(name).join(LEDGER_FILE))).collect();
    let model = std::fs::read(dir.path().join("out").join(fedcare_federation::persistence::MODEL_FILE)).ok();
    Run { results, ledgers, model }
}

fn ledger(path: &PathBuf) -> Vec<String> {
    std::fs::read_to_string(path).map(|t| t.lines().map(str::to_owned).collect()).unwrap_or_default()
}

/// A liar that rewrites the tasks of `kind` with `lie`.
fn lie_on(
    kind: TaskKind,
    lie: impl Fn(&NodeId, &mut fedcare_federation::protocol::Task) + Send + Sync + 'static,
) -> Liar {
    Liar {
        task: Some(Box::new(move |node, task| {
            if task.kind == kind {
                lie(node, task)
            }
        })),
        ..Liar::default()
    }
}

/// The liar's own signing key (the aggregator's certificate key would do as well: it is not
/// on any roster).
fn liar_key() -> SigningKey {
    SigningKey::from_pem(&rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collective_key_from_a_substituted_share_is_refused() {
    // The aggregator replaces hospital-a's key share with one of its own making, under
    // hospital-a's name: a key it could decrypt everything with.
    let liar = lie_on(TaskKind::Confirm, |_, task| {
        let mut bundle = decode_bundle(&task.sections[0]).unwrap();
        if let Some(own) = bundle.iter_mut().find(|s| s.signer.as_str() == "hospital-a") {
            let mut statement = Statement::of(own).unwrap();
            if let Claim::KeyShare(bytes) = &mut statement.claim {
                bytes[40] ^= 1;
            }
            *own = statement.sign(&own.signer, &liar_key()).unwrap();
        }
        task.sections[0] = encode_bundle(&bundle);
    });
    let run = federation(liar, 1, &[]).await;
    run.all_refused(
        |e| matches!(e, FederationError::Trust(TrustError::KeyMismatch { name, .. }) if name == "hospital-a"),
    );
    run.ledgers_hold_only(&[]);

    // Relabelled with the real key but changed bytes: the signature breaks.
    let liar = lie_on(TaskKind::Confirm, |_, task| {
        let mut bundle = decode_bundle(&task.sections[0]).unwrap();
        if let Some(own) = bundle.iter_mut().find(|s: &&mut Signed| s.signer.as_str() == "hospital-b") {
            let at = own.message.len() - 100;
            own.message[at] ^= 1;
        }
        task.sections[0] = encode_bundle(&bundle);
    });
    let run = federation(liar, 1, &[]).await;
    run.all_refused(
        |e| matches!(e, FederationError::Trust(TrustError::BadSignature { signer }) if signer.as_str() == "hospital-b"),
    );
    run.ledgers_hold_only(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn masks_with_one_coefficient_changed_are_refused_before_any_decryption_share() {
    // Δ·2^6 added to one coefficient of the honest mask sum: one decryption would give the sum
    // in the low bits and the collective secret key in the high bits.
    let liar = lie_on(TaskKind::Challenge, |_, task| {
        let envelope = fedcare_crypto::wire::FORMAT;
        let mut payload = envelope.open(&task.sections[0], usize::MAX).unwrap().to_vec();
        // The payload ends with the masks (8 bytes each) and then one carry byte per mask
        // coefficient: one bin of 8192 coefficients for this model.
        let carries = 8192;
        let at = payload.len() - carries - 8;
        let word = u64::from_le_bytes(payload[at..at + 8].try_into().unwrap()).wrapping_add(1 << 40);
        payload[at..at + 8].copy_from_slice(&word.to_le_bytes());
        task.sections[0] = Bytes::from(envelope.seal(&payload).unwrap());
    });
    let run = federation(liar, 1, &[]).await;
    run.all_refused(|e| matches!(e, FederationError::Crypto(fedcare_crypto::CryptoError::ForgedMasks)));
    run.ledgers_hold_only(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn different_views_of_the_round_are_caught_by_the_signed_transcript() {
    // hospital-b is told the federation has a thousand times more rows: its update would be
    // rounded to nothing and the decrypted sum would be the others' alone.
    let liar = lie_on(TaskKind::Confirm, |node, task| {
        if node.as_str() == "hospital-b" && task.figures.train_rows > 0 {
            task.figures.train_rows *= 1000;
        }
    });
    let run = federation(liar, 1, &[]).await;
    // The others see hospital-b's transcript differ; hospital-b itself sees figures that are not
    // the ones it computed from the setup session's checked sum.
    run.all_refused(|e| {
        matches!(e, FederationError::Trust(TrustError::TranscriptMismatch { .. } | TrustError::OutputMismatch { .. }))
    });
    // The setup session (before the lie) decrypted normally; round 1 never reached decryption.
    run.ledgers_hold_only(&["\"round\":0,\"kind\":\"setup\""]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_round_run_again_after_its_decryption_is_refused() {
    let liar = Liar { rerun_round: Some(1), ..Liar::default() };
    let run = federation(liar, 2, &[]).await;
    run.all_refused(|e| matches!(e, FederationError::Trust(TrustError::SlotSpent { round: 1, .. })));
    run.ledgers_hold_only(&["\"round\":0,\"kind\":\"setup\"", "\"round\":1,\"kind\":\"train\""]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn statements_of_another_session_are_refused() {
    // The aggregator keeps the setup session's signed key shares and relays them again in
    // round 1, as if they were fresh.
    let kept: Arc<Mutex<Option<Bytes>>> = Arc::default();
    let liar = lie_on(TaskKind::Confirm, move |_, task| {
        let mut kept = kept.lock().unwrap();
        match (&*kept, task.session.unwrap().round) {
            (None, 0) => *kept = Some(task.sections[0].clone()),
            (Some(old), 1) => task.sections[0] = old.clone(),
            _ => {}
        }
    });
    let run = federation(liar, 1, &[]).await;
    run.all_refused(
        |e| matches!(e, FederationError::Trust(TrustError::WrongStatement { why, .. }) if why.contains("session 0.0")),
    );
    run.ledgers_hold_only(&["\"round\":0,\"kind\":\"setup\""]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_participant_the_ca_signed_but_no_roster_lists_is_refused() {
    // "mallory" has a certificate from the consortium's CA and the aggregator enrolls it, but no
    // hospital's own roster lists it.
    let run = federation(Liar::default(), 1, &["mallory"]).await;
    run.all_refused(|e| matches!(e, FederationError::Trust(TrustError::NotOnRoster { name }) if name == "mallory"));
    run.ledgers_hold_only(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_decrypted_sum_is_refused_by_every_hospital() {
    // The aggregator hands out the setup session's decrypted sum with one value moved by one
    // unit of Δ: other row counts, other statistics, and so another model later.
    let liar = lie_on(TaskKind::Result, |_, task| {
        let envelope = fedcare_crypto::wire::FORMAT;
        let mut payload = envelope.open(&task.sections[0], usize::MAX).unwrap().to_vec();
        // params id (2), kind (1), CRS (16), aggregate digest (32), contributors (2), length (8),
        // then the phases.
        let at = 2 + 1 + 16 + 32 + 2 + 8;
        let word = u64::from_le_bytes(payload[at..at + 8].try_into().unwrap()).wrapping_add(1 << 34);
        payload[at..at + 8].copy_from_slice(&word.to_le_bytes());
        task.sections[0] = Bytes::from(envelope.seal(&payload).unwrap());
    });
    let run = federation(liar, 1, &[]).await;
    run.all_refused(|e| matches!(e, FederationError::Crypto(fedcare_crypto::CryptoError::ForgedSum)));
    // The shares of the checked masks were released (that decrypts only the sum); nothing else.
    run.ledgers_hold_only(&["\"round\":0,\"kind\":\"setup\""]);

    // One hospital shown another sum than the others: caught when the commitments are relayed.
    let liar = lie_on(TaskKind::Result, |node, task| {
        if node.as_str() == "hospital-c" {
            let envelope = fedcare_crypto::wire::FORMAT;
            let mut payload = envelope.open(&task.sections[0], usize::MAX).unwrap().to_vec();
            payload[2 + 1 + 16 + 32 + 2 + 8] ^= 1;
            task.sections[0] = Bytes::from(envelope.seal(&payload).unwrap());
        }
    });
    let run = federation(liar, 1, &[]).await;
    run.all_refused(
        |e| matches!(e, FederationError::Trust(TrustError::WrongStatement { why, .. }) if why.contains("decrypted sum")),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tampered_final_model_is_refused_and_its_endorsements_say_so() {
    // The honest federation's model file carries every hospital's endorsement of exactly it.
    let run = federation(Liar::default(), 1, &[]).await;
    for (name, result) in HOSPITALS.iter().zip(&run.results) {
        assert!(result.is_ok(), "{name}: {result:?}");
    }
    let honest = fedcare_core::ModelFile::from_bytes(run.model.as_ref().unwrap()).unwrap();
    let signers: Vec<String> = endorsements(&honest).unwrap().iter().map(|(s, _)| s.signer.to_string()).collect();
    assert_eq!(signers, HOSPITALS);

    // One parameter changed in the final model every hospital is handed.
    let tamper = |bytes: &[u8]| {
        let mut file = fedcare_core::ModelFile::from_bytes(bytes).unwrap();
        file.params[0] += 0.5;
        Bytes::from(file.to_bytes().unwrap())
    };
    let tampered = fedcare_core::ModelFile::from_bytes(&tamper(run.model.as_ref().unwrap())).unwrap();
    assert!(
        matches!(endorsements(&tampered), Err(TrustError::NotEndorsed { why }) if why.contains("another model file"))
    );
    let liar = lie_on(TaskKind::Done, move |_, task| task.sections[0] = tamper(&task.sections[0]));
    let run = federation(liar, 1, &[]).await;
    run.all_refused(
        |e| matches!(e, FederationError::Trust(TrustError::NotEndorsed { why }) if why.contains("another model file")),
    );
}
