//! Load test (run by hand: `cargo test --release -p fedcare-cli --test load -- --ignored --nocapture`):
//! 32 hospitals (in-process clients over loopback) and a real aggregator process with a
//! 1M-parameter model complete 3 rounds; prints the aggregator's peak memory and round times.

use core::time::Duration;
use std::process::Command;
use std::time::Instant;

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use fedcare_federation::hospital::{Connection, HospitalData, HospitalNode, trainer::CpuTrainer};
use fedcare_federation::tls;

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "load test: minutes of CPU; run by hand"]
async fn thirty_two_hospitals_with_a_million_parameters() {
    const HOSPITALS: usize = 32;
    tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let names: Vec<String> = (0..HOSPITALS).map(|i| format!("h{i:02}")).collect();
    tls::generate_dev_pki(&pki, &names, &[]).unwrap();
    let list = names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ");
    let config = format!(
        "federation_id = \"load\"\nlisten = \"127.0.0.1:0\"\nhospitals = [{list}]\nmin_hospitals = 2\nrounds = 3\n\
         phase_timeout_secs = 600\njoin_timeout_secs = 120\nout_dir = \"{out}\"\n[model]\ninput_width = 16\nhidden = [1024, 960]\n\
         [tls]\nca = \"{pki}/ca.pem\"\ncert = \"{pki}/aggregator.pem\"\nkey = \"{pki}/aggregator.key\"\n",
        out = dir.path().join("out").display(),
        pki = pki.display()
    );
    let config_path = dir.path().join("aggregator.toml");
    std::fs::write(&config_path, config).unwrap();
    let params = fedcare_core::ModelSpec::mlp(16, &[1024, 960]).unwrap().param_count();

    let start = Instant::now();
    let mut aggregator = Command::new(env!("CARGO_BIN_EXE_fedcare"))
        .args(["serve", "--config"])
        .arg(&config_path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = aggregator.id();
    let mut stdout = BufReader::new(aggregator.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let nodes: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let (cert, key) = tls::party_files(&pki, name);
            let connection = Connection::Tls {
                url: format!("https://localhost:{port}"),
                tls: tls::client_tls(&pki.join(tls::files::CA_CERT), &cert, &key, "localhost").unwrap(),
            };
            let data = HospitalData::Ready(fedcare_data::plain::synthetic_hospital(index, HOSPITALS, 300, 5));
            let trust = tls::dev_trust(&pki, name, &names, &dir.path().join("state").join(name)).unwrap();
            tokio::spawn(HospitalNode::new(connection, "load", data, Box::new(CpuTrainer), trust).run())
        })
        .collect();
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        if let Some(status) = aggregator.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(1800), "load test did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success());
    for node in nodes {
        node.await.unwrap().unwrap();
    }
    let metrics = std::fs::read_to_string(dir.path().join("out/metrics.jsonl")).unwrap();
    println!("load test: {HOSPITALS} hospitals, {params} parameters, whole run {:.1} s", start.elapsed().as_secs_f64());
    println!("aggregator peak RSS (VmHWM, sampled every 50 ms): {:.0} MiB", peak as f64 / 1024.0);
    for line in metrics.lines() {
        println!("{line}");
    }
    assert_eq!(metrics.lines().count(), 5);
}
