//! Crash safety with a real aggregator process: killed with SIGKILL mid-training and started
//! again on the same directory, it resumes from its checkpoint and the federation ends with the
//! same model as an uninterrupted run.

use core::time::Duration;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Instant;

use fedcare_node::hospital::{Connection, HospitalNode};
use fedcare_node::{data, inspect, tls, trainer};

const HOSPITALS: [&str; 3] = ["h1", "h2", "h3"];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn write_config(dir: &Path, pki: &Path, port: u16, out: &Path) -> PathBuf {
    let config = format!(
        r#"
federation_id = "recovery"
listen = "127.0.0.1:{port}"
hospitals = ["h1", "h2", "h3"]
min_hospitals = 2
rounds = 4
phase_timeout_secs = 60
join_timeout_secs = 60
out_dir = "{out}"
[model]
input_width = 16
hidden = [8]
[tls]
ca = "{pki}/ca.pem"
cert = "{pki}/aggregator.pem"
key = "{pki}/aggregator.key"
"#,
        out = out.display(),
        pki = pki.display()
    );
    let path = dir.join(format!("aggregator-{port}.toml"));
    std::fs::write(&path, config).unwrap();
    path
}

fn serve(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fedcare")).args(["serve", "--config"]).arg(config).spawn().unwrap()
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "the aggregator did not finish in {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temporary directory with a development PKI for [`HOSPITALS`] in `pki/`.
fn dev_pki() -> (tempfile::TempDir, PathBuf) {
    tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let names: Vec<String> = HOSPITALS.iter().map(|s| s.to_string()).collect();
    tls::generate_dev_pki(&pki, &names, &[]).unwrap();
    (dir, pki)
}

/// Hospital `index` of [`HOSPITALS`], connecting to the aggregator on `port`.
fn hospital_node(pki: &Path, port: u16, index: usize) -> HospitalNode {
    let (cert, key) = tls::party_files(pki, HOSPITALS[index]);
    let connection = Connection {
        url: format!("https://localhost:{port}"),
        tls: tls::client_tls(&pki.join(tls::files::CA_CERT), &cert, &key, "localhost").unwrap(),
        federation_id: "recovery".into(),
    };
    let data = data::synthetic_hospital(index, HOSPITALS.len(), 500, 3);
    HospitalNode::new(connection, data, Box::new(trainer::CpuTrainer))
}

fn hospitals(pki: &Path, port: u16) -> Vec<tokio::task::JoinHandle<anyhow::Result<fedcare_core::ModelFile>>> {
    (0..HOSPITALS.len()).map(|index| tokio::spawn(hospital_node(pki, port, index).run())).collect()
}

/// Waits until `metrics.jsonl` in `out` records `round`.
async fn wait_for_round(out: &Path, round: u32) {
    let start = Instant::now();
    let needle = format!("\"round\":{round},");
    while !std::fs::read_to_string(out.join("metrics.jsonl")).unwrap_or_default().contains(&needle) {
        assert!(start.elapsed() < Duration::from_secs(120), "round {round} never completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_aggregator_resumes_and_ends_with_the_uninterrupted_model() {
    let (dir, pki) = dev_pki();

    // Uninterrupted reference run.
    let reference_out = dir.path().join("reference");
    let port = free_port();
    let mut aggregator = serve(&write_config(dir.path(), &pki, port, &reference_out));
    let nodes = hospitals(&pki, port);
    assert!(wait_for_exit(&mut aggregator, Duration::from_secs(120)).success());
    for node in nodes {
        node.await.unwrap().unwrap();
    }

    // The same federation, killed once round 2 is checkpointed, then started again.
    let out = dir.path().join("resumed");
    let port = free_port();
    let config = write_config(dir.path(), &pki, port, &out);
    let mut aggregator = serve(&config);
    let nodes = hospitals(&pki, port);
    wait_for_round(&out, 2).await;
    aggregator.kill().unwrap(); // SIGKILL
    aggregator.wait().unwrap();
    let checkpointed = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(checkpointed.lines().count() >= 3, "setup and rounds 1-2 survive the kill");

    let mut aggregator = serve(&config);
    assert!(wait_for_exit(&mut aggregator, Duration::from_secs(120)).success());
    for node in nodes {
        node.await.unwrap().unwrap();
    }

    let reference = inspect::read_model_file(&reference_out.join("model.bin")).unwrap();
    let resumed = inspect::read_model_file(&out.join("model.bin")).unwrap();
    assert_eq!(resumed.params, reference.params, "the resumed federation ends with the uninterrupted model");
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let rounds: Vec<&str> = lines.lines().collect();
    assert_eq!(rounds.len(), 6, "setup, 4 training rounds and the evaluation, each once:\n{lines}");
}

/// A hospital that dies mid-round is dropped at the deadline, the round restarts without it,
/// and once it is started again (same certificate) it rejoins and takes part again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_hospital_rejoins_and_takes_part_again() {
    use fedcare_node::aggregator::Aggregator;
    use fedcare_node::config::{AggregatorConfig, ModelConfig, ServerSettings, TlsFiles, TrainingSettings};

    let (dir, pki) = dev_pki();
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
        server: ServerSettings::default(),
        tls: TlsFiles {
            ca: pki.join(tls::files::CA_CERT),
            cert: pki.join(tls::files::SERVER_CERT),
            key: pki.join(tls::files::SERVER_KEY),
        },
    };
    let server_tls = tls::server_tls(&config.tls.ca, &config.tls.cert, &config.tls.key).unwrap();
    let aggregator = Aggregator::new(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = {
        let aggregator = aggregator.clone();
        tokio::spawn(async move { aggregator.serve(listener, server_tls).await })
    };
    let mut nodes = hospitals(&pki, port);
    let h3 = nodes.pop().unwrap();

    let wait_for = |predicate: &dyn Fn(&[fedcare_node::aggregator::RoundRecord]) -> bool| {
        let start = Instant::now();
        loop {
            if predicate(&aggregator.records()) {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "timed out");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(&|records| records.iter().any(|r| r.round == 1));
    h3.abort(); // the hospital's process dies: its connections close
    wait_for(&|records| records.iter().any(|r| r.kind == "train" && r.hospitals == 2));
    // Started again with the same certificate.
    let restarted = tokio::spawn(hospital_node(&pki, port, 2).run());

    let outcome = serving.await.unwrap().unwrap();
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    for node in nodes {
        node.await.unwrap().unwrap();
    }
    restarted.await.unwrap().unwrap();
    let records = outcome.records;
    let dropped = records.iter().position(|r| r.kind == "train" && r.hospitals == 2).unwrap();
    assert!(records[dropped].attempt >= 1, "the round restarted without the dead hospital");
    assert!(
        records[dropped + 1..].iter().any(|r| r.hospitals == 3),
        "the restarted hospital took part again: {records:?}"
    );
}

/// SIGTERM stops the aggregator cleanly (exit 0, checkpoint kept); started again it resumes.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_stops_the_aggregator_cleanly_and_it_resumes() {
    let (dir, pki) = dev_pki();
    let out = dir.path().join("out");
    let port = free_port();
    let config = write_config(dir.path(), &pki, port, &out);
    let mut aggregator = serve(&config);
    let nodes = hospitals(&pki, port);
    wait_for_round(&out, 1).await;
    let pid = aggregator.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = wait_for_exit(&mut aggregator, Duration::from_secs(30));
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    assert!(out.join("aggregator.ckpt").exists());

    let mut aggregator = serve(&config);
    assert!(wait_for_exit(&mut aggregator, Duration::from_secs(120)).success());
    for node in nodes {
        node.await.unwrap().unwrap();
    }
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 6, "{lines}");
}
