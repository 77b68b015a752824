//! Load on a real aggregator process (`fedcare serve`) with in-process hospitals over loopback:
//! - thousands of connections that never authenticate (silent, or sending garbage) while a
//!   federation runs: the federation finishes every round, and the aggregator closes them all
//!   (its open descriptors come back to where they were);
//! - by hand (`cargo test --release -p fedcare-cli --test load -- --ignored --nocapture`): 32
//!   hospitals with a 1M-parameter model complete 3 rounds; prints the aggregator's peak memory
//!   and round times.

use core::time::Duration;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use fedcare_federation::hospital::{Connection, FinalModel, HospitalData, HospitalNode, trainer::CpuTrainer};
use fedcare_federation::protocol::Agreement;
use fedcare_federation::tls;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A line of `/proc/PID/status` in KiB (`VmHWM`: peak resident memory; `VmRSS`: now).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The file descriptors the process holds open.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// A `fedcare serve` process and what its output says.
struct Aggregator {
    child: Child,
    pid: u32,
    port: u16,
}

impl Drop for Aggregator {
    // `keep_serving` aggregators never exit by themselves: a failed test must not leave one.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `fedcare serve` for `names` with `extra` TOML (before `[model]`) and `hidden` layers;
/// the receiver gets `()` when it prints that the federation is done.
fn serve(
    dir: &Path,
    names: &[String],
    rounds: u32,
    hidden: &str,
    extra: &str,
) -> (Aggregator, std::sync::mpsc::Receiver<()>) {
    let pki = dir.join("pki");
    let list = names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ");
    let config = format!(
        "federation_id = \"load\"\nlisten = \"127.0.0.1:0\"\nhospitals = [{list}]\nmin_hospitals = 2\nrounds = {rounds}\n\
         phase_timeout_secs = 600\njoin_timeout_secs = 120\nout_dir = \"{out}\"\n{extra}\n[model]\ninput_width = 16\nhidden = [{hidden}]\n\
         [tls]\nca = \"{pki}/ca.pem\"\ncert = \"{pki}/aggregator.pem\"\nkey = \"{pki}/aggregator.key\"\n",
        out = dir.join("out").display(),
        pki = pki.display()
    );
    let config_path = dir.join("aggregator.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fedcare"))
        .args(["serve", "--config"])
        .arg(&config_path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    let (said_done, done) = std::sync::mpsc::channel();
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if line.starts_with("federation done") {
                let _ = said_done.send(());
            }
        }
    });
    (Aggregator { child, pid, port }, done)
}

/// A development PKI for `names` in `dir/pki`.
fn dev_pki(dir: &Path, names: &[String]) {
    tls::install_crypto_provider();
    tls::generate_dev_pki(&dir.join("pki"), names, &[]).unwrap();
}

type Running = tokio::task::JoinHandle<fedcare_federation::Result<FinalModel>>;

/// The hospitals `names`, each with `rows` synthetic rows, joining the aggregator on `port`.
fn hospitals(dir: &Path, names: &[String], port: u16, rows: usize) -> Vec<Running> {
    let pki = dir.join("pki");
    names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let (cert, key) = tls::party_files(&pki, name);
            let connection = Connection::Tls {
                url: format!("https://localhost:{port}"),
                tls: tls::client_tls(&pki.join(tls::files::CA_CERT), &cert, &key, "localhost").unwrap(),
            };
            let data = HospitalData::Ready(fedcare_data::plain::synthetic_hospital(index, names.len(), rows, 5));
            let trust = tls::dev_trust(&pki, name, names, &dir.join("state").join(name)).unwrap();
            tokio::spawn(
                HospitalNode::new(connection, Agreement::train("load"), data, Box::new(CpuTrainer::default()), trust)
                    .run(),
            )
        })
        .collect()
}

/// Opens `count` connections to `port` from the loopback address 127.0.0.2 (the hospitals use
/// 127.0.0.1), a third of them sending bytes that are no TLS, none ever finishing a handshake;
/// returns how many were refused at once and how many the aggregator closed within `limit`.
async fn hostile_connections(port: u16, count: usize, limit: Duration) -> (usize, usize) {
    let target = core::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut streams = Vec::with_capacity(count);
    let mut refused = 0;
    for index in 0..count {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(core::net::SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
        let mut stream = match socket.connect(target).await {
            Ok(stream) => stream,
            // Some of a flood are refused outright (ECONNREFUSED): not held either.
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused += 1;
                continue;
            }
            Err(error) => panic!("hostile connection {index} could not be opened: {error}"),
        };
        if index % 3 == 0 {
            let _ = stream.write_all(&[0x42; 512]).await;
        }
        streams.push(stream);
    }
    let deadline = tokio::time::Instant::now() + limit;
    let mut closed = 0;
    for mut stream in streams {
        let mut buffer = [0u8; 256];
        let mut ended = false;
        while let Ok(Ok(read)) = tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            if read == 0 {
                ended = true;
                break;
            }
        }
        // A reset (an error) is a close too; only a read still pending at the deadline is not.
        if ended || tokio::time::Instant::now() < deadline {
            closed += 1;
        }
    }
    (refused, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_that_never_authenticate_are_closed_while_a_federation_runs() {
    const HOSTILE: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..3).map(|i| format!("h{i:02}")).collect();
    dev_pki(dir.path(), &names);
    // keep_serving: the aggregator stays up after the federation, to be looked at.
    let (aggregator, done) = serve(dir.path(), &names, 3, "8", "[operations]\nkeep_serving = true\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (baseline_fds, baseline_rss) = (open_descriptors(aggregator.pid), status_kib(aggregator.pid, "VmRSS:"));

    let attack = tokio::spawn(hostile_connections(aggregator.port, HOSTILE, Duration::from_secs(30)));
    let nodes = hospitals(dir.path(), &names, aggregator.port, 400);
    let done = tokio::task::spawn_blocking(move || done.recv_timeout(Duration::from_secs(180)).is_ok());
    assert!(done.await.unwrap(), "the federation did not finish under the hostile connections");
    for node in nodes {
        node.await.unwrap().unwrap();
    }
    let (refused, closed) = attack.await.unwrap();
    let metrics = std::fs::read_to_string(dir.path().join("out/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 5, "setup, 3 rounds and the evaluation:\n{metrics}");
    assert_eq!(refused + closed, HOSTILE, "the aggregator closed every connection that never authenticated");
    // Give the last closes a moment to be reaped, then count what the aggregator still holds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds = open_descriptors(aggregator.pid);
    let (rss, peak) = (status_kib(aggregator.pid, "VmRSS:"), status_kib(aggregator.pid, "VmHWM:"));
    println!(
        "{HOSTILE} hostile connections ({refused} refused at connect, {closed} accepted and closed): aggregator descriptors {baseline_fds} before, {fds} after; RSS {baseline_rss:?} KiB before, {rss:?} KiB after, peak {peak:?} KiB"
    );
    assert!(fds <= baseline_fds + 8, "the aggregator still holds {fds} descriptors ({baseline_fds} before the attack)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "load test: minutes of CPU; run by hand"]
async fn thirty_two_hospitals_with_a_million_parameters() {
    const HOSPITALS: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..HOSPITALS).map(|i| format!("h{i:02}")).collect();
    dev_pki(dir.path(), &names);
    let params = fedcare_core::ModelSpec::mlp(16, &[1024, 960]).unwrap().param_count();

    let start = Instant::now();
    let (mut aggregator, _done) = serve(dir.path(), &names, 3, "1024, 960", "");
    let nodes = hospitals(dir.path(), &names, aggregator.port, 300);
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = status_kib(aggregator.pid, "VmHWM:") {
            peak = peak.max(kib);
        }
        if let Some(status) = aggregator.child.try_wait().unwrap() {
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
