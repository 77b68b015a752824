//! A subgroup report ([`SubgroupReport`]) as the pages show it: per subgroup column an HTML
//! section (a table of its subgroups beside the whole population, the ROC curves and the
//! reliability diagram after the Platt scaling, both inline SVG) or a Markdown table. A small
//! subgroup appears as "too small", never with a figure; that is the report's guarantee, and
//! nothing here adds a figure the report does not hold.

use core::fmt::Write as _;

use anyhow::Result;
use fedcare_core::subgroup::{GroupFigures, SubgroupColumn, SubgroupFigures, SubgroupReport};

use crate::html::{Curve, PALETTE, escape, line_chart};

/// The label of a column's whole population in tables and legends.
const ALL: &str = "all rows";

fn number(value: Option<f64>, digits: usize) -> String {
    value.map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn signed(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:+.3}"))
}

/// The table cells of one group's figures, in [`HEADER`] order after the name.
fn cells(figures: &GroupFigures) -> [String; 8] {
    [
        figures.rows.to_string(),
        format!("{:.3}", figures.positive_rate),
        format!("{} ± {:.3}", number(figures.auroc, 3), figures.auroc_bound),
        signed(figures.auroc_gap),
        number(figures.tpr, 3),
        signed(figures.tpr_gap),
        number(figures.auprc, 3),
        format!("{:.3}", figures.ece),
    ]
}

/// The tables' header.
const HEADER: [&str; 9] =
    ["subgroup", "rows", "positive rate", "AUROC ± binning", "AUROC gap", "TPR", "TPR gap", "AUPRC", "ECE"];

/// What a column's threshold means, in a sentence.
fn threshold_note(report: &SubgroupReport, column: &SubgroupColumn) -> String {
    format!(
        "Gaps are against all rows. TPR: the share of a subgroup's positives flagged at the threshold that \
         flags the top {:.0} % of all rows (calibrated probability ≥ {}; {:.1} % flagged, the threshold lying on a \
         score-bin edge). ECE and reliability after the model's Platt scaling. Subgroups with fewer than {} rows, \
         positives or negatives are too small to show (with a lone one, the next smallest is hidden too).",
        100.0 * report.top_share,
        number(column.threshold, 3),
        100.0 * column.flagged_share,
        report.min_cell
    )
}

/// The shown subgroups of a column with the population first: label and figures.
fn shown(column: &SubgroupColumn) -> Vec<(&str, &GroupFigures)> {
    let population = column.population.shown().map(|figures| (ALL, figures));
    population
        .into_iter()
        .chain(column.subgroups.iter().filter_map(|s| Some((s.label.as_str(), s.figures.shown()?))))
        .collect()
}

/// One `<section class="subgroup">` per column: its table and two plots.
pub(crate) fn html(report: &SubgroupReport) -> Result<String> {
    let mut out = String::new();
    for column in &report.columns {
        let _ = write!(out, "<section class=\"subgroup\">\n<h3>{}</h3>\n<table>\n<tr>", escape(&column.name));
        for head in HEADER {
            let _ = write!(out, "<th>{head}</th>");
        }
        out += "</tr>\n";
        let row = |out: &mut String, label: &str, figures: &SubgroupFigures| {
            let _ = write!(out, "<tr><td>{}</td>", escape(label));
            match figures {
                SubgroupFigures::Shown(figures) => {
                    for cell in cells(figures) {
                        let _ = write!(out, "<td class=\"p\">{}</td>", escape(&cell));
                    }
                }
                SubgroupFigures::TooSmall => {
                    let _ = write!(
                        out,
                        "<td class=\"suppressed\" colspan=\"8\">too small (under {} rows, positives or negatives)</td>",
                        report.min_cell
                    );
                }
            }
            out.push_str("</tr>\n");
        };
        row(&mut out, ALL, &column.population);
        for subgroup in &column.subgroups {
            row(&mut out, &subgroup.label, &subgroup.figures);
        }
        let _ = writeln!(out, "</table>\n<p class=\"note\">{}</p>", escape(&threshold_note(report, column)));
        let groups = shown(column);
        fn curve<'a>(i: usize, name: &'a str, points: Vec<(f64, f64)>) -> Curve<'a> {
            Curve { name: if name == ALL { "all" } else { name }, points, color: PALETTE[i % PALETTE.len()] }
        }
        let roc: Vec<Curve<'_>> = groups
            .iter()
            .enumerate()
            .map(|(i, (name, figures))| curve(i, name, figures.roc.iter().map(|p| (p[0], p[1])).collect()))
            .collect();
        let reliability: Vec<Curve<'_>> = groups
            .iter()
            .enumerate()
            .map(|(i, (name, figures))| {
                curve(i, name, figures.reliability.iter().map(|b| (b.mean_predicted, b.observed_rate)).collect())
            })
            .collect();
        let _ = writeln!(
            out,
            "<div class=\"plots\"><figure>{}</figure><figure>{}</figure></div>\n</section>",
            line_chart(&format!("ROC by {}", column.name), ("false positive rate", "true positive rate"), &roc, false)?,
            line_chart(
                &format!("Reliability by {} (after calibration)", column.name),
                ("mean predicted probability", "observed rate"),
                &reliability,
                true
            )?
        );
    }
    Ok(out)
}

/// One Markdown table per column, with its note.
pub(crate) fn markdown(report: &SubgroupReport) -> String {
    let mut out = String::new();
    for column in &report.columns {
        let _ = writeln!(out, "#### {}\n", column.name);
        let _ = writeln!(out, "| {} |", HEADER.join(" | "));
        let _ = writeln!(out, "|{}", " --- |".repeat(HEADER.len()));
        let row = |out: &mut String, label: &str, figures: &SubgroupFigures| match figures {
            SubgroupFigures::Shown(figures) => {
                let _ = writeln!(out, "| {label} | {} |", cells(figures).join(" | "));
            }
            SubgroupFigures::TooSmall => {
                let _ = writeln!(out, "| {label} | too small |{}", " |".repeat(HEADER.len() - 2));
            }
        };
        row(&mut out, ALL, &column.population);
        for subgroup in &column.subgroups {
            row(&mut out, &subgroup.label, &subgroup.figures);
        }
        let _ = writeln!(out, "\n{}\n", threshold_note(report, column));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcare_core::explore::{ColumnKind, ColumnSpec};
    use fedcare_core::subgroup::{SubgroupHistograms, subgroup_report};

    /// A report of one column: a large subgroup, a small one, and the missing values hidden
    /// with it.
    pub(crate) fn report() -> SubgroupReport {
        let sex = ColumnSpec {
            name: "gender".into(),
            kind: ColumnKind::Categorical { categories: 2, labels: vec!["Female".into(), "Male".into()] },
        };
        let mut cells = Vec::new();
        let (mut logits, mut labels) = (Vec::new(), Vec::new());
        for i in 0..600u32 {
            let cell = match i % 60 {
                0..=3 => 1,
                4 => 2,
                _ => 0,
            };
            let y = if i % 5 == 0 { 1.0 } else { 0.0 };
            logits.push(y * 1.5 + (i % 7) as f32 * 0.3 - 2.0);
            labels.push(y);
            cells.push(cell);
        }
        let histograms = SubgroupHistograms::of_logits(core::slice::from_ref(&sex), &[cells], &logits, &labels, 128);
        subgroup_report(&[sex], &histograms, None, 10)
    }

    #[test]
    fn small_subgroups_show_no_figure_in_either_form() {
        let report = report();
        let page = html(&report).unwrap();
        assert_eq!(page.matches("<section class=\"subgroup\">").count(), 1);
        assert_eq!(page.matches("<svg").count(), 2, "the ROC and reliability plots");
        assert!(page.contains(">Female<") && page.contains("too small"), "{page}");
        let text = markdown(&report);
        assert!(text.contains("| Male | too small |") && text.contains("| missing | too small |"), "{text}");
        // The hidden subgroups' rows appear nowhere: only the shown subgroup and the population.
        let shown_rows: Vec<u64> =
            report.columns[0].subgroups.iter().filter_map(|s| s.figures.shown()).map(|f| f.rows).collect();
        assert_eq!(shown_rows, [550]);
        for hidden in ["| 40 |", "| 10 |", ">40<", ">10<"] {
            assert!(!text.contains(hidden) && !page.contains(hidden), "{hidden}");
        }
    }
}
