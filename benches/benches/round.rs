//! A whole federation round on loopback: 10 hospitals on the synthetic Diabetes-130 cohort, an
//! MLP of about 130k parameters (359-256-128-64-1: 133,377 parameters), real gRPC with mTLS and
//! threshold encryption.
//! Prints one table: per-session wall time, and the share of the machine's time spent in
//! encryption-related work (key shares, encryption, decryption shares: thread CPU time summed over
//! the hospitals; the aggregator's additions are measured by the `crypto` bench) against the
//! target of ≤ 20 %.
//!
//! `cargo bench -p fedcare-benches --bench round` runs 3 training rounds; under `cargo test`
//! it runs one small round as a check.

use std::time::Instant;

use fedcare_federation::simulation::{self, SimulateOptions};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = tempfile::tempdir().expect("temporary directory");
    let options = SimulateOptions {
        hospitals: 10,
        rounds: if full { 3 } else { 1 },
        // Patients per average hospital: about Diabetes-130's 100k encounters over 10 hospitals.
        rows: if full { 7_000 } else { 300 },
        hidden: vec![256, 128, 64],
        out: out.path().to_path_buf(),
        ..SimulateOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let start = Instant::now();
    let report = runtime.block_on(simulation::run(&options, None, None)).expect("simulation");
    let total = start.elapsed().as_secs_f64();
    let width = fedcare_data::Schema::diabetes130(true).width();
    let params = fedcare_core::ModelSpec::mlp(width, &[256, 128, 64]).expect("spec").param_count();
    println!(
        "whole-round bench: {} hospitals, MLP {width}-256-128-64-1 ({params} parameters), {cores} cores",
        options.hospitals
    );
    println!("{:>5} {:>9} {:>8} {:>10} {:>12}", "round", "kind", "time s", "crypto s", "crypto share");
    for (record, crypto) in report.outcome.records.iter().zip(&report.crypto_seconds) {
        let share = crypto / (record.seconds * cores as f64);
        println!(
            "{:>5} {:>9} {:>8.3} {:>10.3} {:>11.1}%",
            record.round,
            record.kind,
            record.seconds,
            crypto,
            100.0 * share
        );
    }
    let train: Vec<_> = report
        .outcome
        .records
        .iter()
        .zip(&report.crypto_seconds)
        .filter(|(r, _)| r.kind == fedcare_federation::protocol::SessionKind::Train)
        .collect();
    let seconds: f64 = train.iter().map(|(r, _)| r.seconds).sum();
    let crypto: f64 = train.iter().map(|(_, c)| *c).sum();
    println!(
        "training rounds: {:.3} s per round, crypto share {:.1}% of the machine (target <= 20%); whole run {total:.1} s",
        seconds / train.len() as f64,
        100.0 * crypto / (seconds * cores as f64)
    );
}
