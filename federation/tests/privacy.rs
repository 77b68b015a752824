//! Patient-level DP-SGD in a federation: every session reports the ε of the rounds released so
//! far, the model file carries it, and a hospital stops taking part before its own budget would
//! be exceeded while the federation goes on without it.

use fedcare_core::privacy::{DpSgd, PooledNoise};
use fedcare_federation::config::PrivacyConfig;
use fedcare_federation::error::FederationError;
use fedcare_federation::protocol::{ContributionLayout, Privacy, SessionKind, TrustError};
use fedcare_federation::simulation::{self, SimulateOptions, Transport};

fn options(out: &std::path::Path) -> SimulateOptions {
    SimulateOptions {
        hospitals: 3,
        rounds: 4,
        // Few patients: the noisy pooled count of held-out rows (σ_p·√3 ≈ 87 against about 240)
        // can come out far below the true one, which the evaluation tail's scale must outlast
        // (`FederationSettings::tail_scale`).
        rows: 400,
        hidden: vec![],
        out: out.to_path_buf(),
        transport: Transport::InProcess,
        // Under pooled noise the subgroups are measured only when named.
        subgroups: Some(vec!["gender".into(), "age".into()]),
        privacy: Some(PrivacyConfig {
            sampling_rate: 0.05,
            noise_multiplier: Some(1.1),
            target_epsilon: None,
            clip_norm: 1.0,
            delta: 1e-5,
            pooled_noise: 50.0,
            evaluation_noise: 12.0,
            evaluation_bins: 16,
            pooled_rows_per_patient: 1,
        }),
        ..SimulateOptions::default()
    }
}

/// The settings of [`options`]: the synthetic cohort's Diabetes-130 schema releases its row
/// counts, three moments of each numeric feature and each `top_k` column's buckets at setup.
fn privacy() -> Privacy {
    let schema = fedcare_data::Schema::diabetes130(true);
    let layout = ContributionLayout {
        params: 0,
        bins: 0,
        numeric: schema.numeric.len(),
        top_k: schema.top_k_shapes(),
        explore: Vec::new(),
        // The two subgroup columns the options name: each column's histograms are charged like
        // the overall one.
        subgroups: schema.subgroup_columns(&["gender".into(), "age".into()]).unwrap(),
    };
    assert_eq!(layout.evaluation_statistics(), 3);
    Privacy {
        dp_sgd: Some(DpSgd { sampling_rate: 0.05, noise_multiplier: 1.1, clip_norm: 1.0 }),
        delta: 1e-5,
        pooled: Some(PooledNoise { multiplier: 50.0, evaluation_multiplier: 12.0, rows_per_patient: 1 }),
        setup_statistics: layout.setup_statistics(),
        evaluation_statistics: layout.evaluation_statistics(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_round_reports_the_epsilon_spent_and_the_model_file_carries_it() {
    let out = tempfile::tempdir().unwrap();
    let report = simulation::run(&options(out.path()), None, None).await.unwrap();
    let records = &report.outcome.records;
    let train: Vec<_> = records.iter().filter(|r| r.kind == SessionKind::Train).collect();
    assert_eq!(train.len(), 4);
    for record in &train {
        assert_eq!(record.epsilon, Some(privacy().epsilon_after(record.round, 1)), "round {}", record.round);
    }
    assert!(train.windows(2).all(|w| w[0].epsilon < w[1].epsilon), "ε grows with the rounds");
    let last = records.last().unwrap();
    assert_eq!(last.kind, SessionKind::Evaluate);
    let spent = privacy().epsilon_after(4, 1);
    assert_eq!(last.epsilon, Some(spent));
    assert!(spent > 0.5 && spent < 20.0, "{spent}");
    let model = fedcare_data::predict::read_model_file(&out.path().join("model.bin")).unwrap();
    assert_eq!(model.metrics.get("epsilon"), Some(&spent));
    assert_eq!(model.metrics.get("delta"), Some(&1e-5));
    // Every hospital received the file the aggregator wrote, ε included.
    let written = std::fs::read(out.path().join("model.bin")).unwrap();
    assert!(report.received.iter().all(|r| r.as_deref() == Some(written.as_slice())));
    // The setup session releases no model, but its noisy pooled statistics (and, counted from
    // the start, the final evaluation's) spend a little.
    let setup = privacy().epsilon_after(0, 1);
    assert_eq!(records[0].epsilon, Some(setup));
    assert!(setup > 0.0 && setup < train[0].epsilon.unwrap(), "{setup}");
    // With pooled noise the training rounds are not evaluated; the final evaluation is, noisily.
    assert!(train.iter().all(|r| r.auroc.is_none() && r.test_loss.is_none()));
    assert!(last.auroc.is_some(), "{last:?}");
    // So are the subgroups, with noise; the model file carries their figures.
    let subgroups = last.subgroups.as_ref().unwrap();
    assert_eq!(subgroups.columns.len(), 2);
    assert_eq!(model.subgroups.as_ref(), Some(subgroups));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hospital_over_its_max_epsilon_refuses_the_next_round_and_the_others_go_on() {
    let out = tempfile::tempdir().unwrap();
    // Hospital 3 allows two rounds' worth.
    let max = (privacy().epsilon_after(2, 1) + privacy().epsilon_after(3, 1)) / 2.0;
    let report =
        simulation::run(&SimulateOptions { budget: Some((2, max)), ..options(out.path()) }, None, None).await.unwrap();
    let hospitals_of = |round: u32| {
        report.outcome.records.iter().find(|r| r.round == round && r.kind == SessionKind::Train).map(|r| r.hospitals)
    };
    assert_eq!((hospitals_of(1), hospitals_of(2)), (Some(3), Some(3)));
    assert_eq!((hospitals_of(3), hospitals_of(4)), (Some(2), Some(2)), "{:?}", report.outcome.records);
    assert!(report.received[2].is_none(), "the hospital that left has no final model");
    assert!(report.received[..2].iter().all(Option::is_some));
}

#[test]
fn the_refusal_says_which_round_and_which_budget() {
    let error = TrustError::PrivacyBudget {
        kind: SessionKind::Train,
        round: 3,
        epsilon: 2.5,
        spent: 0.0,
        delta: 1e-6,
        max: 2.0,
    };
    let text = FederationError::from(fedcare_protocol::Error::from(error)).to_string();
    assert!(text.contains("training round 3") && text.contains("2.500") && text.contains("max_epsilon of 2"), "{text}");
    assert!(!text.contains("earlier federations"), "{text}");
}
