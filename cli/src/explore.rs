//! `fedcare explore`: look at the data before training, without anyone seeing another hospital's
//! rows. Three ways in:
//!
//! ```text
//! fedcare explore [--data DIR]        a one-machine federation (like simulate): the pooled counts
//!                                     under the threshold encryption; each hospital's own report too
//! fedcare explore --local FILE.csv    one hospital's own file, nothing on the network
//! fedcare explore --render FILE.json  explore.html again from an explore.json (serve and join
//!                                     write both after an exploration job)
//! ```
//! Each writes `explore.json` (the report: [`fedcare_core::explore::ExploreReport`], format 1)
//! and `explore.html` beside it: a section per column with its summary, a histogram or bar
//! chart of its rows, the label's rate per category or bin, and a table of its cells; a
//! hospital's own figures beside the pooled ones when it took part. No count below `min_cell`
//! is in either file.

use core::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fedcare_core::explore::{
    Cell, CellFigures, ColumnFigures, DEFAULT_MIN_CELL, ExploreReport, Figures, HIDDEN, number,
};
use fedcare_data::{BadRows, Schema, read_csv};
use fedcare_federation::exploration::{self, EXPLORE_FILE};
use fedcare_federation::simulation::{self, Progress, SimulateOptions};

use crate::html::{self, LOCAL, POOLED, Series, escape};

/// The file name of an exploration's page.
pub(crate) const EXPLORE_PAGE: &str = "explore.html";
/// Most cells of one column a chart shows (a `top_k` column's largest buckets).
const CHART_CELLS: usize = 30;

/// `fedcare explore`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Hospital files (one `*.csv` per hospital, in --schema); without --data and --local: the
    /// built-in synthetic cohort.
    #[arg(long, conflicts_with_all = ["local", "render"])]
    data: Option<PathBuf>,
    /// One hospital's own file: counted here, nothing sent anywhere.
    #[arg(long, conflicts_with = "render")]
    local: Option<PathBuf>,
    /// Write explore.html again from this explore.json.
    #[arg(long)]
    render: Option<PathBuf>,
    /// The schema of the files: diabetes130 (the default), diabetes130-all or a schema TOML path.
    #[arg(long)]
    schema: Option<String>,
    /// Hospitals of the synthetic cohort.
    #[arg(long, default_value_t = 5)]
    hospitals: usize,
    /// Patients of an average hospital in the synthetic cohort.
    #[arg(long, default_value_t = 3000)]
    rows: usize,
    /// Seed of the synthetic cohort and of the hospitals' splits.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// The smallest count the reports show (at least 1).
    #[arg(long, default_value_t = DEFAULT_MIN_CELL)]
    min_cell: u64,
    /// Each hospital's discrete Gaussian noise on the pooled counts over their sensitivity, σ
    /// (0: exact; `[explore] noise`); the numeric columns then need edges in the schema.
    #[arg(long, default_value_t = 0.0)]
    noise: f64,
    /// Bad rows of a --local file skipped (counted) before the file is refused.
    #[arg(long, default_value_t = 100)]
    bad_rows_limit: usize,
    /// Output directory (a federated run also writes each hospital's own report in
    /// OUT/hospitals/NAME/).
    #[arg(long, default_value = "fedcare-explore")]
    out: PathBuf,
}

pub(crate) fn run(args: Args) -> Result<()> {
    if args.min_cell == 0 {
        bail!("--min-cell must be at least 1");
    }
    if let Some(json) = &args.render {
        let page = render_file(json)?;
        println!("wrote {}", page.display());
        return Ok(());
    }
    let schema = args.schema.as_deref().map(Schema::by_name).transpose()?;
    if let Some(file) = &args.local {
        return explore_local(file, schema.unwrap_or_else(|| Schema::diabetes130(true)), &args);
    }
    let options = SimulateOptions {
        hospitals: args.hospitals,
        rows: args.rows,
        seed: args.seed,
        data: args.data.clone(),
        schema,
        out: args.out.clone(),
        explore: Some(args.min_cell),
        explore_noise: args.noise,
        ..SimulateOptions::default()
    };
    explore_federated(&options)
}

/// One hospital's file: its counts on the schema's bins (a numeric column without edges: bins
/// over its own mean ± 3 std), its report and page in `--out`.
fn explore_local(file: &Path, schema: Schema, args: &Args) -> Result<()> {
    let start = Instant::now();
    let (table, read) = read_csv(file, &schema, BadRows::from_limit(args.bad_rows_limit))?;
    eprintln!("read {}", read.summary());
    let name = file.file_stem().map_or("local".into(), |s| s.to_string_lossy().into_owned());
    let report = exploration::local_report(&table, &schema, &name, args.min_cell)?;
    let (json, page) = write_outputs(&report, &args.out)?;
    println!(
        "explored {} rows, {} columns of {} in {:.2} s: wrote {} and {}",
        table.rows(),
        report.figures.columns.len(),
        file.display(),
        start.elapsed().as_secs_f64(),
        json.display(),
        page.display()
    );
    Ok(())
}

/// A one-machine exploration federation (what `simulate --explore` runs too): the aggregator's
/// pooled report in `options.out`, each hospital's own in `options.out/hospitals/NAME/`.
pub(crate) fn explore_federated(options: &SimulateOptions) -> Result<()> {
    let start = Instant::now();
    println!(
        "fedcare explore: {} hospitals, mTLS + threshold encryption on 127.0.0.1: setup, then every column's counts",
        if options.data.is_some() { "one per file,".to_owned() } else { options.hospitals.to_string() }
    );
    let progress = |event: Progress<'_>| {
        if let Progress::Session { record, .. } = event {
            println!("  {} session done in {:.2} s ({} hospitals)", record.kind, record.seconds, record.hospitals);
        }
    };
    let report = crate::runtime()?.block_on(simulation::run(options, None, Some(&progress)))?;
    for (file, why) in &report.left_out {
        eprintln!("warning: {} refused to take part: {why}", file.display());
    }
    let page = render_file(&options.out.join(EXPLORE_FILE))?;
    let rows = report.outcome.exploration.as_ref().map_or(0, |(e, _)| e.counts.rows);
    for (hospital, own) in report.hospitals.iter().zip(&report.explorations) {
        match own {
            Some(own) => {
                write_outputs(own, &options.out.join("hospitals").join(hospital.as_str()))?;
            }
            None => eprintln!("warning: {hospital} has no report of its own (it did not finish)"),
        }
    }
    println!(
        "explored {} hospitals' {rows} rows in {:.2} s: wrote {} and {} (each hospital's own report, its figures \
         beside the pooled ones, in {})",
        report.hospitals.len(),
        start.elapsed().as_secs_f64(),
        options.out.join(EXPLORE_FILE).display(),
        page.display(),
        options.out.join("hospitals").display()
    );
    Ok(())
}

/// Writes `explore.json` and `explore.html` of `report` into `dir`; returns their paths.
pub(crate) fn write_outputs(report: &ExploreReport, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let json = exploration::write_report(dir, report)?;
    let page = dir.join(EXPLORE_PAGE);
    fedcare_federation::persistence::write_atomically(&page, render(report)?.as_bytes())?;
    Ok((json, page))
}

/// Writes `explore.html` beside the `explore.json` at `json`; returns the page's path.
pub(crate) fn render_file(json: &Path) -> Result<PathBuf> {
    let report = exploration::read_report(json)?;
    let page = json.with_file_name(EXPLORE_PAGE);
    fedcare_federation::persistence::write_atomically(&page, render(&report)?.as_bytes())
        .with_context(|| format!("cannot write {}", page.display()))?;
    Ok(page)
}

fn count_cell(cell: &Cell) -> String {
    match cell {
        Cell::Count(count) => format!("<td class=\"n\">{count}</td>"),
        Cell::Suppressed(marker) => format!("<td class=\"suppressed\">{}</td>", escape(marker)),
    }
}

fn percent(value: Option<f64>) -> String {
    value
        .map_or_else(|| "<td class=\"suppressed\">–</td>".into(), |v| format!("<td class=\"p\">{:.1}%</td>", v * 100.0))
}

fn share(cell: &Cell, rows: &Cell) -> Option<f64> {
    Some(cell.count()? as f64 / rows.count()?.max(1) as f64)
}

/// The page of a report.
pub(crate) fn render(report: &ExploreReport) -> Result<String> {
    let pooled = &report.figures;
    let local = report.local.as_ref();
    let marker = format!("< {}", report.min_cell);
    let mut body = String::new();
    let _ = write!(
        body,
        "<header><h1>Exploration of {}</h1>\n<p>{} hospital{}: <b>{}</b>. Rows: <b>{}</b>; label <b>{}</b>: {} \
         positive ({}).</p>\n",
        escape(&report.schema),
        report.hospitals.len(),
        if report.hospitals.len() == 1 { "" } else { "s" },
        escape(&report.hospitals.join(", ")),
        count_text(&pooled.rows),
        escape(&report.label),
        count_text(&pooled.positives),
        pooled.rate.map_or("rate not shown".into(), |r| format!("rate {:.1}%", r * 100.0)),
    );
    let _ = writeln!(
        body,
        "<p class=\"note\">No count from 1 to {below} is shown (“{m}”), nor a count that would give one away by \
         subtraction (“{HIDDEN}”), nor a rate with 1 to {below} positive or negative rows; a zero is shown (it \
         discloses no one). Counts are exact sums over the hospitals, decrypted only jointly; shares are of all \
         rows.</p>",
        below = report.min_cell.saturating_sub(1),
        m = escape(&marker)
    );
    if let Some(local) = local {
        let _ = writeln!(
            body,
            "<p>Beside the pooled figures (<span style=\"color:#1f77b4\">■</span>): <b>{}</b>'s own \
             (<span style=\"color:#ff7f0e\">■</span>, {} rows), computed on its side.</p>",
            escape(&local.hospital),
            count_text(&local.figures.rows)
        );
    }
    body += "<nav>";
    for (i, column) in pooled.columns.iter().enumerate() {
        let _ = writeln!(body, "<a href=\"#column-{i}\">{}</a>", escape(&column.name));
    }
    body += "</nav></header>\n";
    for (i, column) in pooled.columns.iter().enumerate() {
        let own = local.and_then(|l| Some((l.figures.columns.get(i)?, &l.figures.rows)));
        body += &column_section(i, column, pooled, own, &marker)?;
    }
    Ok(html::page(&format!("fedcare exploration: {}", report.schema), &body))
}

fn count_text(cell: &Cell) -> String {
    match cell {
        Cell::Count(count) => count.to_string(),
        Cell::Suppressed(marker) => escape(marker),
    }
}

/// One column's section: summary, the two charts and the table of cells.
fn column_section(
    index: usize,
    column: &ColumnFigures,
    pooled: &Figures,
    own: Option<(&ColumnFigures, &Cell)>,
    marker: &str,
) -> Result<String> {
    let mut out = format!(
        "<section class=\"column\" id=\"column-{index}\">\n<h2>{} <span class=\"kind\">{}</span></h2>\n",
        escape(&column.name),
        escape(&column.kind)
    );
    // The summary table: pooled, and this hospital's own beside it.
    out += "<table class=\"summary\"><tr><th></th><th>pooled</th>";
    if own.is_some() {
        out += "<th>this hospital</th>";
    }
    out += "</tr>\n";
    let mut row = |name: &str, value: &dyn Fn(&ColumnFigures) -> String| {
        let _ = write!(out, "<tr><th>{name}</th><td>{}</td>", value(column));
        if let Some((own, _)) = own {
            let _ = write!(out, "<td>{}</td>", value(own));
        }
        out += "</tr>\n";
    };
    row("rows with a value", &|c| count_text(&c.present));
    row("missing", &|c| match (&c.missing.count, c.missing_share) {
        (Cell::Count(n), Some(s)) => format!("{n} ({:.1}%)", s * 100.0),
        (cell, _) => count_text(cell),
    });
    row(if column.kind == "numeric" { "bins holding rows" } else { "distinct categories" }, &|c| {
        c.distinct.to_string()
    });
    if column.summary.is_some() {
        let stat = |f: fn(&fedcare_core::explore::NumericSummary) -> f64| {
            move |c: &ColumnFigures| c.summary.as_ref().map_or("–".into(), |s| number(f(s)))
        };
        row("mean", &stat(|s| s.mean));
        row("standard deviation", &stat(|s| s.std));
        row("variance", &stat(|s| s.variance));
        row("sum", &stat(|s| s.sum));
        for (q, p) in fedcare_core::explore::QUANTILES.iter().enumerate() {
            row(&format!("quantile {:.0}%", p * 100.0), &move |c: &ColumnFigures| {
                c.summary.as_ref().and_then(|s| s.quantiles.get(q)).map_or("–".into(), |q| {
                    match (&q.value, &q.beyond) {
                        (Some(v), _) => number(*v),
                        (None, Some(beyond)) => escape(beyond),
                        (None, None) => "–".into(),
                    }
                })
            });
        }
        row("range of bins with ≥ min_cell rows", &|c| {
            c.summary.as_ref().map_or("–".into(), |s| match (s.low, s.high) {
                (Some(low), Some(high)) => format!("{} to {}", number(low), number(high)),
                _ => "–".into(),
            })
        });
    }
    out += "</table>\n";

    // The charts: every named cell (a hash-bucket column: its largest shown buckets) and the
    // missing rows.
    let mut cells: Vec<(usize, &CellFigures)> = column.cells.iter().enumerate().collect();
    let unnamed = column.kind == "categorical" && cells.iter().any(|(_, c)| c.label.starts_with("bucket "));
    if unnamed || cells.len() > CHART_CELLS {
        cells.sort_by_key(|(_, c)| core::cmp::Reverse(c.count.count().unwrap_or(0)));
        cells.truncate(CHART_CELLS);
    }
    let mut labels: Vec<String> = cells.iter().map(|(_, c)| c.label.clone()).collect();
    labels.push("missing".into());
    let own_cell = |i: usize| own.and_then(|(c, _)| c.cells.get(i));
    let mut rows_series = vec![Series {
        name: "pooled",
        color: POOLED,
        values: chart_values(&cells, column, |c| share(&c.count, &pooled.rows)),
    }];
    let mut rate_series =
        vec![Series { name: "pooled", color: POOLED, values: chart_values(&cells, column, |c| c.rate) }];
    if let Some((own_column, own_rows)) = own {
        let own_values = |f: &dyn Fn(&CellFigures) -> Option<f64>| -> Vec<Option<f64>> {
            cells.iter().map(|(i, _)| own_cell(*i).and_then(f)).chain([f(&own_column.missing)]).collect()
        };
        rows_series.push(Series {
            name: "this hospital",
            color: LOCAL,
            values: own_values(&|c| share(&c.count, own_rows)),
        });
        rate_series.push(Series { name: "this hospital", color: LOCAL, values: own_values(&|c| c.rate) });
    }
    // Why a pooled bar is missing: its count (or its rate) is not shown; an empty cell has none.
    let suppressed = |cell: &Cell| match cell {
        Cell::Suppressed(marker) => Some(marker.clone()),
        Cell::Count(_) => None,
    };
    let chart_cells: Vec<&CellFigures> = cells.iter().map(|(_, c)| *c).chain([&column.missing]).collect();
    let row_markers: Vec<Option<String>> = chart_cells.iter().map(|c| suppressed(&c.count)).collect();
    let rate_markers: Vec<Option<String>> = chart_cells
        .iter()
        .map(|c| {
            suppressed(&c.count).or_else(|| {
                (c.rate.is_none() && c.count.count() != Some(0)).then(|| suppressed(&c.positives)).flatten()
            })
        })
        .collect();
    out += "<div class=\"plots\">\n<figure class=\"plot\">";
    out += &html::bar_chart("share of rows", &labels, &rows_series, &row_markers)?;
    out += "</figure>\n<figure class=\"plot\">";
    out += &html::bar_chart("rate of the label", &labels, &rate_series, &rate_markers)?;
    out += "</figure>\n</div>\n";

    // The cells' table.
    out += "<table class=\"cells\"><tr><th>cell</th><th>rows</th><th>share</th><th>positives</th><th>rate</th>";
    if own.is_some() {
        out += "<th>this hospital: rows</th><th>share</th><th>rate</th>";
    }
    out += "</tr>\n";
    let all = column.cells.iter().enumerate().chain([(usize::MAX, &column.missing)]);
    for (i, cell) in all {
        let _ = write!(
            out,
            "<tr><td>{}</td>{}{}{}{}",
            escape(&cell.label),
            count_cell(&cell.count),
            percent(share(&cell.count, &pooled.rows)),
            count_cell(&cell.positives),
            percent(cell.rate)
        );
        if let Some((own_column, own_rows)) = own {
            let own = if i == usize::MAX { Some(&own_column.missing) } else { own_cell(i) };
            match own {
                Some(c) => {
                    let _ = write!(
                        out,
                        "{}{}{}",
                        count_cell(&c.count),
                        percent(share(&c.count, own_rows)),
                        percent(c.rate)
                    );
                }
                None => out += "<td></td><td></td><td></td>",
            }
        }
        out += "</tr>\n";
    }
    out += "</table>\n";
    if column.hidden_cells > 0 {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} more hash buckets hold fewer than {marker} rows each.</p>",
            column.hidden_cells
        );
    }
    out += "</section>\n";
    Ok(out)
}

/// Values of the chart's cells, then of the missing rows.
fn chart_values(
    cells: &[(usize, &CellFigures)],
    column: &ColumnFigures,
    f: impl Fn(&CellFigures) -> Option<f64>,
) -> Vec<Option<f64>> {
    cells.iter().map(|(_, c)| f(c)).chain([f(&column.missing)]).collect()
}
