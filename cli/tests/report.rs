//! `fedcare report` on a real federation's metrics.jsonl (`fedcare simulate` run as a user
//! would), and clear refusals of bad files.

use std::path::Path;
use std::process::Command;

use fedcare_federation::persistence::read_metrics;

/// The width and height in a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

fn fedcare(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fedcare")).args(args).current_dir(dir).output().unwrap()
}

#[test]
fn a_simulated_federations_metrics_make_every_plot() {
    let dir = tempfile::tempdir().unwrap();
    let run = fedcare(
        &["simulate", "--hospitals", "3", "--rounds", "3", "--rows", "500", "--hidden", "8", "--out", "sim"],
        dir.path(),
    );
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(stdout.matches("trainer: cpu").count(), 1, "the trainer is said once:\n{stdout}");
    let records = read_metrics(&dir.path().join("sim/metrics.jsonl")).unwrap();
    assert_eq!(records.len(), 5, "setup, 3 training rounds, final evaluation");
    let last = records.last().unwrap();
    assert_eq!(last.calibration.len(), 10);
    // The report describes the kept model: the best secure AUROC (metrics.jsonl tells which).
    let best = records.iter().filter_map(|r| r.auroc).fold(0.0, f64::max);
    let kept = records.iter().find(|r| r.auroc == Some(best)).unwrap();
    assert!(last.roc.len() >= 2 && last.roc.len() <= 101, "{} ROC points", last.roc.len());
    assert_eq!(last.calibration.iter().map(|b| b.count).sum::<u64>(), last.test_rows.unwrap());

    let report = fedcare(&["report", "--metrics", "sim/metrics.jsonl", "--out", "plots"], dir.path());
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let plots = dir.path().join("plots");
    for name in ["auroc.png", "loss.png", "roc.png", "calibration.png"] {
        let bytes = std::fs::read(plots.join(name)).unwrap();
        assert_eq!(png_size(&bytes), (800, 600), "{name}");
        // A white canvas alone compresses to well under 10 kB; axes, text and curves do not.
        assert!(bytes.len() > 10_000, "{name}: only {} bytes", bytes.len());
    }
    let summary = std::fs::read_to_string(plots.join("summary.md")).unwrap();
    let auroc = format!("after {} training rounds; the model file's): AUROC {:.4}", kept.round - 1, best);
    assert!(summary.contains(&auroc), "summary.md lacks {auroc:?}:\n{summary}");
    let model = fedcare_data::predict::read_model_file(&dir.path().join("sim/model.bin")).unwrap();
    assert_eq!(model.metrics.get("auroc"), Some(&best));
}

#[test]
fn the_command_line_names_the_bad_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.jsonl");
    std::fs::write(&metrics, "{\"round\":0}\n").unwrap();
    let output = fedcare(&["report", "--metrics", "metrics.jsonl", "--out", "plots"], dir.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("metrics.jsonl") && stderr.contains("line 1"), "{stderr}");
    assert!(!dir.path().join("plots").exists());
}
