//! `fedcare simulate`: a whole federation on this machine, with a progress bar and one table row
//! per session.

use core::str::FromStr;
use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Result;
use clap::ValueEnum;
use fedcare_federation::config::{
    BoostingConfig, DEFAULT_EVALUATION_BINS, DEFAULT_EVALUATION_NOISE, DEFAULT_POOLED_NOISE,
    DEFAULT_POOLED_ROWS_PER_PATIENT, PrivacyConfig, ServerRule, TrainerChoice,
};
use fedcare_federation::protocol::{RoundRecord, SessionKind};
use fedcare_federation::simulation::{self, Progress, SimulateOptions};
use indicatif::{ProgressBar, ProgressStyle};

/// Hidden layer widths: `32,16`, or empty (or `none`) for logistic regression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HiddenLayers(pub(crate) Vec<u32>);

impl FromStr for HiddenLayers {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("none") {
            return Ok(Self(Vec::new()));
        }
        let widths = text
            .split(',')
            .map(|part| match part.trim().parse::<u32>() {
                Ok(0) => Err("a hidden layer is at least 1 wide (got 0); give --hidden '' or --hidden none for \
                              logistic regression"
                    .to_owned()),
                Ok(width) => Ok(width),
                Err(_) => Err(format!("{part:?} is not a layer width: give widths like 32,16, or '' for none")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(widths))
    }
}

/// Which trainer every simulated hospital uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TrainerArg {
    /// The CPU trainer.
    Cpu,
    /// The GPU trainer (any adapter, a software one included).
    Gpu,
    /// With a hardware GPU, the faster of it and the CPU on the federation's model and batch,
    /// measured by each hospital at its first training; the CPU otherwise.
    Auto,
}

impl From<TrainerArg> for TrainerChoice {
    fn from(arg: TrainerArg) -> Self {
        match arg {
            TrainerArg::Cpu => Self::Cpu,
            TrainerArg::Gpu => Self::Gpu,
            TrainerArg::Auto => Self::Auto,
        }
    }
}

/// `--model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModelArg {
    /// An MLP (--hidden), or logistic regression with --hidden ''.
    Mlp,
    /// Gradient-boosted trees.
    Gbdt,
}

/// The server's update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RuleArg {
    /// FedAvg (server learning rate 1.0).
    Fedavg,
    /// FedAvg with a proximal term in local training (μ = 0.01).
    Fedprox,
    /// Adam on the server (learning rate 0.1, τ = 0.01).
    Fedadam,
}

/// `fedcare simulate`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Hospitals (2 to 64).
    #[arg(long, default_value_t = 5)]
    hospitals: usize,
    /// Training rounds.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Stop training once this many evaluations in a row found no better secure AUROC than the
    /// best model's (default: train every round). The best model is what model.bin holds either
    /// way.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    patience: Option<u32>,
    /// Patients of an average hospital in the synthetic cohort (sizes vary around it).
    #[arg(long, default_value_t = 3000)]
    rows: usize,
    /// Use these hospital files (one `*.csv` per hospital, in --schema) instead of the built-in
    /// synthetic cohort; --hospitals is then the number of files.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The schema of the --data files: diabetes130 (the default), diabetes130-all or a schema
    /// TOML path.
    #[arg(long)]
    schema: Option<String>,
    /// Hash the top_k columns under the consortium's key in this file (`fedcare top-k-key`
    /// writes one): the model then needs it to score (`fedcare predict --top-k-key`). Here
    /// every hospital and the aggregator are one process, so it protects nothing; it shows the
    /// keyed federation.
    #[arg(long)]
    top_k_key: Option<PathBuf>,
    /// The model: an MLP (--hidden; logistic regression without hidden layers) trained by
    /// federated averaging, or gradient-boosted trees grown from summed histograms (--trees,
    /// --depth, --eta, --min-child-weight; --rounds and the training options do not apply).
    #[arg(long, value_enum, default_value_t = ModelArg::Mlp)]
    model: ModelArg,
    /// Hidden layer widths, comma-separated; '' or none: logistic regression.
    #[arg(long, default_value = "32,16")]
    hidden: HiddenLayers,
    /// Trees of --model gbdt (a session per level of each).
    #[arg(long, default_value_t = BoostingConfig::default().trees, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    trees: u32,
    /// Levels of splits of each tree of --model gbdt (1 to 12).
    #[arg(long, default_value_t = BoostingConfig::default().depth, value_parser = clap::value_parser!(u32).range(1..=12))]
    depth: u32,
    /// The learning rate on every leaf of --model gbdt (0 to 1).
    #[arg(long, default_value_t = BoostingConfig::default().learning_rate, value_parser = positive_number)]
    eta: f64,
    /// The smallest sum of hessians on either side of a split of --model gbdt.
    #[arg(long, default_value_t = BoostingConfig::default().min_child_weight)]
    min_child_weight: f64,
    /// The fraction of patients each tree of --model gbdt is grown on (0 to 1; drawn per tree by
    /// a keyed hash of the patient, alike at every hospital).
    #[arg(long, default_value_t = BoostingConfig::default().subsample, value_parser = positive_number)]
    subsample: f64,
    /// Local epochs per round.
    #[arg(long, default_value_t = 1)]
    epochs: u32,
    /// Learning rate of every hospital's local optimizer (Adam).
    #[arg(long, default_value_t = 0.01, value_parser = positive_rate)]
    lr: f32,
    /// Local mini-batch size.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// The share of each hospital's patients held out of training for the federation's
    /// evaluation, which picks the best model and its calibration (0 to 1).
    #[arg(long, default_value_t = 0.2, value_parser = fraction)]
    test_fraction: f32,
    /// Server rule; each has its own defaults (--server-lr overrides the learning rate).
    #[arg(long, value_enum, default_value_t = RuleArg::Fedavg)]
    rule: RuleArg,
    /// The server's learning rate (default: the rule's own, 1.0 for fedavg and fedprox, 0.1 for
    /// fedadam).
    #[arg(long)]
    server_lr: Option<f32>,
    /// Seed of the cohort, the initial model and the batch orders.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Output directory (metrics.jsonl, model.bin); a previous simulation's files there are
    /// replaced.
    #[arg(long, default_value = "fedcare-sim")]
    out: PathBuf,
    /// Local trainer of every hospital.
    #[arg(long, value_enum, default_value_t = TrainerArg::Cpu)]
    trainer: TrainerArg,
    /// Explore the data instead of training (what `fedcare explore` runs): explore.json and
    /// explore.html in --out, no count below 10 in them.
    #[arg(long)]
    explore: bool,
    /// Train with patient-level DP-SGD, the noise chosen so that a patient's ε (at --delta)
    /// after all rounds is at most this (--model gbdt: the trees' histograms get --pooled-noise,
    /// and a federation whose ε would exceed this is refused, naming the noise that fits).
    #[arg(long, value_parser = positive_number, conflicts_with = "noise_multiplier")]
    epsilon: Option<f64>,
    /// Train with DP-SGD at this noise multiplier σ (noise σ·C on each step's clipped sum).
    #[arg(long, value_parser = positive_number)]
    noise_multiplier: Option<f64>,
    /// DP-SGD: the norm C each patient's gradient is clipped to.
    #[arg(long, default_value_t = 5.0, value_parser = positive_number)]
    clip_norm: f64,
    /// DP-SGD: the probability that a step samples a patient (an epoch is 1/q steps).
    #[arg(long, default_value_t = 0.02, value_parser = positive_number)]
    sampling_rate: f64,
    /// DP-SGD: δ of the reported (ε, δ).
    #[arg(long, default_value_t = 1e-6, value_parser = positive_number)]
    delta: f64,
    /// With --epsilon or --noise-multiplier: each hospital's discrete Gaussian noise on the
    /// pooled counts, moments and histograms, over their sensitivity; its ε is part of the
    /// reported one (0: those statistics are exact and not protected).
    #[arg(long, default_value_t = DEFAULT_POOLED_NOISE)]
    pooled_noise: f64,
    /// Log the federation to this MLflow tracking server (http://host:5000): its parameters, each
    /// session's metrics, and at the end model.bin, metrics.jsonl, report.html and the model card
    /// (card.html, card.md, also written to --out). A server that is down never stops it.
    #[arg(long)]
    mlflow: Option<String>,
    /// Write TensorBoard event files of the sessions' metrics into this folder.
    #[arg(long)]
    tensorboard: Option<PathBuf>,
    /// The columns the final evaluation measures per subgroup, comma-separated ('none': no
    /// subgroups; default: the schema's own list, race, gender, age and payer_code for
    /// diabetes130, but none with DP's pooled noise, where each column costs ε).
    #[arg(long)]
    subgroups: Option<SubgroupColumns>,
}

/// `--subgroups`: column names, comma-separated; '' or 'none' for none.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SubgroupColumns(pub(crate) Vec<String>);

impl core::str::FromStr for SubgroupColumns {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() || text == "none" {
            return Ok(Self(Vec::new()));
        }
        let names: Vec<String> = text.split(',').map(|name| name.trim().to_owned()).collect();
        if names.iter().any(String::is_empty) {
            return Err(format!("{text:?}: an empty column name (give names separated by commas, or 'none')"));
        }
        Ok(Self(names))
    }
}

/// A number above zero.
fn positive_number(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if value.is_finite() && value > 0.0 { Ok(value) } else { Err("must be a finite number above 0".into()) }
}

/// A learning rate: finite and above zero.
fn fraction(text: &str) -> Result<f32, String> {
    let share: f32 = text.parse().map_err(|e| format!("{e}"))?;
    if share > 0.0 && share < 1.0 { Ok(share) } else { Err("must be a number between 0 and 1 (exclusive)".into()) }
}

fn positive_rate(text: &str) -> Result<f32, String> {
    let rate: f32 = text.parse().map_err(|e| format!("{e}"))?;
    if rate.is_finite() && rate > 0.0 { Ok(rate) } else { Err("must be a finite number above 0".into()) }
}

/// The rule with its defaults, and the server learning rate if one is given.
fn rule(arg: RuleArg, server_lr: Option<f32>) -> ServerRule {
    let name = match arg {
        RuleArg::Fedavg => "fedavg",
        RuleArg::Fedprox => "fedprox",
        RuleArg::Fedadam => "fedadam",
    };
    // Invariant: the three names are ServerRule's own.
    let rule = ServerRule::named(name).expect("a known rule");
    match server_lr {
        Some(lr) => rule.with_learning_rate(lr),
        None => rule,
    }
}

/// The table's header line.
pub(crate) fn table_header() -> String {
    format!(
        "{:>5} {:>9} {:>9} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>7}",
        "round", "kind", "hospitals", "train loss", "AUROC", "AUPRC", "time s", "up MB", "down MB", "crypto s", "ε"
    )
}

/// One table row; AUROC and AUPRC are those of the model the session started from, on all
/// held-out rows. The hospitals' crypto time is known only where they run (`-` elsewhere).
pub(crate) fn table_row(record: &RoundRecord, crypto_seconds: Option<f64>) -> String {
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    format!(
        "{:>5} {:>9} {:>9} {:>10} {:>8} {:>8} {:>8.2} {:>9.2} {:>9.2} {:>9} {:>7}",
        record.round,
        if record.attempt > 0 { format!("{}*{}", record.kind, record.attempt) } else { record.kind.to_string() },
        record.hospitals,
        opt(record.train_loss, 4),
        opt(record.auroc, 4),
        opt(record.auprc, 4),
        record.seconds,
        record.bytes_up as f64 / 1e6,
        record.bytes_down as f64 / 1e6,
        opt(crypto_seconds, 2),
        opt(record.epsilon, 3)
    )
}

pub(crate) fn run(args: Args) -> Result<()> {
    let options = SimulateOptions {
        hospitals: args.hospitals,
        rounds: args.rounds,
        patience: args.patience,
        rows: args.rows,
        hidden: args.hidden.0,
        epochs: args.epochs,
        learning_rate: args.lr,
        batch_size: args.batch_size,
        test_fraction: args.test_fraction,
        rule: rule(args.rule, args.server_lr),
        seed: args.seed,
        out: args.out.clone(),
        data: args.data,
        schema: match (&args.schema, &args.top_k_key) {
            (None, None) => None,
            (name, key) => Some(crate::top_k_key::schema(name.as_deref().unwrap_or("diabetes130"), key.as_deref())?),
        },
        trainer: args.trainer.into(),
        explore: args.explore.then_some(fedcare_core::explore::DEFAULT_MIN_CELL),
        privacy: (args.epsilon.is_some() || args.noise_multiplier.is_some()).then_some(PrivacyConfig {
            sampling_rate: args.sampling_rate,
            noise_multiplier: args.noise_multiplier.map(|sigma| sigma as f32),
            target_epsilon: args.epsilon,
            clip_norm: args.clip_norm as f32,
            delta: args.delta,
            pooled_noise: args.pooled_noise,
            evaluation_noise: DEFAULT_EVALUATION_NOISE,
            evaluation_bins: DEFAULT_EVALUATION_BINS,
            pooled_rows_per_patient: DEFAULT_POOLED_ROWS_PER_PATIENT,
        }),
        subgroups: args.subgroups.map(|columns| columns.0),
        mlflow: args.mlflow.clone(),
        tensorboard: args.tensorboard.clone(),
        boosting: (args.model == ModelArg::Gbdt).then(|| BoostingConfig {
            trees: args.trees,
            depth: args.depth,
            learning_rate: args.eta,
            min_child_weight: args.min_child_weight,
            subsample: args.subsample,
            ..BoostingConfig::default()
        }),
        ..SimulateOptions::default()
    };
    if options.explore.is_some() {
        return crate::explore::explore_federated(&options);
    }
    let hospitals = if options.data.is_some() { "one per file,".to_owned() } else { format!("{}", options.hospitals) };
    // A boosting federation has a training session per tree level: the table shows those that
    // score the ensemble (each tree's first level), the base session and the others.
    let boosting = options.boosting.is_some();
    let shown = |record: &RoundRecord| {
        !boosting || record.kind != SessionKind::Train || record.round == 1 || record.auroc.is_some()
    };
    let sessions = match &options.boosting {
        Some(b) => {
            println!(
                "fedcare simulate: {hospitals} hospitals, gradient-boosted trees ({} trees of depth {}: at most {} training sessions), mTLS + threshold encryption on 127.0.0.1",
                b.trees,
                b.depth,
                1 + b.trees * b.depth
            );
            1 + b.trees * b.depth
        }
        None => {
            println!(
                "fedcare simulate: {hospitals} hospitals, {} rounds, mTLS + threshold encryption on 127.0.0.1",
                options.rounds
            );
            options.rounds
        }
    };
    // On a terminal, rows appear above a progress bar as sessions end; elsewhere the table is
    // printed whole at the end.
    let terminal = std::io::stderr().is_terminal();
    let bar = ProgressBar::new(u64::from(sessions) + 2);
    if terminal {
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} sessions {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let progress = |event: Progress<'_>| match event {
        Progress::Trainer(why) => {
            bar.println(format!("trainer: {why}"));
            if !terminal {
                println!("trainer: {why}");
            }
            bar.println(table_header());
        }
        Progress::Session { record, crypto_seconds } => {
            if shown(record) {
                bar.println(table_row(record, Some(crypto_seconds)));
            }
            bar.inc(1);
        }
    };
    let report = crate::runtime()?.block_on(simulation::run_with_pages(
        &options,
        None,
        Some(&progress),
        Some(&federation_pages),
    ))?;
    bar.finish_and_clear();
    if !terminal {
        println!("{}", table_header());
        for (record, crypto) in report.outcome.records.iter().zip(&report.crypto_seconds) {
            if shown(record) {
                println!("{}", table_row(record, Some(*crypto)));
            }
        }
    }
    let hidden = report.outcome.records.iter().filter(|r| !shown(r)).count();
    if hidden > 0 {
        println!(
            "{hidden} tree-level sessions that scored nothing are not shown (a tree's first level scores the \
             ensemble before it); every session is in {}.",
            args.out.join("metrics.jsonl").display()
        );
    }
    println!(
        "AUROC is that of the model each session started from (the last row: the last model), on every \
         hospital's held-out rows, from encrypted score histograms."
    );
    // A boosted model file says how many of the trees it kept.
    let kept_trees = report
        .received
        .iter()
        .flatten()
        .next()
        .and_then(|bytes| fedcare_core::ModelFile::from_bytes(bytes).ok())
        .filter(|model| model.ensemble.is_some())
        .and_then(|model| model.metrics.get("trees").copied());
    if let Some(kept) = report.outcome.kept() {
        let auroc = kept.auroc.unwrap_or(f64::NAN);
        match kept_trees {
            Some(trees) => println!(
                "model.bin holds the best of them: the ensemble of its first {trees} trees (AUROC {auroc:.4}, session {}).",
                kept.round
            ),
            None => println!(
                "model.bin holds the best of them: the model after {} training rounds (AUROC {auroc:.4}, session {}).",
                kept.round.saturating_sub(1),
                kept.round
            ),
        }
    }
    if let Some(subgroups) = report.outcome.records.last().and_then(|r| r.subgroups.as_ref()) {
        print!("{}", subgroup_summary(subgroups));
    }
    if let Some(epsilon) = report.outcome.records.last().and_then(|r| r.epsilon) {
        let mechanism = match args.model {
            ModelArg::Gbdt => "every tree level's histograms noised at σ_p".to_owned(),
            ModelArg::Mlp => format!("DP-SGD, clip norm {}, sampling rate {}", args.clip_norm, args.sampling_rate),
        };
        println!(
            "differential privacy: a patient's ε after every {} is {epsilon:.3} at δ = {:e} ({mechanism}; {})",
            match args.model {
                ModelArg::Gbdt => "session",
                ModelArg::Mlp => "training round",
            },
            args.delta,
            if args.pooled_noise > 0.0 {
                format!(
                    "pooled statistics noised, σ_p = {}, σ_e = {}, one row per patient: the rounds are not \
                     evaluated and the final AUROC is an estimate",
                    args.pooled_noise, DEFAULT_EVALUATION_NOISE
                )
            } else {
                "pooled statistics exact, not protected".to_owned()
            }
        );
    }
    println!("wrote {} and {}", args.out.join("metrics.jsonl").display(), args.out.join("model.bin").display());
    if let (Some(server), Some(delivery)) = (&args.mlflow, &report.tracking) {
        print_delivery(server, delivery);
    }
    if let Some(dir) = &args.tensorboard {
        println!("TensorBoard: event files in {} (tensorboard --logdir {})", dir.display(), dir.display());
    }
    Ok(())
}

/// What reached the MLflow server, in a line (and what did not).
pub(crate) fn print_delivery(server: &str, delivery: &fedcare_federation::tracking::Delivery) {
    match (&delivery.run_id, delivery.lost.is_empty()) {
        (Some(run), true) => println!("MLflow: run {run} at {server}: parameters, metrics and artifacts sent"),
        (run, _) => println!(
            "MLflow: {} at {server}: {} entries sent, not sent: {}",
            run.as_deref().map_or("no run".to_owned(), |run| format!("run {run}")),
            delivery.sent,
            delivery.lost.join("; ")
        ),
    }
}

/// The pages of a finished federation in `out` (its model.bin and metrics.jsonl), written there
/// and sent to its MLflow run: the model card and `report.html` (with its plots, in
/// `out/report`). A page that cannot be made is left out, and said.
pub(crate) fn federation_pages(out: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut pages = Vec::new();
    let mut add = |path: &std::path::PathBuf| match std::fs::read(path) {
        Ok(bytes) => pages.push((path.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned()), bytes)),
        Err(error) => tracing::warn!("{}: {error}", path.display()),
    };
    match crate::card::write(&out.join("model.bin"), out, false) {
        Ok(paths) => paths.iter().for_each(&mut add),
        Err(error) => tracing::warn!("no model card: {error:#}"),
    }
    let report = fedcare_federation::persistence::read_metrics(&out.join("metrics.jsonl"))
        .map_err(anyhow::Error::from)
        .and_then(|records| crate::report::write_report(&records, &out.join("report")));
    match report {
        Ok(paths) => paths.iter().filter(|p| p.extension().is_some_and(|e| e == "html")).for_each(&mut add),
        Err(error) => tracing::warn!("no report: {error:#}"),
    }
    pages
}

/// A line per subgroup column: the subgroups shown and too small, and the largest AUROC and
/// true-positive-rate gaps against the whole population.
fn subgroup_summary(report: &fedcare_core::subgroup::SubgroupReport) -> String {
    use core::fmt::Write as _;
    let mut out = format!(
        "subgroups of that model (gaps against all held-out rows; TPR at the threshold flagging the top {:.0} %; \
         under {} rows, positives or negatives: too small):\n",
        100.0 * report.top_share,
        report.min_cell
    );
    for column in &report.columns {
        let shown: Vec<(&str, &fedcare_core::subgroup::GroupFigures)> =
            column.subgroups.iter().filter_map(|s| Some((s.label.as_str(), s.figures.shown()?))).collect();
        let small = column.subgroups.len() - shown.len();
        let widest = |gap: fn(&fedcare_core::subgroup::GroupFigures) -> Option<f64>| {
            shown
                .iter()
                .filter_map(|(label, figures)| Some((*label, gap(figures)?)))
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .map_or("-".to_owned(), |(label, gap)| format!("{gap:+.3} ({label})"))
        };
        let _ = writeln!(
            out,
            "  {:<12} {} shown, {small} too small; widest AUROC gap {}, TPR gap {}",
            column.name,
            shown.len(),
            widest(|f| f.auroc_gap),
            widest(|f| f.tpr_gap)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subgroup_columns_parse_and_none_means_none() {
        assert_eq!("race, gender".parse::<SubgroupColumns>().unwrap().0, ["race", "gender"]);
        assert!("none".parse::<SubgroupColumns>().unwrap().0.is_empty());
        assert!("race,,age".parse::<SubgroupColumns>().unwrap_err().contains("empty column name"));
    }

    #[test]
    fn hidden_layers_parse_and_zero_widths_say_how_to_get_logistic_regression() {
        assert_eq!("32,16".parse::<HiddenLayers>().unwrap(), HiddenLayers(vec![32, 16]));
        assert_eq!(" 8 ".parse::<HiddenLayers>().unwrap(), HiddenLayers(vec![8]));
        assert_eq!("".parse::<HiddenLayers>().unwrap(), HiddenLayers(Vec::new()));
        assert_eq!("none".parse::<HiddenLayers>().unwrap(), HiddenLayers(Vec::new()));
        let error = "0".parse::<HiddenLayers>().unwrap_err();
        assert!(error.contains("--hidden ''"), "{error}");
        assert!("32,x".parse::<HiddenLayers>().unwrap_err().contains("\"x\""));
    }

    #[test]
    fn each_rule_keeps_its_defaults_unless_a_server_rate_is_given() {
        assert_eq!(rule(RuleArg::Fedadam, None), ServerRule::named("fedadam").unwrap());
        let ServerRule::FedAdam(settings) = rule(RuleArg::Fedadam, Some(0.03)) else { panic!("not fedadam") };
        assert_eq!((settings.lr, settings.tau), (0.03, 1e-2));
    }
}
