//! `fedcare report`: plots a federation's `metrics.jsonl` as PNG files, with a `summary.md` that
//! lists the figures and a `report.html` that holds all of it.
//!
//! ```text
//! auroc.png        AUROC and AUPRC of the global model after each number of training rounds
//! loss.png         held-out log loss (same x axis) and mean local training loss of each round
//! roc.png          ROC curve of the kept model (the best secure AUROC: the model file's)
//! calibration.png  its observed readmission rate against mean predicted probability, per bin
//! summary.md       the kept model's figures and a per-round table
//! report.html      all of it in one self-contained page (the plots embedded, no script)
//! ```
//! Every metric comes from the decrypted sums of the secure evaluation, never from one
//! hospital's data. Text is drawn with the DejaVu Sans font compiled into the binary (the
//! `dejavu` crate; the fonts' own licence, a free Bitstream Vera derivative, allows embedding), so
//! plotting needs no system font library. A `metrics.jsonl` line that is not a valid record is
//! refused with its line number; nothing is written then.

use core::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fedcare_federation::persistence::read_metrics;
use fedcare_federation::protocol::RoundRecord;
use fedcare_federation::selection::kept_record;
use plotters::prelude::*;

/// Width and height of every plot, in pixels.
const PLOT_SIZE: (u32, u32) = (800, 600);

/// The page [`write_report`] makes of everything.
const REPORT_PAGE: &str = "report.html";

/// The PNG files [`write_report`] makes, in order.
const PLOTS: [&str; 4] = ["auroc.png", "loss.png", "roc.png", "calibration.png"];

/// `fedcare report`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The metrics.jsonl that `serve` or `simulate` wrote.
    #[arg(long)]
    metrics: PathBuf,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let records = read_metrics(&args.metrics)?;
    let written = write_report(&records, &args.out)?;
    let names: Vec<String> =
        written.iter().filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
    println!("wrote {} to {}", names.join(", "), args.out.display());
    Ok(())
}

/// Writes the plots of [`PLOTS`], `summary.md` and `report.html` into `out` (created if
/// missing); returns their paths.
pub(crate) fn write_report(records: &[RoundRecord], out: &Path) -> Result<Vec<PathBuf>> {
    // The model the federation keeps, as metrics.jsonl tells it (the model file's).
    let Some(last) = kept_record(records).filter(|r| !r.roc.is_empty() && !r.calibration.is_empty()) else {
        bail!("no evaluated session with a ROC curve and calibration table: nothing to plot");
    };
    crate::html::register_font()?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let paths: Vec<PathBuf> = PLOTS.iter().map(|name| out.join(name)).collect();
    let done = |r: &RoundRecord| f64::from(r.round.saturating_sub(1));
    let auroc: Vec<(f64, f64)> = records.iter().filter_map(|r| Some((done(r), r.auroc?))).collect();
    let auprc: Vec<(f64, f64)> = records.iter().filter_map(|r| Some((done(r), r.auprc?))).collect();
    let test_loss: Vec<(f64, f64)> = records.iter().filter_map(|r| Some((done(r), r.test_loss?))).collect();
    let train_loss: Vec<(f64, f64)> =
        records.iter().filter_map(|r| Some((f64::from(r.round), r.train_loss?))).collect();
    let rounds = records.iter().map(done).fold(1.0, f64::max);

    let (blue, red, grey) = (BLUE.to_rgba(), RED.to_rgba(), BLACK.mix(0.4).to_rgba());
    plot(
        &paths[0],
        "Held-out AUROC and AUPRC (secure evaluation)",
        ("training rounds completed", "AUROC / AUPRC"),
        (0.0..rounds, 0.0..1.0),
        XAxis::Rounds,
        &[("AUROC", &auroc, blue, 3), ("AUPRC", &auprc, red, 3)],
    )?;
    let top = test_loss.iter().chain(&train_loss).map(|p| p.1).fold(0.0, f64::max).max(1e-3) * 1.1;
    plot(
        &paths[1],
        "Loss per round",
        ("training rounds completed", "loss"),
        (0.0..rounds, 0.0..top),
        XAxis::Rounds,
        &[
            ("held-out log loss", &test_loss, blue, 3),
            ("mean local training loss (class-weighted)", &train_loss, red, 3),
        ],
    )?;
    let roc: Vec<(f64, f64)> = last.roc.iter().map(|p| (p[0], p[1])).collect();
    let diagonal = [(0.0, 0.0), (1.0, 1.0)];
    let auc = last.auroc.map_or("-".into(), |a| format!("{a:.3}"));
    plot(
        &paths[2],
        &format!("ROC curve after {} rounds (AUROC {auc})", done(last)),
        ("false positive rate", "true positive rate"),
        (0.0..1.0, 0.0..1.0),
        XAxis::Unit,
        &[("model", &roc, blue, 0), ("chance", &diagonal, grey, 0)],
    )?;
    let calibration: Vec<(f64, f64)> =
        last.calibration.iter().filter(|b| b.count > 0).map(|b| (b.mean_predicted, b.observed_rate)).collect();
    plot(
        &paths[3],
        &format!("Calibration after {} rounds", done(last)),
        ("mean predicted probability", "observed rate"),
        (0.0..1.0, 0.0..1.0),
        XAxis::Unit,
        &[("model", &calibration, blue, 5), ("perfect", &diagonal, grey, 0)],
    )?;
    let summary = out.join("summary.md");
    std::fs::write(&summary, summary_text(records, last))
        .with_context(|| format!("cannot write {}", summary.display()))?;
    let page = out.join(REPORT_PAGE);
    let mut plots = Vec::with_capacity(paths.len());
    for path in &paths {
        plots.push(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?);
    }
    std::fs::write(&page, report_page(records, last, &plots))
        .with_context(|| format!("cannot write {}", page.display()))?;
    let mut written = paths;
    written.push(summary);
    written.push(page);
    Ok(written)
}

/// A named line: its points, colour and the radius of its point markers (0: none).
type Line<'a> = (&'a str, &'a [(f64, f64)], RGBAColor, u32);

/// Which x axis a plot has.
#[derive(Clone, Copy, PartialEq, Eq)]
enum XAxis {
    /// Training rounds: whole-number ticks, one per round up to 21.
    Rounds,
    /// A probability or rate in [0, 1].
    Unit,
}

/// Draws `lines` on one 800×600 chart with a legend in the lower right and writes the PNG.
fn plot(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    (x, y): (core::ops::Range<f64>, core::ops::Range<f64>),
    x_axis: XAxis,
    lines: &[Line<'_>],
) -> Result<()> {
    let round_ticks = (x.end as usize + 1).min(21);
    let root = BitMapBackend::new(path, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(x, y)?;
    let whole_number = |x: &f64| format!("{x:.0}");
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_label).y_desc(y_label).label_style(("sans-serif", 16));
    if x_axis == XAxis::Rounds {
        mesh.x_labels(round_ticks).x_label_formatter(&whole_number);
    }
    mesh.draw()?;
    for &(name, points, color, marker) in lines {
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        if marker > 0 {
            chart.draw_series(points.iter().map(|&p| Circle::new(p, marker, color.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `report.html`: the kept model's figures, the four plots (`plots`, the PNGs' bytes in
/// [`PLOTS`] order) and the per-round and calibration tables.
fn report_page(records: &[RoundRecord], last: &RoundRecord, plots: &[Vec<u8>]) -> String {
    use crate::html::escape;
    let opt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.4}"));
    let mut body = String::from("<header><h1>fedcare report</h1>\n");
    let _ = writeln!(
        body,
        "<p>Kept model (the best secure AUROC of the federation, evaluated in session {}, {}, after {} training \
         rounds; the model file's): <b>AUROC {}</b>, AUPRC {}, log loss {}, on {} held-out rows ({} positive), from \
         the secure evaluation.</p></header>",
        last.round,
        escape(last.kind.name()),
        last.round.saturating_sub(1),
        opt(last.auroc),
        opt(last.auprc),
        opt(last.test_loss),
        last.test_rows.map_or("–".into(), |r| r.to_string()),
        last.test_positives.map_or("–".into(), |r| r.to_string()),
    );
    body += "<section class=\"plots\">\n";
    let alts = ["AUROC and AUPRC per round", "loss per round", "ROC curve", "calibration curve"];
    for (bytes, alt) in plots.iter().zip(alts) {
        let _ = writeln!(body, "<figure class=\"plot\">{}</figure>", crate::html::png_image(bytes, alt));
    }
    body += "</section>\n<section><h2>Sessions</h2>\n<p class=\"note\">AUROC, AUPRC and held-out loss of a session are \
             those of the model it started from (after <code>round − 1</code> training rounds); training loss is the \
             round's own, weighted by the positive-class weight.</p>\n<table><tr><th>round</th><th>kind</th>\
             <th>hospitals</th><th>train loss</th><th>held-out loss</th><th>AUROC</th><th>AUPRC</th></tr>\n";
    for r in records {
        let _ = writeln!(
            body,
            "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            r.round,
            escape(r.kind.name()),
            r.hospitals,
            opt(r.train_loss),
            opt(r.test_loss),
            opt(r.auroc),
            opt(r.auprc)
        );
    }
    body += "</table></section>\n<section><h2>Calibration</h2>\n";
    if let Some(platt) = last.platt {
        let _ = writeln!(body, "<p>{}. The table is of the model's own probabilities.</p>", platt_sentence(&platt));
    }
    body += "<table><tr><th>bin</th><th>rows</th><th>mean predicted</th><th>observed rate</th></tr>\n";
    for bin in &last.calibration {
        let _ = writeln!(
            body,
            "<tr><td>[{:.1}, {:.1})</td><td class=\"n\">{}</td><td class=\"n\">{:.4}</td><td class=\"n\">{:.4}</td></tr>",
            bin.lower, bin.upper, bin.count, bin.mean_predicted, bin.observed_rate
        );
    }
    body += "</table></section>";
    crate::html::page("fedcare report", &body)
}

/// What the model file's Platt scaling is, in one sentence.
fn platt_sentence(platt: &fedcare_core::Platt) -> String {
    format!(
        "The model file's Platt scaling, fitted on the same held-out histogram: probability = σ({:.4}·z + ({:.4})) \
         of the logit z",
        platt.a, platt.b
    )
}

fn summary_text(records: &[RoundRecord], last: &RoundRecord) -> String {
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let mut text = String::from("# fedcare report\n\n");
    let rows = last.test_rows.map_or("-".into(), |r| r.to_string());
    let positives = last.test_positives.map_or("-".into(), |r| r.to_string());
    let _ = writeln!(
        text,
        "Kept model (the best secure AUROC of the federation, evaluated in session {}, {}, after {} training \
         rounds; the model file's): AUROC {}, AUPRC {}, log loss {}, on {rows} held-out rows ({positives} \
         positive), from the secure evaluation.\n",
        last.round,
        last.kind,
        last.round.saturating_sub(1),
        opt(last.auroc),
        opt(last.auprc),
        opt(last.test_loss)
    );
    text += "![AUROC and AUPRC](auroc.png) ![loss](loss.png) ![ROC](roc.png) ![calibration](calibration.png)\n\n";
    text += "AUROC, AUPRC and held-out loss of a session are those of the model it started from \
             (after `round - 1` training rounds); training loss is the round's own, weighted by the \
             hospitals' positive-class weight (so on another scale than the held-out log loss, and a \
             class-balanced model over-predicts: see the calibration table).\n\n";
    text += "| round | kind | hospitals | train loss | held-out loss | AUROC | AUPRC |\n";
    text += "|---:|---|---:|---:|---:|---:|---:|\n";
    for r in records {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.round,
            r.kind,
            r.hospitals,
            opt(r.train_loss),
            opt(r.test_loss),
            opt(r.auroc),
            opt(r.auprc)
        );
    }
    if let Some(platt) = last.platt {
        let _ = writeln!(text, "\n{} (the table below is of the model's own probabilities).", platt_sentence(&platt));
    }
    text += "\nCalibration (probability bins merged from the 1,024-bin score histogram):\n\n";
    text += "| bin | rows | mean predicted | observed rate |\n|---|---:|---:|---:|\n";
    for bin in &last.calibration {
        let _ = writeln!(
            text,
            "| [{:.1}, {:.1}) | {} | {:.4} | {:.4} |",
            bin.lower, bin.upper, bin.count, bin.mean_predicted, bin.observed_rate
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcare_federation::protocol::{SessionId, SessionKind};

    #[test]
    fn records_without_an_evaluation_are_refused_and_nothing_is_written() {
        let record = RoundRecord::new(SessionId { round: 1, attempt: 0 }, SessionKind::Train, 3);
        let out = tempfile::tempdir().unwrap();
        let error = write_report(&[record], &out.path().join("plots")).unwrap_err().to_string();
        assert!(error.contains("no evaluated session"), "{error}");
        assert!(!out.path().join("plots").exists());
    }
}
