//! A hospital that dies mid-round, in-process: it is dropped at the phase deadline, the round
//! restarts without it, and once it is started again (same identity) it rejoins and takes part
//! again. (The aggregator's own crashes, with a real process, are tested in `fedcare-cli`.)

use core::time::Duration;
use std::time::Instant;

use fedcare_federation::config::{AggregatorConfig, ModelConfig, ServerRule, TlsFiles, TrainingSettings};
use fedcare_federation::hospital::{Connection, HospitalData, HospitalNode, trainer::CpuTrainer};
use fedcare_federation::identity::{InProcessLink, in_process};
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
    HospitalNode::new(connection, "recovery", data, Box::new(CpuTrainer), trust)
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
        federation_id: "recovery".into(),
        listen: "127.0.0.1:0".into(),
        hospitals: HOSPITALS.iter().map(|s| s.to_string()).collect(),
        min_hospitals: 2,
        rounds: 12,
        phase_timeout_secs: 4,
        join_timeout_secs: 30,
        out_dir: dir.path().join("out"),
        seed: 0,
        eval_bins: 16,
        schema_id: "synthetic/v1".into(),
        numeric_features: 0,
        top_k: Vec::new(),
        schema: None,
        model: ModelConfig { input_width: 16, hidden: vec![8] },
        training: TrainingSettings::default(),
        server: ServerRule::default(),
        tls: TlsFiles { ca: "unused".into(), cert: "unused".into(), key: "unused".into() },
    };
    let aggregator = AggregatorServer::new(config.plan().unwrap()).unwrap();
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
