//! The federation end to end: the aggregator's service and real hospital clients with threshold
//! encryption. Most tests run in-process (the same gRPC service and clients over in-process
//! connections); the first runs over real TCP on 127.0.0.1 with mTLS, and so do the tests of
//! strangers without the federation's certificates.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use fedcare_crypto::{Crs, PARAMS_V2, PartyId, PartySession, WireMessage};
use fedcare_data::{BadRows, Schema, read_csv, split_seed};
mod common;

use common::plan;
use fedcare_core::{Dataset, ModelSpec, TrainConfig, TrainReport};
use fedcare_federation::config::{AggregatorConfig, ServerRule, TrainingSettings};
use fedcare_federation::hospital::trainer::{CpuTrainer, Trainer};
use fedcare_federation::hospital::{Connection, HospitalData, HospitalNode, fetch_task};
use fedcare_federation::identity::{InProcessLink, in_process};
use fedcare_federation::protocol::{Agreement, NodeId, SessionKind, TaskKind};
use fedcare_federation::server::AggregatorServer;
use fedcare_federation::signing::SigningKey;
use fedcare_federation::simulation::{self, SimulateOptions, Transport};
use fedcare_federation::tls;
use fedcare_federation::transcript::{Claim, Statement, key_share_digest};
use fedcare_proto::v1::{self, federation_client::FederationClient};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// One local training as a hospital ran it: what it started from and what it changed.
#[derive(Debug, Clone)]
struct LocalUpdate {
    /// The global model it started from.
    global: Vec<f32>,
    /// `local − global`, unweighted.
    delta: Vec<f32>,
    /// Training rows.
    rows: usize,
    /// The training inputs, as the hospital encoded them.
    features: Vec<f32>,
}

/// A hospital's trainer with every local training recorded, by hospital, in order: injected
/// through the one seam a hospital has for it, its `Trainer`.
struct Recording {
    node: String,
    inner: Box<dyn Trainer>,
    sink: Arc<Mutex<BTreeMap<String, Vec<LocalUpdate>>>>,
}

impl Trainer for Recording {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn train(
        &mut self,
        spec: &ModelSpec,
        params: &mut [f32],
        data: &Dataset,
        config: &TrainConfig,
    ) -> fedcare_federation::Result<TrainReport> {
        let global = params.to_vec();
        let report = self.inner.train(spec, params, data, config)?;
        let delta = params.iter().zip(&global).map(|(l, g)| l - g).collect();
        let update = LocalUpdate { global, delta, rows: data.rows(), features: data.features().to_vec() };
        self.sink.lock().unwrap().entry(self.node.clone()).or_default().push(update);
        Ok(report)
    }
}

/// Every hospital's trainer recorded into `sink`.
fn recording(
    sink: Arc<Mutex<BTreeMap<String, Vec<LocalUpdate>>>>,
) -> impl Fn(&NodeId, Box<dyn Trainer>) -> Box<dyn Trainer> + Sync {
    move |node, inner| Box::new(Recording { node: node.to_string(), inner, sink: sink.clone() })
}

/// A trainer that stops answering: its first training blocks for `stall` (past the phase
/// deadline), then fails, as a hospital whose machine hangs would.
struct Stalling {
    stall: core::time::Duration,
}

impl Trainer for Stalling {
    fn name(&self) -> &str {
        "stalling"
    }

    fn train(
        &mut self,
        _: &ModelSpec,
        _: &mut [f32],
        _: &Dataset,
        _: &TrainConfig,
    ) -> fedcare_federation::Result<TrainReport> {
        std::thread::sleep(self.stall);
        Err(fedcare_federation::FederationError::Task("the test's stalled trainer gave up".into()))
    }
}

fn options(out: &std::path::Path) -> SimulateOptions {
    SimulateOptions {
        hospitals: 3,
        rounds: 3,
        rows: 600,
        hidden: vec![8],
        out: out.to_path_buf(),
        transport: Transport::InProcess,
        ..SimulateOptions::default()
    }
}

/// Over real TCP with mTLS: the final global model equals a plaintext weighted FedAvg of the
/// same hospitals' local updates, within the codec's precision, and the model learned.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hospitals_three_rounds_over_mtls_match_plaintext_fedavg() {
    let out = tempfile::tempdir().unwrap();
    let sink: Arc<Mutex<BTreeMap<String, Vec<LocalUpdate>>>> = Arc::default();
    let options = SimulateOptions { transport: Transport::Tls, ..options(out.path()) };
    let report = simulation::run(&options, Some(&recording(sink.clone())), None).await.unwrap();
    // By (round, hospital): no round restarted, so a hospital's n-th training is round n's.
    let updates: BTreeMap<(u32, String), LocalUpdate> = sink
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(node, trained)| (1u32..).zip(trained).map(move |(round, u)| ((round, node.clone()), u.clone())))
        .collect();
    assert_eq!(updates.len(), 9, "3 hospitals × 3 rounds of local updates");

    let mut expected = updates[&(1, "hospital-01".to_string())].global.clone();
    // The plaintext global model after each number of rounds.
    let mut models = vec![expected.clone()];
    for round in 1..=3u32 {
        let of_round: Vec<&LocalUpdate> = updates.iter().filter(|((r, _), _)| *r == round).map(|(_, u)| u).collect();
        // Every hospital started the round from the same global model, the one we expect.
        for update in &of_round {
            let gap = update.global.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(gap < 2e-5, "round {round}: received global model is {gap} away from plaintext FedAvg");
        }
        let total: usize = of_round.iter().map(|u| u.rows).sum();
        for (i, e) in expected.iter_mut().enumerate() {
            let mean: f64 = of_round.iter().map(|u| f64::from(u.delta[i]) * u.rows as f64 / total as f64).sum();
            *e += mean as f32;
        }
        models.push(expected.clone());
    }
    // The federation hands out the model of the best secure AUROC among the four it evaluated:
    // codec precision (2^-21 per hospital per round) plus f32 rounding away from that model.
    let kept = report.outcome.kept().unwrap();
    let best_auroc = report.outcome.records.iter().filter_map(|r| r.auroc).fold(0.0, f64::max);
    assert_eq!(kept.auroc, Some(best_auroc));
    let trained = kept.round as usize - 1;
    let gap = report.outcome.global.iter().zip(&models[trained]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(gap < 2e-5, "the kept model is {gap} away from plaintext FedAvg after {trained} rounds");

    use SessionKind::{Evaluate, Setup, Train};
    let records = &report.outcome.records;
    let kinds: Vec<SessionKind> = records.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [Setup, Train, Train, Train, Evaluate]);
    assert!(records.iter().all(|r| r.hospitals == 3 && r.attempt == 0), "{records:?}");
    assert!(records.iter().all(|r| r.bytes_up > 0 && r.bytes_down > 0), "every session moved bytes: {records:?}");
    // The model learned: its AUROC rises above chance and above the initial model's.
    let initial = records[1].auroc.unwrap();
    let last = records.last().unwrap();
    let final_auroc = last.auroc.unwrap();
    assert!(final_auroc > 0.55 && final_auroc > initial, "AUROC {initial} -> {final_auroc}");
    let test_rows: u64 = last.test_rows.unwrap();
    assert!(test_rows > 100 && last.test_positives.unwrap() > 0 && last.test_positives.unwrap() < test_rows);
    // metrics.jsonl holds the same records (JSON keeps floats to within a rounding step).
    let metrics = fedcare_federation::persistence::read_metrics(&out.path().join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.len(), records.len());
    for (written, record) in metrics.iter().zip(records) {
        assert_eq!(
            (written.round, written.kind, written.attempt, written.test_rows),
            (record.round, record.kind, record.attempt, record.test_rows)
        );
        assert!((written.auroc.unwrap_or(0.0) - record.auroc.unwrap_or(0.0)).abs() < 1e-12);
    }
    let model = fedcare_data::predict::read_model_file(&out.path().join("model.bin")).unwrap();
    assert_eq!(model.params, report.outcome.global);
    assert_eq!(model.metrics.get("auroc"), Some(&best_auroc));
    assert_eq!(model.metrics.get("round"), Some(&(trained as f64)));
    assert_eq!(model.calibration, kept.platt);
}

/// A hospital that stops answering mid-training is dropped at the phase deadline; the round
/// restarts with fresh keys among the other two and the federation finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vanishing_hospital_is_dropped_and_the_federation_finishes() {
    let out = tempfile::tempdir().unwrap();
    // The third hospital's trainer hangs in round 1, past the 3 s phase deadline.
    let options = SimulateOptions { phase_timeout_secs: 3, ..options(out.path()) };
    let stall = |node: &NodeId, trainer: Box<dyn Trainer>| -> Box<dyn Trainer> {
        if node.as_str() == "hospital-03" {
            Box::new(Stalling { stall: core::time::Duration::from_secs(8) })
        } else {
            trainer
        }
    };
    let started = std::time::Instant::now();
    let report = simulation::run(&options, Some(&stall), None).await.unwrap();
    let round_one = report.outcome.records.iter().find(|r| r.round == 1).unwrap();
    assert_eq!((round_one.attempt, round_one.hospitals), (1, 2));
    assert!(round_one.seconds < 3.0 + 30.0, "the round restarted after the deadline, not later");
    assert!(report.outcome.records.iter().filter(|r| r.round > 1).all(|r| r.hospitals == 2));
    assert_eq!(report.outcome.records.last().unwrap().kind, SessionKind::Evaluate);
    assert!(started.elapsed().as_secs() >= 3, "the drop waited for the deadline");
}

/// An aggregator serving over TCP with mTLS.
struct TlsFederation {
    pki: tempfile::TempDir,
    url: String,
    _out: tempfile::TempDir,
}

async fn start_tls_federation(hospitals: &[&str]) -> TlsFederation {
    tls::install_crypto_provider();
    let pki = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let names: Vec<String> = hospitals.iter().map(|s| s.to_string()).collect();
    tls::generate_dev_pki(pki.path(), &names, &[]).unwrap();
    let config = plan(&names, 2, out.path(), pki.path());
    let server_tls = tls::server_tls(&config.tls.ca, &config.tls.cert, &config.tls.key).unwrap();
    let aggregator = AggregatorServer::new(config.plan().unwrap(), &config.out_dir).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://localhost:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { aggregator.serve(listener, server_tls).await });
    TlsFederation { pki, url, _out: out }
}

async fn client(
    url: &str,
    tls: Option<tonic::transport::ClientTlsConfig>,
) -> Result<FederationClient<Channel>, String> {
    let mut endpoint = Endpoint::from_shared(url.to_string()).unwrap();
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).unwrap();
    }
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    Ok(FederationClient::new(channel))
}

async fn tls_client(f: &TlsFederation, name: &str) -> FederationClient<Channel> {
    let (cert, key) = tls::party_files(f.pki.path(), name);
    let tls = tls::client_tls(&f.pki.path().join(tls::files::CA_CERT), &cert, &key, "localhost").unwrap();
    client(&f.url, Some(tls)).await.unwrap()
}

/// An aggregator serving hospitals of this process.
struct InProcessFederation {
    link: InProcessLink,
    names: Vec<String>,
    out: tempfile::TempDir,
    serving: tokio::task::JoinHandle<fedcare_federation::Result<fedcare_federation::coordinator::Outcome>>,
}

fn start_in_process(hospitals: &[&str], join_timeout_secs: u64, phase_timeout_secs: u64) -> InProcessFederation {
    let out = tempfile::tempdir().unwrap();
    let names: Vec<String> = hospitals.iter().map(|s| s.to_string()).collect();
    tls::generate_dev_pki(&out.path().join("pki"), &names, &[]).unwrap();
    let config = AggregatorConfig { phase_timeout_secs, ..plan(&names, join_timeout_secs, out.path(), out.path()) };
    let aggregator = AggregatorServer::new(config.plan().unwrap(), &config.out_dir).unwrap();
    let (link, listener) = in_process();
    let serving = tokio::spawn(async move { aggregator.serve_in_process(listener, core::future::pending()).await });
    InProcessFederation { link, names, out, serving }
}

impl InProcessFederation {
    /// What hospital `name` trusts: its key from the federation's PKI, every hospital as its
    /// roster, a ledger of its own.
    fn trust(&self, name: &str) -> fedcare_federation::participant::HospitalTrust {
        let dir = self.out.path();
        tls::dev_trust(&dir.join("pki"), name, &self.names, &dir.join("state").join(name)).unwrap()
    }
}

async fn in_process_client(f: &InProcessFederation, name: &str) -> FederationClient<Channel> {
    FederationClient::new(f.link.connect(&NodeId::new(name).unwrap()).await.unwrap())
}

async fn upload(
    client: &mut FederationClient<Channel>,
    node: &str,
    session: v1::Session,
    kind: v1::UploadKind,
    total: u64,
    data: Vec<u8>,
) -> Result<(), tonic::Status> {
    let header = v1::UploadHeader {
        federation_id: "test".into(),
        session: Some(session),
        node_id: node.into(),
        kind: kind as i32,
        total_bytes: total,
    };
    let messages = vec![
        v1::UploadChunk { part: Some(v1::upload_chunk::Part::Header(header)) },
        v1::UploadChunk { part: Some(v1::upload_chunk::Part::Data(data.into())) },
    ];
    client.upload(tokio_stream::iter(messages)).await.map(|_| ())
}

/// Over TCP with mTLS: strangers are refused; bad uploads get clear statuses and leave the round
/// intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_and_bad_uploads_are_refused_and_the_round_goes_on() {
    let f = start_tls_federation(&["hospital-a", "hospital-b", "hospital-late"]).await;

    // A client with a certificate from another CA, and one with none.
    let other = tempfile::tempdir().unwrap();
    tls::generate_dev_pki(other.path(), &["hospital-a".into()], &[]).unwrap();
    let (cert, key) = tls::party_files(other.path(), "hospital-a");
    let foreign_tls = tls::client_tls(&f.pki.path().join(tls::files::CA_CERT), &cert, &key, "localhost").unwrap();
    if let Ok(mut foreign) = client(&f.url, Some(foreign_tls)).await {
        assert!(foreign.join(v1::JoinRequest { federation_id: "test".into() }).await.is_err());
    }
    let no_cert = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            std::fs::read(f.pki.path().join(tls::files::CA_CERT)).unwrap(),
        ))
        .domain_name("localhost");
    if let Ok(mut anonymous) = client(&f.url, Some(no_cert)).await {
        assert!(anonymous.join(v1::JoinRequest { federation_id: "test".into() }).await.is_err());
    }

    // Two hospitals join; "hospital-late" is enrolled but not in the round.
    let mut a = tls_client(&f, "hospital-a").await;
    let mut b = tls_client(&f, "hospital-b").await;
    for c in [&mut a, &mut b] {
        let reply = c.join(v1::JoinRequest { federation_id: "test".into() }).await.unwrap().into_inner();
        assert!(reply.config.is_some());
    }
    let wrong_federation = a.join(v1::JoinRequest { federation_id: "other".into() }).await.unwrap_err();
    assert_eq!(wrong_federation.code(), Code::FailedPrecondition);

    let task = fetch_task(&mut a, "test", None).await.unwrap();
    assert_eq!(task.kind, TaskKind::KeyGen);
    let session = fedcare_federation::convert::session_to_proto(task.session.unwrap());
    let crs: Crs = task.crs.unwrap();
    // The key generation step's upload: a signed commitment to a fresh key share.
    let signed_commitment = |name: &str| {
        let (_party, share) =
            PartySession::new(PARAMS_V2, PartyId::new(name).unwrap(), crs, 2, &mut rand::rngs::SysRng).unwrap();
        let statement = Statement {
            federation_id: "test".into(),
            session: task.session.unwrap(),
            kind: task.session_kind.unwrap(),
            crs: crs.0,
            claim: Claim::KeyCommitment(key_share_digest(&share.encode().unwrap())),
        };
        let key = SigningKey::from_pem_file(&tls::party_files(f.pki.path(), name).1).unwrap();
        postcard::to_allocvec(&statement.sign(&NodeId::new(name).unwrap(), &key).unwrap()).unwrap()
    };
    let share = signed_commitment("hospital-a");
    let key_share = v1::UploadKind::Statement;

    let wrong_round = v1::Session { round: session.round + 5, attempt: 0 };
    let status =
        upload(&mut a, "hospital-a", wrong_round, key_share, share.len() as u64, share.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let status =
        upload(&mut a, "hospital-a", session, key_share, share.len() as u64 + 10, share.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::DataLoss, "truncated stream: {status:?}");
    let status = upload(&mut a, "hospital-a", session, key_share, 1 << 40, share.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "oversized stream: {status:?}");
    let status = upload(&mut a, "hospital-a", session, key_share, 4, share.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "more data than announced: {status:?}");
    let status = upload(&mut a, "hospital-b", session, key_share, share.len() as u64, share.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "posing as another node: {status:?}");
    let garbage = vec![7u8; 64];
    let status = upload(&mut a, "hospital-a", session, key_share, 64, garbage).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "corrupt commitment: {status:?}");
    // A node that has not joined is told to join; one that joins mid-round waits for the next.
    let mut late = tls_client(&f, "hospital-late").await;
    let status =
        upload(&mut late, "hospital-late", session, key_share, share.len() as u64, share.clone()).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::FailedPrecondition, "join first"));
    assert!(fedcare_federation::error::status_is(&status, "not-joined"), "the refusal's kind travels: {status:?}");
    late.join(v1::JoinRequest { federation_id: "test".into() }).await.unwrap();
    let status =
        upload(&mut late, "hospital-late", session, key_share, share.len() as u64, share.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "not in the round: {status:?}");

    // The round is intact: a's real commitment is accepted once, a duplicate is refused...
    upload(&mut a, "hospital-a", session, key_share, share.len() as u64, share.clone()).await.unwrap();
    let status = upload(&mut a, "hospital-a", session, key_share, share.len() as u64, share.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "duplicate: {status:?}");
    // ... and b's commitment completes key generation: the shares are revealed next.
    let share_b = signed_commitment("hospital-b");
    upload(&mut b, "hospital-b", session, key_share, share_b.len() as u64, share_b).await.unwrap();
    let status = a.status(v1::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.phase, v1::TaskKind::Reveal as i32);
    assert_eq!(status.active_hospitals, ["hospital-a", "hospital-b", "hospital-late"]);
}

/// 1,000 random, corrupted and truncated uploads from a participant in the middle of a round:
/// each gets an error status, none changes the round, and the federation then completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_hostile_uploads_leave_the_federation_healthy() {
    use rand::{RngExt, SeedableRng};
    let f = start_in_process(&["hospital-a", "hospital-b"], 60, 60);
    let mut a = in_process_client(&f, "hospital-a").await;
    a.join(v1::JoinRequest { federation_id: "test".into() }).await.unwrap();

    // The real hospital-b joins, which starts the round; it waits for a's key-share commitment.
    let node = |name: &str, index: usize| {
        let connection = Connection::InProcess { link: f.link.clone(), node: NodeId::new(name).unwrap() };
        let data = HospitalData::Ready(fedcare_data::plain::synthetic_hospital(index, 2, 300, 1));
        HospitalNode::new(connection, Agreement::train("test"), data, Box::new(CpuTrainer::default()), f.trust(name))
    };
    let b = tokio::spawn(node("hospital-b", 1).run());
    let task = loop {
        let task = fetch_task(&mut a, "test", None).await.unwrap();
        if task.kind == TaskKind::KeyGen {
            break task;
        }
    };
    let session = fedcare_federation::convert::session_to_proto(task.session.unwrap());

    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(42);
    let mut refused = std::collections::HashMap::<Code, usize>::new();
    for i in 0..1000 {
        let len = rng.random_range(0..400usize);
        let mut data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if i % 3 == 0 {
            // A valid envelope with this parameter set and a random kind, so that random fields
            // reach the decoders.
            let mut payload = PARAMS_V2.id.to_le_bytes().to_vec();
            payload.push(rng.random_range(1..=5));
            payload.extend_from_slice(&data);
            data = fedcare_crypto::wire::FORMAT.seal(&payload).unwrap();
        }
        let total = match i % 5 {
            0 => rng.random_range(0..1000u64),
            _ => data.len() as u64,
        };
        let upload_session =
            if i % 7 == 0 { v1::Session { round: rng.random(), attempt: rng.random() } } else { session };
        let kind = [
            v1::UploadKind::Statement,
            v1::UploadKind::Contribution,
            v1::UploadKind::DecryptionShare,
            v1::UploadKind::Unspecified,
        ][i % 4];
        let result = if i % 11 == 0 {
            // Data before any header.
            let messages = vec![v1::UploadChunk { part: Some(v1::upload_chunk::Part::Data(data.into())) }];
            a.upload(tokio_stream::iter(messages)).await.map(|_| ())
        } else {
            upload(&mut a, "hospital-a", upload_session, kind, total, data).await
        };
        let status = result.expect_err(&format!("hostile upload {i} was accepted"));
        assert!(
            matches!(
                status.code(),
                Code::InvalidArgument
                    | Code::FailedPrecondition
                    | Code::OutOfRange
                    | Code::DataLoss
                    | Code::PermissionDenied
            ),
            "upload {i}: {status:?}"
        );
        *refused.entry(status.code()).or_insert(0) += 1;
    }
    // Every kind of refusal was exercised.
    assert_eq!(refused.values().sum::<usize>(), 1000);
    for code in [Code::InvalidArgument, Code::FailedPrecondition, Code::OutOfRange, Code::DataLoss] {
        assert!(refused.contains_key(&code), "no upload was refused with {code:?}: {refused:?}");
    }
    let status = a.status(v1::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.phase, v1::TaskKind::KeyGen as i32, "the round is still waiting for a's key-share commitment");

    // The real hospital-a takes part now, and the federation completes.
    node("hospital-a", 0).run().await.unwrap();
    b.await.unwrap().unwrap();
    let outcome = f.serving.await.unwrap().unwrap();
    assert!(outcome.failure.is_none() && outcome.records.len() == 3, "{outcome:?}");
}

/// The federated mean and standard deviation of every numeric feature equal the pooled ones of
/// the hospitals' training rows exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn federated_feature_statistics_equal_the_pooled_ones() {
    use fedcare_core::Moments;
    let cohort = tempfile::tempdir().unwrap();
    let files = fedcare_data::synth::write_cohort(cohort.path(), 3, 400, 9).unwrap();
    let out = tempfile::tempdir().unwrap();
    let options = SimulateOptions { rounds: 1, data: Some(cohort.path().to_path_buf()), ..options(out.path()) };
    let report = simulation::run(&options, None, None).await.unwrap();

    let schema = Schema::diabetes130(true);
    let mut pooled = vec![Moments::default(); schema.numeric.len()];
    for path in &files {
        let (table, _) = read_csv(path, &schema, BadRows::Skip { limit: 1000 }).unwrap();
        let name = path.file_stem().unwrap().to_str().unwrap();
        let seed = split_seed(options.seed, name);
        let (train, _) = table.split_by_group(0.2, seed);
        for (p, m) in pooled.iter_mut().zip(train.numeric_moments()) {
            p.add(&m);
        }
    }
    let federated = &report.outcome.figures.feature_stats;
    assert_eq!(federated.len(), schema.numeric.len());
    // The secure sum of the fixed-point moments is exact, so the statistics are the pooled ones.
    for ((name, moments), got) in schema.numeric.iter().map(|c| &c.name).zip(&pooled).zip(federated) {
        assert_eq!(*got, moments.stats(), "{name}");
    }
}

/// The AUROC decoded from the encrypted 1,024-bin histograms equals the pooled AUROC of the final
/// model on every hospital's held-out rows, within the binning bound (pairs sharing a bin count
/// one half); so do the AUPRC (within its own bound), the log loss, the calibration table and
/// the ROC curve. The subgroups' histograms are the pooled ones exactly, so the final record's
/// subgroup report is the plaintext one, each subgroup's AUROC within its own binning bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_secure_histogram_auroc_equals_the_pooled_auroc_within_the_binning_bound() {
    use fedcare_core::subgroup::{SubgroupHistograms, subgroup_report};
    use fedcare_core::{Network, ScoreHistogram, metrics::auroc};
    use fedcare_federation::protocol::contribution::SUBGROUP_BINS;
    let cohort = tempfile::tempdir().unwrap();
    let files = fedcare_data::synth::write_cohort(cohort.path(), 3, 500, 21).unwrap();
    let out = tempfile::tempdir().unwrap();
    let options =
        SimulateOptions { rounds: 2, hidden: vec![16], data: Some(cohort.path().to_path_buf()), ..options(out.path()) };
    let report = simulation::run(&options, None, None).await.unwrap();
    // The kept model's evaluation (the global parameters after the final evaluation are its).
    let kept = report.outcome.kept().unwrap();
    let secure = kept.auroc.unwrap();

    let schema = Schema::diabetes130(true);
    let spec = fedcare_core::ModelSpec::mlp(schema.width(), &[16]).unwrap();
    let subgroup_columns = schema.subgroup_columns(&schema.subgroups).unwrap();
    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    let mut cells = vec![Vec::new(); subgroup_columns.len()];
    for path in &files {
        let (table, _) = read_csv(path, &schema, BadRows::Skip { limit: 1000 }).unwrap();
        let name = path.file_stem().unwrap().to_str().unwrap();
        let (_, test) = table.split_by_group(0.2, split_seed(options.seed, name));
        for (all, own) in cells.iter_mut().zip(test.subgroup_cells(&schema, &subgroup_columns).unwrap()) {
            all.extend(own);
        }
        let test = test
            .to_dataset_with(&schema, &report.outcome.figures.feature_stats, &report.outcome.figures.top_k)
            .unwrap();
        scores.extend(Network::new(&spec).predict(&report.outcome.global, test.features()).unwrap());
        labels.extend_from_slice(test.labels());
    }
    // The subgroups of the kept model: the decrypted histograms are the pooled ones exactly, so
    // every figure of the final record's report is the plaintext report's.
    let plain = SubgroupHistograms::of_logits(&subgroup_columns, &cells, &scores, &labels, SUBGROUP_BINS);
    let expected = subgroup_report(&subgroup_columns, &plain, kept.platt.as_ref(), 10);
    let secure_subgroups = report.outcome.records.last().unwrap().subgroups.as_ref().unwrap();
    assert_eq!(secure_subgroups, &expected);
    let names: Vec<&str> = secure_subgroups.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["race", "gender", "age", "payer_code"]);
    // Each shown subgroup's AUROC is within its binning bound of the exact AUROC of its rows.
    for (column, cells) in secure_subgroups.columns.iter().zip(&cells) {
        let spec = subgroup_columns.iter().find(|c| c.name == column.name).unwrap();
        for subgroup in &column.subgroups {
            let Some(figures) = subgroup.figures.shown() else { continue };
            let cell = (0..=spec.cells())
                .find(|&c| {
                    if c == spec.cells() { subgroup.label == "missing" } else { spec.cell_label(c) == subgroup.label }
                })
                .unwrap();
            let rows: Vec<usize> = (0..scores.len()).filter(|&r| cells[r] == cell).collect();
            let own_scores: Vec<f32> = rows.iter().map(|&r| scores[r]).collect();
            let own_labels: Vec<f32> = rows.iter().map(|&r| labels[r]).collect();
            let exact = auroc(&own_scores, &own_labels).unwrap();
            let binned = figures.auroc.unwrap();
            assert!(
                (binned - exact).abs() <= figures.auroc_bound + 1e-12,
                "{} {}: {binned} vs {exact}",
                column.name,
                subgroup.label
            );
            assert_eq!(figures.rows, rows.len() as u64);
        }
    }
    let pooled = auroc(&scores, &labels).unwrap();
    // The pooled scores' histogram, binned here in plaintext.
    let histogram = ScoreHistogram::of_logits(&scores, &labels, 1024);
    let bound = histogram.auroc_binning_bound();
    assert!(bound < 0.01, "a bound of {bound} says little");
    assert!((secure - pooled).abs() <= bound + 1e-12, "secure {secure}, pooled {pooled}, bound {bound}");
    assert_eq!(Some(secure), histogram.auroc(), "the decrypted histogram is the pooled one");

    // AUPRC: within the bound the histogram itself gives, the pooled average precision.
    let last = kept;
    let secure_auprc = last.auprc.unwrap();
    let pooled_auprc = fedcare_core::metrics::auprc(&scores, &labels).unwrap();
    let auprc_bound = histogram.auprc_binning_bound();
    assert!(
        (secure_auprc - pooled_auprc).abs() <= auprc_bound + 1e-12,
        "secure AUPRC {secure_auprc}, pooled {pooled_auprc}, bound {auprc_bound}"
    );
    // The calibration table and ROC curve in the record are those of the pooled histogram.
    assert_eq!(last.calibration, histogram.calibration(10));
    assert_eq!(last.roc, histogram.roc_curve(101));
    assert_eq!(last.test_rows, Some(labels.len() as u64));
    let pooled_loss = fedcare_core::metrics::Evaluation::from_logits(&scores, &labels).unwrap().log_loss;
    let secure_loss = last.test_loss.unwrap();
    assert!((secure_loss - pooled_loss).abs() < 1e-4, "secure log loss {secure_loss}, pooled {pooled_loss}");
}

/// On the synthetic cohort with 5 hospitals, the federated model's AUROC (from the secure
/// evaluation) is within 0.01 of a centralized model trained with the same settings (model,
/// initial parameters, Adam, learning rate, batch size, balanced class weight, total epochs) on the
/// pooled training rows and evaluated on the pooled held-out rows (the same split by patient), for
/// logistic regression and a one-hidden-layer MLP. The cohort is about Diabetes-130's size
/// (7,000 patients per average hospital); each case takes seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn federated_auroc_is_within_a_hundredth_of_centralized_training() {
    use fedcare_core::{Dataset, ModelSpec, Network, OptimizerConfig, TrainConfig, metrics::auroc};
    const HOSPITALS: usize = 5;
    const PATIENTS: usize = 7000;
    const ROUNDS: u32 = 10;
    let cohort = tempfile::tempdir().unwrap();
    let files = fedcare_data::synth::write_cohort(cohort.path(), HOSPITALS, PATIENTS, 33).unwrap();
    let schema = Schema::diabetes130(true);
    let mut failures = Vec::new();
    for hidden in [vec![], vec![16u32]] {
        let out = tempfile::tempdir().unwrap();
        let options = SimulateOptions {
            hospitals: HOSPITALS,
            rounds: ROUNDS,
            hidden: hidden.clone(),
            epochs: 1,
            learning_rate: 1e-3,
            batch_size: 64,
            data: Some(cohort.path().to_path_buf()),
            ..options(out.path())
        };
        let report = simulation::run(&options, None, None).await.unwrap();
        let federated = report.outcome.kept().unwrap().auroc.unwrap();

        // The same split, the same (federated = pooled) feature scaling, one pooled data set.
        let pool = |parts: Vec<Dataset>| {
            let labels: Vec<f32> = parts.iter().flat_map(|d| d.labels().iter().copied()).collect();
            let features: Vec<f32> = parts.iter().flat_map(|d| d.features().iter().copied()).collect();
            Dataset::new(features, labels, schema.width()).unwrap()
        };
        let (mut train_parts, mut test_parts) = (Vec::new(), Vec::new());
        let test_fraction = f64::from(TrainingSettings::default().test_fraction);
        for path in &files {
            let (table, _) = read_csv(path, &schema, BadRows::Skip { limit: 1000 }).unwrap();
            let name = path.file_stem().unwrap().to_str().unwrap();
            let (train, test) = table.split_by_group(test_fraction, split_seed(options.seed, name));
            train_parts.push(
                train
                    .to_dataset_with(&schema, &report.outcome.figures.feature_stats, &report.outcome.figures.top_k)
                    .unwrap(),
            );
            test_parts.push(
                test.to_dataset_with(&schema, &report.outcome.figures.feature_stats, &report.outcome.figures.top_k)
                    .unwrap(),
            );
        }
        let (train, test) = (pool(train_parts), pool(test_parts));
        let widths: Vec<usize> = hidden.iter().map(|&h| h as usize).collect();
        let spec = ModelSpec::mlp(schema.width(), &widths).unwrap();
        // The federation hands out the best of the models it evaluated (by the held-out AUROC), so
        // the centralized side keeps its best epoch too: training for e epochs from the same start
        // is the first e epochs of a longer run.
        let mut centralized = 0.0f64;
        for epochs in 1..=ROUNDS * options.epochs {
            let mut params = fedcare_core::rng::init_params(&spec, options.seed);
            let config = TrainConfig {
                epochs,
                batch_size: options.batch_size as usize,
                optimizer: OptimizerConfig::adam(options.learning_rate),
                pos_weight: train.balanced_pos_weight(),
                l2: TrainingSettings::default().l2,
                prox_mu: 0.0,
                seed: options.seed,
            };
            fedcare_core::train(&spec, &mut params, &train, &config).unwrap();
            let scores = Network::new(&spec).predict(&params, test.features()).unwrap();
            centralized = centralized.max(auroc(&scores, test.labels()).unwrap());
        }
        let figures = format!(
            "hidden {hidden:?}: federated AUROC {federated:.4} vs centralized {centralized:.4}, best epoch (gap {:+.4}); \
             {HOSPITALS} hospitals, {} train / {} test rows, {ROUNDS} rounds x {} epoch, Adam lr {}, batch {}",
            federated - centralized,
            train.rows(),
            test.rows(),
            options.epochs,
            options.learning_rate,
            options.batch_size
        );
        eprintln!("{figures}");
        if (federated - centralized).abs() > 0.01 {
            failures.push(figures);
        }
    }
    assert!(failures.is_empty(), "federated AUROC more than 0.01 from centralized: {failures:#?}");
}

/// Wards of the `top_k` test and each hospital's weights for them: every hospital's own top 3
/// differs from the federation's.
const WARDS: [&str; 8] = ["icu", "cardio", "neuro", "ortho", "onco", "peds", "geri", "psych"];
const WARD_WEIGHTS: [[u32; 8]; 3] =
    [[30, 2, 25, 1, 20, 12, 6, 4], [2, 30, 25, 20, 1, 8, 10, 4], [28, 26, 2, 20, 1, 5, 9, 9]];

/// Writes one hospital's CSV (patient, age, ward, sex, readmitted) with skewed ward frequencies;
/// returns the ward of every row ("?" when missing).
fn write_ward_hospital(path: &std::path::Path, hospital: usize, rows: usize) -> Vec<String> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (hospital as u64 + 1);
    let mut next = move |n: u32| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % u64::from(n)) as u32
    };
    let weights = WARD_WEIGHTS[hospital];
    let total: u32 = weights.iter().sum();
    let mut text = String::from("patient,age,ward,sex,readmitted\n");
    let mut wards = Vec::new();
    for row in 0..rows {
        let ward = if next(25) == 0 {
            "?".to_string()
        } else {
            let mut draw = next(total);
            let index = weights
                .iter()
                .position(|&w| {
                    if draw < w {
                        true
                    } else {
                        draw -= w;
                        false
                    }
                })
                .unwrap();
            WARDS[index].to_string()
        };
        let sex = ["F", "M"][next(2) as usize];
        let risky = ward == "icu" || ward == "onco";
        let label = if next(10) < if risky { 4 } else { 1 } { "yes" } else { "no" };
        text += &format!("h{hospital}-p{},{},{ward},{sex},{label}\n", row / 2, 20 + next(70));
        wards.push(ward);
    }
    std::fs::write(path, text).unwrap();
    wards
}

/// A federation on a TOML schema with a `top_k` column: the buckets chosen through the secure sum
/// are exactly the top 3 of the pooled training rows (no single hospital's top 3), every hospital
/// one-hot encodes with them, the checkpoint and model file keep them, and `fedcare predict`
/// maps values to the same slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn top_k_buckets_chosen_through_the_secure_sum_are_the_pooled_top_k() {
    use fedcare_data::top_k::bucket_of;
    let data = tempfile::tempdir().unwrap();
    let schema_path = data.path().join("wards.toml");
    std::fs::write(
        &schema_path,
        "id = \"wards/v1\"\nlabel = { column = \"readmitted\", positive = [\"yes\"] }\ngroup = \"patient\"\n\
         [[numeric]]\nname = \"age\"\n\
         [[categorical]]\nname = \"ward\"\ntop_k = 3\nbuckets = 256\n\
         [[categorical]]\nname = \"sex\"\nvocabulary = [\"F\", \"M\"]\n",
    )
    .unwrap();
    let schema = Schema::by_name(schema_path.to_str().unwrap()).unwrap();
    assert_eq!(schema.width(), 1 + 4 + 3);
    let names = ["hospital-a", "hospital-b", "hospital-c"];
    let wards: Vec<Vec<String>> = names
        .iter()
        .enumerate()
        .map(|(h, name)| write_ward_hospital(&data.path().join(format!("{name}.csv")), h, 160 + 40 * h))
        .collect();

    let out = tempfile::tempdir().unwrap();
    let seen: Arc<Mutex<BTreeMap<String, Vec<LocalUpdate>>>> = Arc::default();
    let options = SimulateOptions {
        rounds: 1,
        hidden: vec![4],
        data: Some(data.path().to_path_buf()),
        schema: Some(schema.clone()),
        ..options(out.path())
    };
    let report = simulation::run(&options, Some(&recording(seen.clone())), None).await.unwrap();
    let chosen = &report.outcome.figures.top_k;

    // The plaintext reference: ward counts over the pooled training rows, summed per bucket.
    let bucket = |ward: &str| bucket_of("ward", ward, 256, None);
    let mut pooled = BTreeMap::<u32, u64>::new();
    let mut tables = Vec::new();
    for name in names {
        let path = data.path().join(format!("{name}.csv"));
        let (table, _) = read_csv(&path, &schema, BadRows::Reject).unwrap();
        let (train, _) = table.split_by_group(0.2, split_seed(options.seed, name));
        let mut local = BTreeMap::<u32, u64>::new();
        let rows = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = rows.lines().collect();
        for &line in train.lines() {
            let ward = lines[line as usize - 1].split(',').nth(2).unwrap();
            if ward != "?" {
                *pooled.entry(bucket(ward)).or_default() += 1;
                *local.entry(bucket(ward)).or_default() += 1;
            }
        }
        let mut local: Vec<(u32, u64)> = local.into_iter().collect();
        local.sort_by_key(|&(b, c)| (core::cmp::Reverse(c), b));
        tables.push((table, local.iter().take(3).map(|&(b, _)| b).collect::<Vec<u32>>()));
    }
    let mut ranked: Vec<(u32, u64)> = pooled.into_iter().collect();
    ranked.sort_by_key(|&(b, c)| (core::cmp::Reverse(c), b));
    let expected: Vec<u32> = ranked.iter().take(3).map(|&(b, _)| b).collect();
    assert_eq!(chosen, core::slice::from_ref(&expected));
    for (_, local_top) in &tables {
        assert_ne!(local_top, &expected, "the data should make the federation's top 3 differ from a hospital's");
    }
    // Every hospital trained on inputs one-hot over the federation's buckets: what it trained on
    // is its training split encoded with the chosen buckets, exactly.
    let stats = &report.outcome.figures.feature_stats;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for ((table, _), name) in tables.iter().zip(names) {
        let (train, _) = table.split_by_group(0.2, split_seed(options.seed, name));
        let inputs = train.to_dataset_with(&schema, stats, chosen).unwrap();
        let trained = &seen[name];
        assert_eq!(trained.len(), 1, "{name} trained once");
        assert_eq!(trained[0].features, inputs.features(), "{name}");
    }
    // The layout: a ward's slot depends on the ward alone, the same in every hospital.
    for ((table, _), wards) in tables.iter().zip(&wards) {
        let dataset = table.to_dataset_with(&schema, stats, chosen).unwrap();
        for (row, ward) in wards.iter().enumerate() {
            let slots = &dataset.features()[row * 8 + 1..row * 8 + 5];
            let slot = if ward == "?" { 3 } else { expected.iter().position(|&b| b == bucket(ward)).unwrap_or(3) };
            let mut one_hot = [0.0f32; 4];
            one_hot[slot] = 1.0;
            assert_eq!(slots, one_hot, "row {row}, ward {ward}");
        }
    }
    // The checkpoint and the model file keep the chosen buckets; predict maps with them.
    let checkpoint = fedcare_federation::persistence::load_checkpoint(out.path()).unwrap().unwrap();
    assert_eq!(&checkpoint.figures.top_k, chosen);
    let model = fedcare_data::predict::read_model_file(&out.path().join("model.bin")).unwrap();
    assert_eq!(&model.category_buckets, chosen);
    let scores = out.path().join("scores.csv");
    let path = data.path().join("hospital-b.csv");
    fedcare_data::predict::predict_file(&model, &schema, &path, &scores, BadRows::Reject).unwrap();
    let dataset = tables[1].0.to_dataset_with(&schema, stats, chosen).unwrap();
    let logits = fedcare_core::Network::new(&model.spec).predict(&model.params, dataset.features()).unwrap();
    let text = std::fs::read_to_string(&scores).unwrap();
    assert_eq!(text.lines().count(), logits.len() + 1);
    for (line, logit) in text.lines().skip(1).zip(&logits) {
        let written: f32 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!((written - fedcare_core::loss::sigmoid(*logit)).abs() < 1e-6, "{line} vs {logit}");
    }
    // A model whose buckets do not fit the schema is refused, not silently used.
    let mut wrong = model.clone();
    wrong.category_buckets = vec![vec![256]];
    let error = fedcare_data::predict::predict_file(&wrong, &schema, &path, &scores, BadRows::Reject).unwrap_err();
    assert!(matches!(error, fedcare_data::DataError::TopKChoice { .. }), "{error}");
    assert!(error.to_string().contains("bucket 256"), "{error}");
}

/// Every hospital receives the aggregator's model file byte for byte — with the federated
/// feature scaling and the metrics — and scores its own patients with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hospital_receives_the_aggregators_model_file_and_scores_with_it() {
    let cohort = tempfile::tempdir().unwrap();
    let files = fedcare_data::synth::write_cohort(cohort.path(), 3, 300, 12).unwrap();
    let out = tempfile::tempdir().unwrap();
    let options = SimulateOptions { rounds: 2, data: Some(cohort.path().to_path_buf()), ..options(out.path()) };
    let report = simulation::run(&options, None, None).await.unwrap();
    let written = std::fs::read(out.path().join("model.bin")).unwrap();
    assert_eq!(report.received.len(), 3);
    for (name, received) in report.hospitals.iter().zip(&report.received) {
        assert_eq!(received.as_deref(), Some(written.as_slice()), "{name} received another model");
    }
    let model = fedcare_core::ModelFile::from_bytes(report.received[0].as_ref().unwrap()).unwrap();
    let schema = Schema::diabetes130(true);
    assert_eq!(model.feature_scaling, report.outcome.figures.feature_stats);
    assert_eq!(model.feature_scaling.len(), schema.numeric.len());
    let kept = report.outcome.kept().unwrap();
    assert_eq!(model.metrics.get("auroc"), kept.auroc.as_ref());
    let scores = out.path().join("scores.csv");
    let scored = fedcare_data::predict::predict_file(&model, &schema, &files[0], &scores, BadRows::Reject).unwrap();
    let text = std::fs::read_to_string(&scores).unwrap();
    assert_eq!(text.lines().count(), scored.ingest.rows + 1);
    let evaluation = scored.evaluation.unwrap();
    assert_eq!(evaluation.rows as usize, scored.ingest.rows);
    assert!(evaluation.auroc.is_some_and(|a| a > 0.5), "{evaluation:?}");
    // The kept model's Platt scaling is in the file, and it calibrates: the class-weighted
    // model's own probabilities are far above the observed rate.
    assert!(model.calibration.is_some());
    assert_eq!(model.calibration, kept.platt);
    let uncalibrated = fedcare_core::ModelFile { calibration: None, ..model.clone() };
    let raw = fedcare_data::predict::predict_file(&uncalibrated, &schema, &files[0], &scores, BadRows::Reject).unwrap();
    let raw = raw.evaluation.unwrap();
    let ece = |e: &fedcare_core::Evaluation| fedcare_core::metrics::expected_calibration_error(&e.calibration);
    assert!(ece(&evaluation) < ece(&raw) / 3.0, "ECE {} calibrated, {} not", ece(&evaluation), ece(&raw));
    assert_eq!(evaluation.auroc, raw.auroc, "a calibration keeps the ranking");
    for line in text.lines().skip(1) {
        let probability: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&probability), "{line}");
    }
}

/// A hospital whose file is too small to hold out any patient tells the aggregator and is
/// dropped at once: the others finish long before the phase deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hospital_that_cannot_take_part_leaves_and_is_dropped_at_once() {
    let cohort = tempfile::tempdir().unwrap();
    let files = fedcare_data::synth::write_cohort(cohort.path(), 3, 300, 13).unwrap();
    // hospital-03 keeps one encounter: its split leaves one side empty.
    let text = std::fs::read_to_string(&files[2]).unwrap();
    let lines: Vec<&str> = text.lines().take(2).collect();
    std::fs::write(&files[2], lines.join("\n") + "\n").unwrap();
    let out = tempfile::tempdir().unwrap();
    let options = SimulateOptions {
        rounds: 1,
        phase_timeout_secs: 120,
        data: Some(cohort.path().to_path_buf()),
        schema: Some(Schema::diabetes130(false)),
        ..options(out.path())
    };
    let started = std::time::Instant::now();
    let report = simulation::run(&options, None, None).await.unwrap();
    assert!(started.elapsed().as_secs() < 60, "waited {:?}: the deadline was not needed", started.elapsed());
    assert!(report.outcome.records.iter().all(|r| r.hospitals == 2), "{:?}", report.outcome.records);
    assert_eq!(report.received[2], None, "the small hospital stopped with its error");
    assert!(report.received[..2].iter().all(Option::is_some));
}

/// FedAdam with its own defaults reaches FedAvg's final AUROC (within 0.01) on the default
/// synthetic cohort; with FedAvg's server rate of 1.0 it collapsed to chance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fedadam_with_its_defaults_reaches_fedavgs_auroc() {
    let mut finals = Vec::new();
    for rule in ["fedavg", "fedadam"] {
        let out = tempfile::tempdir().unwrap();
        let options = SimulateOptions {
            rule: ServerRule::named(rule).unwrap(),
            transport: Transport::InProcess,
            out: out.path().to_path_buf(),
            ..SimulateOptions::default()
        };
        let report = simulation::run(&options, None, None).await.unwrap();
        let auroc = report.outcome.records.last().unwrap().auroc.unwrap();
        eprintln!("{rule}: last model's AUROC {auroc:.4}");
        finals.push(auroc);
    }
    let (fedavg, fedadam) = (finals[0], finals[1]);
    assert!(fedadam >= fedavg - 0.01, "FedAdam {fedadam:.4} vs FedAvg {fedavg:.4}");
    assert!(fedadam > 0.55, "FedAdam learned nothing: {fedadam:.4}");
}

/// An aggregator waiting for its hospitals stays idle: its own deadline ticks wake nobody (they
/// used to wake the drive loop, and every waiting long-poll, at once and forever, spinning a core).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_aggregator_wakes_nobody() {
    let out = tempfile::tempdir().unwrap();
    let names = vec!["hospital-a".to_string(), "hospital-b".to_string()];
    let config = plan(&names, 60, out.path(), out.path());
    let aggregator = AggregatorServer::new(config.plan().unwrap(), &config.out_dir).unwrap();
    let mut changes = aggregator.subscribe();
    let (_link, listener) = in_process();
    let serving = {
        let aggregator = aggregator.clone();
        tokio::spawn(async move { aggregator.serve_in_process(listener, core::future::pending()).await })
    };
    let until = tokio::time::Instant::now() + core::time::Duration::from_secs(1);
    let mut wakeups = 0;
    while tokio::time::timeout_at(until, changes.changed()).await.is_ok() {
        wakeups += 1;
    }
    assert!(wakeups <= 2, "{wakeups} wake-ups in one idle second");
    serving.abort();
}
