//! A hospital that dies mid-round, in-process: it is dropped at the phase deadline, the round
//! restarts without it, and once it is started again (same identity) it rejoins and takes part
//! again. An aggregator stopped after a session's decrypted sum went out resumes that result from
//! the hospitals that hold it. (The aggregator's crashes with a real process, killed at any
//! moment, are tested in `fedcare-cli`.)

use core::time::Duration;
use std::time::Instant;

mod common;

use fedcare_federation::protocol::{Agreement, TaskKind};

use fedcare_federation::config::{AggregatorConfig, ModelConfig, ServerRule, TlsFiles, TrainingSettings};
use fedcare_federation::hospital::{Connection, HospitalData, HospitalNode, trainer::CpuTrainer};
use fedcare_federation::identity::{InProcessLink, in_process};
use fedcare_federation::protocol::ledger::Ledger as _;
use fedcare_federation::protocol::{NodeId, RoundRecord, SessionKind};
use fedcare_federation::server::AggregatorServer;
use fedcare_federation::tls;

const HOSPITALS: [&str; 3] = ["h1", "h2", "h3"];

/// Hospital `index`, with its key and ledger under `dir` (the same after a restart).
fn hospital_node(link: &InProcessLink, dir: &std::path::Path, index: usize) -> HospitalNode {
    let connection = Connection::InProcess { link: link.clone(), node: NodeId::new(HOSPITALS[index]).unwrap() };
    let data = HospitalData::Ready(fedcare_data::plain::synthetic_hospital(index, HOSPITALS.len(), 500, 3));
    let names: Vec<String> = HOSPITALS.iter().map(|s| s.to_string()).collect();
    let trust = tls::dev_trust(&dir.join("pki"), HOSPITALS[index], &names, &dir.join(HOSPITALS[index])).unwrap();
    HospitalNode::new(connection, Agreement::train("recovery"), data, Box::new(CpuTrainer::default()), trust)
}

/// Waits (without blocking the runtime) until the aggregator's records satisfy `predicate`.
async fn wait_for(aggregator: &AggregatorServer, predicate: impl Fn(&[RoundRecord]) -> bool) {
    let start = Instant::now();
    let mut changes = aggregator.subscribe();
    while !predicate(&aggregator.records()) {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out");
        let _ = tokio::time::timeout(Duration::from_millis(200), changes.changed()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_hospital_rejoins_and_takes_part_again() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = HOSPITALS.iter().map(|s| s.to_string()).collect();
    tls::generate_dev_pki(&dir.path().join("pki"), &names, &[]).unwrap();
    let config = AggregatorConfig {
        privacy: None,
        federation_id: "recovery".into(),
        listen: "127.0.0.1:0".into(),
        hospitals: HOSPITALS.iter().map(|s| s.to_string()).collect(),
        min_hospitals: 2,
        rounds: 12,
        patience: None,
        phase_timeout_secs: 4,
        join_timeout_secs: 30,
        out_dir: dir.path().join("out"),
        seed: 0,
        crypto_threads: None,
        eval_bins: 16,
        schema_id: "synthetic/v1".into(),
        numeric_features: 0,
        top_k: Vec::new(),
        schema: None,
        top_k_key_fingerprint: None,
        model: ModelConfig { input_width: 16, hidden: vec![8], kind: Default::default() },
        boosting: Default::default(),
        numeric_edges: Vec::new(),
        training: TrainingSettings::default(),
        server: ServerRule::default(),
        tls: TlsFiles { ca: "unused".into(), cert: "unused".into(), key: "unused".into() },
        operations: Default::default(),
        job: Default::default(),
        explore: Default::default(),
        evaluation: Default::default(),
        tracking: Default::default(),
    };
    let aggregator = AggregatorServer::new(config.plan().unwrap(), &config.out_dir).unwrap();
    let (link, listener) = in_process();
    let serving = {
        let aggregator = aggregator.clone();
        tokio::spawn(async move { aggregator.serve_in_process(listener, core::future::pending()).await })
    };
    let mut nodes: Vec<_> = (0..3).map(|index| tokio::spawn(hospital_node(&link, dir.path(), index).run())).collect();
    let h3 = nodes.pop().unwrap();

    wait_for(&aggregator, |records| records.iter().any(|r| r.round == 1)).await;
    h3.abort(); // the hospital's process dies: its connections close
    wait_for(&aggregator, |records| records.iter().any(|r| r.kind == SessionKind::Train && r.hospitals == 2)).await;
    // Started again with the same identity.
    let restarted = tokio::spawn(hospital_node(&link, dir.path(), 2).run());

    let outcome = serving.await.unwrap().unwrap();
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    let mut received = Vec::new();
    for node in nodes {
        received.push(node.await.unwrap().unwrap().bytes);
    }
    received.push(restarted.await.unwrap().unwrap().bytes);
    assert!(received.windows(2).all(|w| w[0] == w[1]), "every hospital got the same final model");
    let records = outcome.records;
    let dropped = records.iter().position(|r| r.kind == SessionKind::Train && r.hospitals == 2).unwrap();
    // The round restarted without the dead hospital (a new attempt), or, when it died after the
    // round's decryption had opened, the next round went on without it.
    let restarted = records[dropped].attempt >= 1 || records[dropped - 1].round + 1 < records[dropped].round;
    assert!(restarted, "{records:?}");
    assert!(
        records[dropped + 1..].iter().any(|r| r.hospitals == 3),
        "the restarted hospital took part again: {records:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aggregator_stopped_after_the_result_went_out_resumes_it_from_the_hospitals() {
    tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let names: Vec<String> = HOSPITALS.iter().map(|s| s.to_string()).collect();
    tls::generate_dev_pki(&pki, &names, &[]).unwrap();
    let config = AggregatorConfig { rounds: 2, ..common::plan(&names, 30, &dir.path().join("out"), &pki) };
    let server_tls = || tls::server_tls(&config.tls.ca, &config.tls.cert, &config.tls.key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();

    // The first aggregator stops as round 1 reaches its attestation: every hospital has made
    // its decryption share and received the decrypted sum, the aggregator's copy is lost.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let first = AggregatorServer::new(config.plan().unwrap(), &config.out_dir).unwrap();
    tokio::spawn({
        let first = first.clone();
        async move {
            let mut changed = first.subscribe();
            loop {
                if matches!(first.position().0, Some((session, TaskKind::Attest)) if session.round == 1) {
                    let _ = stop.send(());
                    return;
                }
                if changed.changed().await.is_err() {
                    return;
                }
            }
        }
    });
    let serving = tokio::spawn({
        let tls = server_tls();
        async move { first.serve_until(listener, tls, async { stopped.await.unwrap_or(()) }).await }
    });
    let url = format!("https://localhost:{port}");
    let nodes: Vec<_> = HOSPITALS
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let (cert, key) = tls::party_files(&pki, name);
            let tls = tls::client_tls(&config.tls.ca, &cert, &key, "localhost").unwrap();
            let connection = Connection::Tls { url: url.clone(), tls };
            let data = HospitalData::Ready(fedcare_data::plain::synthetic_hospital(index, HOSPITALS.len(), 300, 5));
            let trust = tls::dev_trust(&pki, name, &names, &dir.path().join(name)).unwrap();
            let node =
                HospitalNode::new(connection, Agreement::train("test"), data, Box::new(CpuTrainer::default()), trust);
            tokio::spawn(node.run())
        })
        .collect();
    let stopped = serving.await.unwrap().unwrap();
    assert!(stopped.records.iter().all(|r| r.round == 0), "round 1 was not checkpointed: {:?}", stopped.records);

    // Started again on the same port and out_dir: it resumes round 1 from the hospitals' copy.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let second = AggregatorServer::new(config.plan().unwrap(), &config.out_dir).unwrap();
    let outcome = second.serve(listener, server_tls()).await.unwrap();
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    let sessions: Vec<(u32, SessionKind, u32)> = outcome.records.iter().map(|r| (r.round, r.kind, r.attempt)).collect();
    assert_eq!(
        sessions,
        [
            (0, SessionKind::Setup, 0),
            (1, SessionKind::Train, 0),
            (2, SessionKind::Train, 0),
            (3, SessionKind::Evaluate, 0)
        ],
        "round 1 completed in its first attempt, from the recovered sum"
    );
    let mut received = Vec::new();
    for node in nodes {
        received.push(node.await.unwrap().unwrap().bytes);
    }
    assert!(received.windows(2).all(|w| w[0] == w[1]), "every hospital got the same final model");
    // Every hospital decrypted each session once: the recovery decrypted nothing again.
    for name in HOSPITALS {
        let path = dir.path().join(name).join(fedcare_federation::participant::LEDGER_FILE);
        let ledger = fedcare_federation::participant::FileLedger::open(&path).unwrap();
        assert_eq!(ledger.releases().len(), 4, "{name}: {:?}", ledger.entries());
    }
}
