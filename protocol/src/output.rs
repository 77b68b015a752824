//! What a session's checked sum gives, computed the same way by the aggregator and by every
//! hospital: the next global model (the agreed server rule applied to the decoded mean update),
//! the next server state (the optimizer's and the best model so far, [`crate::selection`]), the
//! public figures (from the setup session's sums), an exploration's pooled counts, the round's
//! record and the model file written after it.
//!
//! Both sides call [`session_output`] on the same inputs (the ones every participant signed in
//! the round transcript) and the same decrypted words, so an honest aggregator and every honest
//! hospital reach the same [`SessionOutput`] bit for bit; a hospital endorses its digests
//! ([`crate::transcript::Claim::Output`]) and refuses a next session or a final model that
//! differs ([`crate::participant`]).

use bytes::Bytes;
use fedcare_core::subgroup::{SubgroupReport, subgroup_report};
use fedcare_core::top_k::choose_top_k;
use fedcare_core::{Codec, ModelFile};
use fedcare_core::{OptimizerConfig, ServerOptimizerConfig};
use std::collections::BTreeMap;

use crate::boosting::{Boosting, BoostingState, BoostingSum, Step, decode_boosting};
use crate::digest::{FileDigest, StateContent, StateDigest};
use crate::error::OutputError;
use crate::exploration::Exploration;
use crate::params::params_to_bytes;
use crate::selection::ServerState;
use crate::transcript::{file_digest, state_content, state_digest};
use crate::{
    DecodedSum, FederationSettings, Job, PublicFigures, RoundRecord, SessionId, SessionKind, check_exploration,
};
use fedcare_core::gbdt::Ensemble;

/// What a session's inputs were: the state every participant signed.
#[derive(Debug, Clone, Copy)]
pub struct SessionInputs<'a> {
    /// The federation's settings: the model, the schema id written into the model file, the
    /// contribution layout, the privacy settings and the local epochs of a round.
    pub settings: &'a FederationSettings,
    /// The contribution codec (made from the settings).
    pub codec: &'a Codec,
    /// The session.
    pub session: SessionId,
    /// What it computed.
    pub kind: SessionKind,
    /// Its contributors.
    pub contributors: usize,
    /// The global parameters it started from.
    pub global: &'a [f32],
    /// The server state it started from.
    pub server: &'a ServerState,
    /// The public figures it started from.
    pub figures: &'a PublicFigures,
    /// The [`state_digest`] of the state it started from (the output's comes after it).
    pub start: &'a StateDigest,
}

/// The state after a session, and its digests.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionOutput {
    /// The global parameters.
    pub global: Vec<f32>,
    /// The server state.
    pub server: ServerState,
    /// The public figures.
    pub figures: PublicFigures,
    /// The session's record (timings and bytes left at zero: the aggregator fills them).
    pub record: RoundRecord,
    /// The global parameters' bytes and the server state's (what the state digest and the next
    /// confirmation task cover).
    pub state_bytes: (Bytes, Bytes),
    /// [`state_content`] of (global, server, figures).
    pub content: StateContent,
    /// [`state_digest`] of that content after the state the session started from.
    pub state: StateDigest,
    /// The model file written after the session (not endorsed yet).
    pub file: ModelFile,
    /// [`file_digest`] of the model file.
    pub file_digest: FileDigest,
    /// An exploration session's pooled counts (kept in memory: a report on disk shows only
    /// what [`crate::exploration`] lets through).
    pub exploration: Option<Exploration>,
}

/// The server state's bytes (what the confirmation task relays and the state digest covers).
pub fn server_bytes(server: &ServerState) -> Vec<u8> {
    // Invariant: postcard serializes these plain types into a Vec without failing.
    postcard::to_allocvec(server).unwrap_or_default()
}

/// The ε of every training round released so far (`released_rounds` of `epochs` local epochs
/// each) and of the pooled statistics, under the federation's privacy settings (`None` without
/// differential privacy).
pub fn epsilon(settings: &FederationSettings, released_rounds: u32) -> Option<f64> {
    settings.privacy.map(|privacy| privacy.epsilon_after(released_rounds, settings.train.epochs))
}

/// The model file of a state: the best model so far with its training rounds, metrics and
/// Platt scaling (before any evaluation: the global parameters), the feature scaling and the
/// `top_k` buckets; with differential privacy, the [`epsilon`] of the released rounds and its δ
/// (metrics `epsilon`, `delta`).
pub fn model_file(
    settings: &FederationSettings,
    global: &[f32],
    server: &ServerState,
    figures: &PublicFigures,
    subgroups: Option<&SubgroupReport>,
) -> Result<ModelFile, fedcare_core::Error> {
    let (spec, schema_id) = (&settings.spec, settings.schema_id.as_str());
    let mut model = match (&settings.boosting, &server.boosting) {
        (Some(_), Some(state)) => boosted_file(state, spec.input_width(), server, schema_id)?,
        _ => network_file(settings, global, server)?,
    };
    model.feature_scaling = figures.feature_stats.clone();
    model.category_buckets = figures.top_k.clone();
    if let (Some(epsilon), Some(privacy)) = (epsilon(settings, server.released_rounds), settings.privacy) {
        model.metrics.insert("epsilon".into(), epsilon);
        model.metrics.insert("delta".into(), privacy.delta);
    }
    if figures.train_rows > 0 {
        model.metrics.insert("train_rows".into(), figures.train_rows as f64);
        model.metrics.insert("test_rows".into(), figures.test_rows as f64);
    }
    model.settings = settings_text(settings);
    model.subgroups = subgroups.cloned();
    Ok(model)
}

/// Applies a boosting training session's decrypted sum to the server state: the base margin
/// from the pooled label counts and the pooled quantiles of the inputs without thresholds, or a
/// level of the tree being grown (and at a tree's first level
/// the evaluation of the ensemble so far, which may become the best model).
fn boosting_round(
    inputs: &SessionInputs<'_>,
    boosting: &Boosting,
    values: &[f64],
    record: &mut RoundRecord,
    server: &mut ServerState,
) -> Result<(), OutputError> {
    let config = &boosting.config;
    let mut state = server.boosting.take().unwrap_or_default();
    let step = state.step(boosting);
    let cuts = boosting
        .cuts(&inputs.figures.feature_stats, inputs.settings.spec.input_width(), &state)
        .map_err(OutputError::Layout)?;
    let sum = decode_boosting(
        &inputs.settings.layout,
        &step,
        cuts.cells(),
        values,
        inputs.settings.tail_scale(inputs.figures),
    )
    .map_err(OutputError::Layout)?;
    // Under pooled noise the sums are noisy: no evaluation, and no exact-sum checks in growing.
    let noisy = inputs.settings.privacy.is_some_and(|privacy| !privacy.evaluates_rounds());
    match (sum, step) {
        (BoostingSum::Base { rows, positives, fine }, _) => {
            let positives = if noisy { positives.min(rows) } else { positives };
            if rows == 0 || positives > rows {
                return Err(OutputError::Boosting(fedcare_core::Error::LabelCount {
                    expected: rows as usize,
                    got: positives as usize,
                }));
            }
            state.ensemble = Some(Ensemble::new(config.base_margin(rows, positives)));
            state.set_quantiles(&fine);
        }
        (BoostingSum::Level { evaluation, histograms }, Step::Level(mut growing)) => {
            let trees = state.ensemble.as_ref().map_or(0, |e| e.trees.len());
            if let Some(evaluation) = evaluation.filter(|_| !noisy) {
                record.set_evaluation(&evaluation);
                let evaluated = inputs.session.round.saturating_sub(1);
                server.consider(evaluated, &[], record);
                if server.best.as_ref().is_some_and(|best| best.trained_rounds == evaluated) {
                    state.kept_trees = trees as u32;
                }
            }
            let applied = if noisy {
                growing.apply_noisy(histograms, &cuts, config)
            } else {
                growing.apply(histograms, &cuts, config)
            };
            applied.map_err(OutputError::Boosting)?;
            if growing.finished() {
                let tree = growing.into_tree().map_err(OutputError::Boosting)?;
                state.ensemble.get_or_insert_with(|| Ensemble::new(0.0)).trees.push(tree);
                state.growing = None;
            } else {
                state.growing = Some(growing);
            }
        }
        (BoostingSum::Level { .. }, _) => {
            return Err(OutputError::Layout(crate::error::ProtocolError::Invalid {
                field: "boosting sum",
                value: "a level's histograms".into(),
                expected: "a session of a tree's level".into(),
            }));
        }
    }
    server.boosting = Some(state);
    server.released_rounds = inputs.session.round;
    Ok(())
}

/// The factor that turns a decoded tail's loss, summed over [`FederationSettings::tail_scale`],
/// into the mean over the pooled held-out rows: 1 without pooled noise, where the scale is the
/// count itself.
fn loss_rescale(settings: &FederationSettings, figures: &PublicFigures) -> f64 {
    settings.tail_scale(figures) as f64 / figures.test_rows.max(1) as f64
}

/// After the final evaluation made the last model the best, a boosting state keeps all its
/// trees.
fn keep_trees_if_best(server: &mut ServerState, last_rounds: u32) {
    let last_is_best = server.best.as_ref().is_some_and(|best| best.trained_rounds == last_rounds);
    if let Some(state) = server.boosting.as_mut().filter(|_| last_is_best) {
        state.kept_trees = state.ensemble.as_ref().map_or(0, |e| e.trees.len() as u32);
    }
}

/// The model file of a network: the best model's parameters with their round, metrics and
/// Platt scaling, or before any evaluation the global parameters.
fn network_file(
    settings: &FederationSettings,
    global: &[f32],
    server: &ServerState,
) -> Result<ModelFile, fedcare_core::Error> {
    let (spec, schema_id) = (&settings.spec, settings.schema_id.as_str());
    match &server.best {
        Some(best) => {
            let mut model = ModelFile::new(spec.clone(), best.params.clone(), schema_id)?;
            best_metrics(&mut model, server);
            Ok(model)
        }
        None => ModelFile::new(spec.clone(), global.to_vec(), schema_id),
    }
}

/// The model file of boosted trees: the best ensemble evaluated (its first trees) with its
/// metrics and Platt scaling, or before any evaluation every tree so far; `trees_grown` counts
/// the trees grown, kept or not.
fn boosted_file(
    state: &BoostingState,
    width: usize,
    server: &ServerState,
    schema_id: &str,
) -> Result<ModelFile, fedcare_core::Error> {
    let grown = state.ensemble.clone().unwrap_or_else(|| Ensemble::new(0.0));
    let trees_grown = grown.trees.len();
    let ensemble = if server.best.is_some() { state.kept().unwrap_or(grown) } else { grown };
    let trees = ensemble.trees.len();
    let mut model = ModelFile::boosted(ensemble, width, schema_id)?;
    best_metrics(&mut model, server);
    model.metrics.insert("trees".into(), trees as f64);
    model.metrics.insert("trees_grown".into(), trees_grown as f64);
    Ok(model)
}

/// The best model's round, AUROC, AUPRC and Platt scaling, when there is one.
fn best_metrics(model: &mut ModelFile, server: &ServerState) {
    let Some(best) = &server.best else { return };
    model.metrics.insert("round".into(), f64::from(best.trained_rounds));
    model.metrics.insert("auroc".into(), best.auroc);
    if let Some(auprc) = best.auprc {
        model.metrics.insert("auprc".into(), auprc);
    }
    model.calibration = best.platt;
}

/// The settings a model was trained with, as text for its model card.
pub fn settings_text(settings: &FederationSettings) -> BTreeMap<String, String> {
    let spec = &settings.spec;
    let train = &settings.train;
    let kind = if spec.hidden().is_empty() { "logistic regression" } else { "MLP" };
    let mut text = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        text.insert(key.to_owned(), value);
    };
    match &settings.boosting {
        Some(b) => {
            let c = &b.config;
            put(
                "model",
                format!(
                    "gradient-boosted trees ({} trees of depth {}, η {}, λ {}, γ {}, min_child_weight {}, pos_weight {}) over {} inputs",
                    c.trees,
                    c.depth,
                    c.learning_rate,
                    c.lambda,
                    c.gamma,
                    c.min_child_weight,
                    c.pos_weight,
                    spec.input_width()
                ),
            );
        }
        None => put("model", format!("{kind} {}", spec.architecture())),
    }
    put("schema", settings.schema_id.clone());
    put("rounds", settings.rounds.to_string());
    if let Some(patience) = settings.patience {
        put("patience", patience.to_string());
    }
    // Boosted trees have no update rule, optimizer or epochs.
    if settings.boosting.is_none() {
        let rule = match settings.server {
            ServerOptimizerConfig::FedAvg { lr } if train.prox_mu > 0.0 => {
                format!("fedprox (lr {lr}, μ {})", train.prox_mu)
            }
            ServerOptimizerConfig::FedAvg { lr } => format!("fedavg (lr {lr})"),
            ServerOptimizerConfig::FedAdam { lr, beta1, beta2, tau } => {
                format!("fedadam (lr {lr}, β1 {beta1}, β2 {beta2}, τ {tau})")
            }
        };
        put("rule", rule);
        let optimizer = match train.optimizer {
            OptimizerConfig::Sgd { lr, momentum } => format!("sgd (lr {lr}, momentum {momentum})"),
            OptimizerConfig::Adam { lr, beta1, beta2, .. } => format!("adam (lr {lr}, β1 {beta1}, β2 {beta2})"),
        };
        put("optimizer", optimizer);
        put("epochs", train.epochs.to_string());
        put("batch_size", train.batch_size.to_string());
        put(
            "pos_weight",
            if train.pos_weight == 0.0 { "balanced per hospital".into() } else { train.pos_weight.to_string() },
        );
        put("l2", train.l2.to_string());
    }
    put("test_fraction", settings.test_fraction.to_string());
    put("min_hospitals", settings.min_hospitals.to_string());
    put("evaluation_bins", settings.layout.bins.to_string());
    put("subgroup_min_cell", settings.subgroup_min_cell.to_string());
    if let Some(privacy) = &settings.privacy {
        if let Some(dp) = &privacy.dp_sgd {
            put(
                "dp_sgd",
                format!(
                    "sampling rate {}, noise multiplier {}, clip norm {} (per patient)",
                    dp.sampling_rate, dp.noise_multiplier, dp.clip_norm
                ),
            );
        }
        put("delta", privacy.delta.to_string());
        if let Some(pooled) = &privacy.pooled {
            put(
                "pooled_noise",
                format!(
                    "σ {} on the setup's statistics{}, σ {} on the final evaluation's histograms, {} row(s) a patient",
                    pooled.multiplier,
                    if settings.boosting.is_some() { " and the trees' histograms" } else { "" },
                    pooled.evaluation_multiplier,
                    pooled.rows_per_patient
                ),
            );
        }
    }
    text
}

/// Decodes the checked plaintext `words` of a session and applies them: the figures for setup,
/// the server rule for training, the metrics for both training and evaluation. Refuses a sum
/// that does not decode or fails the sanity bounds ([`crate::SetupCounts::check`]).
pub fn session_output(inputs: &SessionInputs<'_>, words: &[u64]) -> Result<SessionOutput, OutputError> {
    let integers = inputs.codec.decode_sum_integers(words, inputs.contributors as u32).map_err(OutputError::Decode)?;
    let scale = inputs.codec.resolution();
    let values: Vec<f64> = integers.iter().map(|&i| i as f64 * scale).collect();
    let layout = &inputs.settings.layout;
    let mut record = RoundRecord::new(inputs.session, inputs.kind, inputs.contributors);
    let mut global = inputs.global.to_vec();
    let mut server = inputs.server.clone();
    let mut figures = inputs.figures.clone();
    let mut exploration = None;
    let boosting = inputs.settings.boosting.as_ref().filter(|_| inputs.kind == SessionKind::Train);
    if let Some(boosting) = boosting {
        boosting_round(inputs, boosting, &values, &mut record, &mut server)?;
    } else {
        let decoded = layout
            .decode(inputs.kind, &values, inputs.settings.tail_scale(inputs.figures))
            .map_err(OutputError::Layout)?;
        match decoded {
            DecodedSum::Setup(counts) => {
                let noise = inputs.settings.pooled_noise().map_or(0.0, |p| p.scale(1.0));
                counts.check(inputs.contributors, noise)?;
                figures = PublicFigures {
                    train_rows: counts.train_rows,
                    test_rows: counts.test_rows,
                    feature_stats: counts.moments.iter().map(|m| m.stats()).collect(),
                    top_k: counts
                        .bucket_counts
                        .iter()
                        .zip(&layout.top_k)
                        .map(|(counts, shape)| choose_top_k(counts, shape.k as usize))
                        .collect(),
                };
            }
            // Session `r` evaluates the model it started from, which had `r − 1` training rounds.
            DecodedSum::Train { mean_update, train_loss, evaluation } => {
                record.train_loss = Some(train_loss);
                // Under pooled noise the rounds carry no evaluation (the tail is zeros).
                if inputs.settings.privacy.is_none_or(|privacy| privacy.evaluates_rounds()) {
                    record.set_evaluation(&evaluation);
                    server.consider(inputs.session.round.saturating_sub(1), &global, &record);
                }
                server.optimizer.apply(&mut global, &mean_update).map_err(OutputError::ServerRule)?;
                server.released_rounds = inputs.session.round;
            }
            // The last evaluation: the best model is what the federation hands out.
            DecodedSum::Evaluate(mut evaluation, subgroups) => {
                evaluation.log_loss *= loss_rescale(inputs.settings, inputs.figures);
                record.set_evaluation(&evaluation);
                let last_rounds = inputs.session.round.saturating_sub(1);
                server.released_rounds = last_rounds;
                server.consider(last_rounds, &global, &record);
                keep_trees_if_best(&mut server, last_rounds);
                // The subgroups of the model handed out: the last one's, or those of the best before.
                let (histograms, platt) = match &server.best {
                    Some(best) if best.trained_rounds != last_rounds => (&subgroups.kept, best.platt),
                    _ => (&subgroups.last, record.platt),
                };
                if !layout.subgroups.is_empty() {
                    record.subgroups = Some(subgroup_report(
                        &layout.subgroups,
                        histograms,
                        platt.as_ref(),
                        inputs.settings.subgroup_min_cell,
                    ));
                }
                if let Some(best) = &server.best {
                    global.clone_from(&best.params);
                }
            }
            DecodedSum::Explore(counts) => {
                let noise = match &inputs.settings.job {
                    Job::Explore { noise: Some(noise), .. } => noise.count_scale(),
                    _ => 0.0,
                };
                check_exploration(&counts, inputs.contributors, noise)?;
                exploration = Some(Exploration { columns: layout.explore_columns(&figures), counts });
            }
        }
    }
    // Every session spends: the setup its pooled statistics (counted with the final evaluation's
    // from the start), each training round its DP-SGD steps.
    record.epsilon = epsilon(inputs.settings, server.released_rounds);
    let state_bytes = (params_to_bytes(&global), Bytes::from(server_bytes(&server)));
    let content = state_content(&state_bytes.0, &state_bytes.1, &figures);
    let state = state_digest(Some(inputs.start), &content);
    let file = model_file(inputs.settings, &global, &server, &figures, record.subgroups.as_ref())
        .map_err(OutputError::ModelFile)?;
    let file_digest = file_digest(&file).map_err(OutputError::ModelFile)?;
    Ok(SessionOutput { global, server, figures, record, state_bytes, content, state, file, file_digest, exploration })
}
