//! `fedcare report`: the plots of a real federation's metrics.jsonl, and clear refusals of bad
//! files.

use std::path::Path;

use fedcare_node::report::{PLOT_SIZE, PLOTS, parse_metrics, read_metrics, write_report};
use fedcare_node::simulate::{self, SimulateOptions};

/// The width and height in a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_federations_metrics_make_every_plot() {
    let run = tempfile::tempdir().unwrap();
    let options = SimulateOptions {
        hospitals: 3,
        rounds: 3,
        rows: 500,
        hidden: vec![8],
        out: run.path().to_path_buf(),
        show_progress: false,
        ..SimulateOptions::default()
    };
    simulate::run(&options, None).await.unwrap();
    let metrics = run.path().join("metrics.jsonl");
    let records = read_metrics(&metrics).unwrap();
    assert_eq!(records.len(), 5, "setup, 3 training rounds, final evaluation");
    let last = records.last().unwrap();
    assert_eq!(last.calibration.len(), 10);
    assert!(last.roc.len() >= 2 && last.roc.len() <= 101, "{} ROC points", last.roc.len());
    assert_eq!(last.calibration.iter().map(|b| b.count).sum::<u64>(), last.test_rows.unwrap());

    let out = tempfile::tempdir().unwrap();
    let plots = out.path().join("plots");
    let written = write_report(&records, &plots).unwrap();
    assert_eq!(written.len(), PLOTS.len() + 1);
    for name in PLOTS {
        let bytes = std::fs::read(plots.join(name)).unwrap();
        assert_eq!(png_size(&bytes), PLOT_SIZE, "{name}");
        // A white canvas alone compresses to well under 10 kB; axes, text and curves do not.
        assert!(bytes.len() > 10_000, "{name}: only {} bytes", bytes.len());
    }
    let summary = std::fs::read_to_string(plots.join("summary.md")).unwrap();
    let auroc = format!("AUROC {:.4}", last.auroc.unwrap());
    assert!(summary.contains(&auroc), "summary.md lacks {auroc:?}:\n{summary}");

    // The same through the command line.
    let cli_out = out.path().join("cli");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_fedcare"))
        .args(["report", "--metrics"])
        .arg(&metrics)
        .arg("--out")
        .arg(&cli_out)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    for name in PLOTS {
        assert_eq!(std::fs::read(plots.join(name)).unwrap(), std::fs::read(cli_out.join(name)).unwrap(), "{name}");
    }
}

fn error_of(text: &str) -> String {
    format!("{:#}", parse_metrics(text).unwrap_err())
}

#[test]
fn malformed_metrics_are_refused_naming_the_line() {
    let good = r#"{"round":1,"kind":"train","attempt":0,"hospitals":3,"train_loss":0.6,"test_loss":0.7,"auroc":0.6,"seconds":1.0,"bytes_up":10,"bytes_down":10}"#;
    // An older line without the newer fields still parses.
    assert_eq!(parse_metrics(good).unwrap().len(), 1);
    let truncated = format!("{good}\n{{\"round\":2,\"kind\":\"train\"\n");
    let error = error_of(&truncated);
    assert!(error.contains("line 2"), "{error}");
    let out_of_range = format!("{good}\n\n{}\n", good.replace("\"auroc\":0.6", "\"auroc\":1.5"));
    let error = error_of(&out_of_range);
    assert!(error.contains("line 3") && error.contains("auroc 1.5"), "{error}");
    let error = error_of("not json\n");
    assert!(error.contains("line 1"), "{error}");
    assert!(error_of("\n\n").contains("no round records"));
    // Records without an evaluation cannot make a ROC curve: a clear refusal, no files.
    let out = tempfile::tempdir().unwrap();
    let error = format!("{:#}", write_report(&parse_metrics(good).unwrap(), &out.path().join("plots")).unwrap_err());
    assert!(error.contains("no evaluated session"), "{error}");
    assert!(!out.path().join("plots").exists());
}

#[test]
fn the_command_line_names_the_bad_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.jsonl");
    std::fs::write(&metrics, "{\"round\":0}\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fedcare"))
        .args(["report", "--metrics"])
        .arg(&metrics)
        .arg("--out")
        .arg(dir.path().join("plots"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("metrics.jsonl") && stderr.contains("line 1"), "{stderr}");
    assert!(!Path::new(&dir.path().join("plots")).exists());
}
