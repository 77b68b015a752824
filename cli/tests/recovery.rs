//! Crash safety with a real aggregator process (`fedcare serve`) over TCP with mTLS: killed with
//! SIGKILL mid-training and started again on the same directory, it resumes from its checkpoint
//! and the federation ends with the same model as an uninterrupted run; SIGTERM stops it cleanly.
//!
//! The aggregator listens on port 0 and prints the port it got; a restarted aggregator listens on
//! that same port again (the hospitals reconnect to it).

use core::time::Duration;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use fedcare_data::predict::read_model_file;
use fedcare_federation::hospital::{Connection, FinalModel, HospitalData, HospitalNode, trainer::CpuTrainer};
use fedcare_federation::protocol::Agreement;
use fedcare_federation::tls;

const HOSPITALS: [&str; 3] = ["h1", "h2", "h3"];

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

/// `fedcare serve --config config` and the port it listens on (its first line of output).
fn serve(config: &Path) -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fedcare"))
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let port = line
        .trim()
        .strip_prefix("aggregator listening on ")
        .and_then(|address| address.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (child, port)
}

async fn wait_for_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "the aggregator did not finish in {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
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

/// Hospital `index` of [`HOSPITALS`], connecting to the aggregator on `port`, with its
/// decryption ledger in `state/<run>/` (one per federation run: a hospital never decrypts the
/// same round of the same federation twice, so the reference run and the resumed run need
/// ledgers of their own).
fn hospital_node(pki: &Path, port: u16, index: usize, run: &str) -> HospitalNode {
    let (cert, key) = tls::party_files(pki, HOSPITALS[index]);
    let connection = Connection::Tls {
        url: format!("https://localhost:{port}"),
        tls: tls::client_tls(&pki.join(tls::files::CA_CERT), &cert, &key, "localhost").unwrap(),
    };
    let data = HospitalData::Ready(fedcare_data::plain::synthetic_hospital(index, HOSPITALS.len(), 500, 3));
    let names: Vec<String> = HOSPITALS.iter().map(|s| s.to_string()).collect();
    let state = pki.parent().unwrap().join("state").join(run).join(HOSPITALS[index]);
    let trust = tls::dev_trust(pki, HOSPITALS[index], &names, &state).unwrap();
    HospitalNode::new(connection, Agreement::train("recovery"), data, Box::new(CpuTrainer::default()), trust)
}

type Running = tokio::task::JoinHandle<fedcare_federation::Result<FinalModel>>;

fn hospitals(pki: &Path, port: u16, run: &str) -> Vec<Running> {
    (0..HOSPITALS.len()).map(|index| tokio::spawn(hospital_node(pki, port, index, run).run())).collect()
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
    let (mut aggregator, port) = serve(&write_config(dir.path(), &pki, 0, &reference_out));
    let nodes = hospitals(&pki, port, "reference");
    assert!(wait_for_exit(&mut aggregator, Duration::from_secs(120)).await.success());
    for node in nodes {
        node.await.unwrap().unwrap();
    }

    // The same federation, killed once round 2 is checkpointed, then started again on its port.
    let out = dir.path().join("resumed");
    let (mut aggregator, port) = serve(&write_config(dir.path(), &pki, 0, &out));
    let nodes = hospitals(&pki, port, "resumed");
    wait_for_round(&out, 2).await;
    aggregator.kill().unwrap(); // SIGKILL
    aggregator.wait().unwrap();
    let checkpointed = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(checkpointed.lines().count() >= 3, "setup and rounds 1-2 survive the kill");

    let (mut aggregator, again) = serve(&write_config(dir.path(), &pki, port, &out));
    assert_eq!(again, port);
    assert!(wait_for_exit(&mut aggregator, Duration::from_secs(120)).await.success());
    for node in nodes {
        let received = node.await.unwrap().unwrap();
        assert_eq!(
            received.bytes.as_ref(),
            std::fs::read(out.join("model.bin")).unwrap(),
            "each hospital got model.bin"
        );
    }

    let reference = read_model_file(&reference_out.join("model.bin")).unwrap();
    let resumed = read_model_file(&out.join("model.bin")).unwrap();
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let rounds: Vec<&str> = lines.lines().collect();
    if rounds.len() == 6 {
        assert_eq!(resumed.params, reference.params, "the resumed federation ends with the uninterrupted model");
    } else {
        // The kill fell inside a round's decryption before its decrypted sum went out (after
        // that, the resumed aggregator recovers the sum from the hospitals), or after a round's
        // metrics but before its checkpoint, when the checkpoint recorded that round's decryption
        // as opened and some hospital had already moved on to the next session: hospitals never
        // decrypt a round twice, so the resumed federation went on without that one round, and
        // its model differs from the reference.
        assert_eq!(rounds.len(), 5, "setup, 3 training rounds and the evaluation:\n{lines}");
        let missing: Vec<u32> = (1..=4).filter(|r| !lines.contains(&format!("\"round\":{r},"))).collect();
        assert!(matches!(missing.as_slice(), [2..=4]), "one round from round 2 on is given up: {missing:?}\n{lines}");
        assert_ne!(resumed.params, reference.params);
    }
}

/// SIGTERM stops the aggregator cleanly (exit 0, checkpoint kept); started again it resumes.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_stops_the_aggregator_cleanly_and_it_resumes() {
    let (dir, pki) = dev_pki();
    let out = dir.path().join("out");
    let (mut aggregator, port) = serve(&write_config(dir.path(), &pki, 0, &out));
    let nodes = hospitals(&pki, port, "run");
    wait_for_round(&out, 1).await;
    let pid = aggregator.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = wait_for_exit(&mut aggregator, Duration::from_secs(30)).await;
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    assert!(out.join("aggregator.ckpt").exists());

    let (mut aggregator, _) = serve(&write_config(dir.path(), &pki, port, &out));
    assert!(wait_for_exit(&mut aggregator, Duration::from_secs(120)).await.success());
    for node in nodes {
        if let Err(error) = node.await.unwrap() {
            panic!("a hospital failed: {error}");
        }
    }
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    // Every session once; a round whose decryption had opened when the signal came is given up
    // (hospitals never decrypt a round twice), the others all completed.
    let count = lines.lines().count();
    assert!(count == 6 || (count == 5 && lines.contains("\"kind\":\"evaluate\"")), "{lines}");
}
