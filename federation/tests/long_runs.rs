//! Long federations: a user who asks for many rounds gets a model no worse than a short run's.
//! The federation keeps the best model by the secure held-out AUROC and hands that one out, and
//! with a `patience` it stops once that many evaluations in a row found nothing better.

use fedcare_federation::protocol::{RoundRecord, SessionKind};
use fedcare_federation::simulation::{self, SimulateOptions, SimulationReport, Transport};

async fn simulate(rounds: u32, patience: Option<u32>, out: &std::path::Path) -> SimulationReport {
    let options = SimulateOptions {
        rounds,
        patience,
        out: out.to_path_buf(),
        transport: Transport::InProcess,
        ..SimulateOptions::default()
    };
    simulation::run(&options, None, None).await.unwrap()
}

fn train_loss(records: &[RoundRecord], rounds: core::ops::RangeInclusive<u32>) -> f64 {
    let losses: Vec<f64> = records.iter().filter(|r| rounds.contains(&r.round)).filter_map(|r| r.train_loss).collect();
    losses.iter().sum::<f64>() / losses.len() as f64
}

/// 200 rounds on the default synthetic cohort (5 hospitals, the default model and training):
/// the model handed out is no worse than the best of the first 20 rounds (within 0.005 AUROC),
/// though the last model is worse (it overfits), and the mean local training loss does not climb.
/// With `patience = 10` the same federation stops long before round 200 and hands out the same
/// model, bit for bit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_rounds_hand_out_a_model_no_worse_than_the_first_twenty_rounds_best() {
    let out = tempfile::tempdir().unwrap();
    let long = simulate(200, None, out.path()).await;
    let records = &long.outcome.records;
    assert_eq!(records.last().unwrap().round, 201);
    // Sessions 1..=21 evaluate the models after 0..=20 training rounds.
    let first_twenty = records.iter().filter(|r| r.round <= 21).filter_map(|r| r.auroc).fold(0.0, f64::max);
    let kept = long.outcome.kept().unwrap();
    let last = records.last().unwrap().auroc.unwrap();
    eprintln!(
        "best of the first 20 rounds {first_twenty:.4}; kept (session {}) {:.4}; last model {last:.4}",
        kept.round,
        kept.auroc.unwrap()
    );
    assert!(kept.auroc.unwrap() >= first_twenty - 0.005, "kept {:?} vs {first_twenty:.4}", kept.auroc);
    let model = fedcare_data::predict::read_model_file(&out.path().join("model.bin")).unwrap();
    assert_eq!(model.params, long.outcome.global, "the model file holds the kept model");
    assert_eq!(model.metrics.get("auroc"), kept.auroc.as_ref());
    assert_eq!(model.metrics.get("round"), Some(&f64::from(kept.round - 1)));
    assert_eq!(model.calibration, kept.platt);
    let (early, late) = (train_loss(records, 6..=15), train_loss(records, 191..=200));
    eprintln!("mean local training loss: rounds 6-15 {early:.4}, rounds 191-200 {late:.4}");
    assert!(late <= early + 0.02, "the training loss climbed from {early:.4} to {late:.4}");

    let out = tempfile::tempdir().unwrap();
    let patient = simulate(200, Some(10), out.path()).await;
    let records = &patient.outcome.records;
    let evaluation = records.last().unwrap();
    assert_eq!(evaluation.kind, SessionKind::Evaluate);
    let best = patient.outcome.kept().unwrap();
    // Training stopped after the 10th evaluation in a row that found nothing better.
    let trained = evaluation.round - 1;
    assert_eq!(trained, best.round - 1 + 10 + 1, "stopped after round {trained}, best in session {}", best.round);
    assert!(trained < 200);
    assert_eq!(patient.outcome.global, long.outcome.global, "the same best model");
    let model = fedcare_data::predict::read_model_file(&out.path().join("model.bin")).unwrap();
    assert_eq!(model.params, patient.outcome.global);
    // Every hospital received that file.
    let written = std::fs::read(out.path().join("model.bin")).unwrap();
    assert!(patient.received.iter().all(|r| r.as_deref() == Some(written.as_slice())));
}
