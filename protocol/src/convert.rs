//! Every conversion between the protocol's types and their `fedcare.v1` wire forms, in one place.
//! A value that comes from the wire is checked here (unknown enum values, missing fields, sizes
//! out of range) and refused with a [`ProtocolError`] that names the field; nothing unknown is
//! mapped to a default silently.

use fedcare_core::explore::{ColumnKind, ColumnSpec};
use fedcare_core::gbdt::BoostingConfig;
use fedcare_core::privacy::{DpSgd, PooledNoise};
use fedcare_core::{
    CodecConfig, ModelSpec, OptimizerConfig, ServerOptimizer, ServerOptimizerConfig, TopKShape, TrainConfig,
};
use fedcare_crypto::{Crs, PARAMS_V2};
use fedcare_proto::v1;

use crate::boosting::Boosting;
use crate::coordinator::Status;
use crate::digest::SettingsDigest;
use crate::error::ProtocolError;
use crate::{
    ContributionLayout, ExploreNoise, FederationSettings, Job, Privacy, PublicFigures, SessionId, SessionKind, Task,
    TaskKind, UploadHeader, UploadKind,
};

fn invalid(field: &'static str, value: impl ToString, expected: impl Into<String>) -> ProtocolError {
    ProtocolError::Invalid { field, value: value.to_string(), expected: expected.into() }
}

/// A session id's wire form.
pub fn session_to_proto(id: SessionId) -> v1::Session {
    v1::Session { round: id.round, attempt: id.attempt }
}

/// A session id from its wire form.
pub fn session_from_proto(session: v1::Session) -> SessionId {
    SessionId { round: session.round, attempt: session.attempt }
}

fn session_kind_to_proto(kind: SessionKind) -> v1::RoundKind {
    match kind {
        SessionKind::Setup => v1::RoundKind::Setup,
        SessionKind::Train => v1::RoundKind::Train,
        SessionKind::Evaluate => v1::RoundKind::Evaluate,
        SessionKind::Explore => v1::RoundKind::Explore,
    }
}

fn session_kind_from_proto(value: i32) -> Result<Option<SessionKind>, ProtocolError> {
    match v1::RoundKind::try_from(value) {
        Ok(v1::RoundKind::Unspecified) => Ok(None),
        Ok(v1::RoundKind::Setup) => Ok(Some(SessionKind::Setup)),
        Ok(v1::RoundKind::Train) => Ok(Some(SessionKind::Train)),
        Ok(v1::RoundKind::Evaluate) => Ok(Some(SessionKind::Evaluate)),
        Ok(v1::RoundKind::Explore) => Ok(Some(SessionKind::Explore)),
        Err(_) => Err(invalid("round_kind", value, "setup, train, evaluate or explore")),
    }
}

/// The wire form of a task kind.
pub fn task_kind_to_proto(kind: TaskKind) -> v1::TaskKind {
    match kind {
        TaskKind::Wait => v1::TaskKind::Wait,
        TaskKind::KeyGen => v1::TaskKind::KeyGen,
        TaskKind::Reveal => v1::TaskKind::Reveal,
        TaskKind::Confirm => v1::TaskKind::Confirm,
        TaskKind::Contribute => v1::TaskKind::Contribute,
        TaskKind::Challenge => v1::TaskKind::Challenge,
        TaskKind::Prove => v1::TaskKind::Prove,
        TaskKind::Decrypt => v1::TaskKind::Decrypt,
        TaskKind::Result => v1::TaskKind::Result,
        TaskKind::Attest => v1::TaskKind::Attest,
        TaskKind::Accept => v1::TaskKind::Accept,
        TaskKind::Recover => v1::TaskKind::Recover,
        TaskKind::Done => v1::TaskKind::Done,
        TaskKind::Failed => v1::TaskKind::Failed,
    }
}

fn task_kind_from_proto(value: i32) -> Result<TaskKind, ProtocolError> {
    Ok(match v1::TaskKind::try_from(value) {
        Ok(v1::TaskKind::Wait) => TaskKind::Wait,
        Ok(v1::TaskKind::KeyGen) => TaskKind::KeyGen,
        Ok(v1::TaskKind::Reveal) => TaskKind::Reveal,
        Ok(v1::TaskKind::Confirm) => TaskKind::Confirm,
        Ok(v1::TaskKind::Contribute) => TaskKind::Contribute,
        Ok(v1::TaskKind::Challenge) => TaskKind::Challenge,
        Ok(v1::TaskKind::Prove) => TaskKind::Prove,
        Ok(v1::TaskKind::Decrypt) => TaskKind::Decrypt,
        Ok(v1::TaskKind::Result) => TaskKind::Result,
        Ok(v1::TaskKind::Attest) => TaskKind::Attest,
        Ok(v1::TaskKind::Accept) => TaskKind::Accept,
        Ok(v1::TaskKind::Recover) => TaskKind::Recover,
        Ok(v1::TaskKind::Done) => TaskKind::Done,
        Ok(v1::TaskKind::Failed) => TaskKind::Failed,
        Ok(v1::TaskKind::Unspecified) | Err(_) => return Err(invalid("task kind", value, "a known task kind")),
    })
}

fn upload_kind_to_proto(kind: UploadKind) -> v1::UploadKind {
    match kind {
        UploadKind::KeyShare => v1::UploadKind::KeyShare,
        UploadKind::Contribution => v1::UploadKind::Contribution,
        UploadKind::DecryptionShare => v1::UploadKind::DecryptionShare,
        UploadKind::Statement => v1::UploadKind::Statement,
        UploadKind::Sum => v1::UploadKind::Sum,
    }
}

/// The upload header a hospital sends.
pub fn upload_header_to_proto(header: &UploadHeader, total_bytes: u64) -> v1::UploadHeader {
    v1::UploadHeader {
        federation_id: header.federation_id.clone(),
        session: header.session.map(session_to_proto),
        node_id: header.node.clone(),
        kind: header.kind.map_or(v1::UploadKind::Unspecified, upload_kind_to_proto) as i32,
        total_bytes,
    }
}

/// The upload header the aggregator received (an unknown kind stays `None`, for the coordinator
/// to refuse in the words of the running phase).
pub fn upload_header_from_proto(header: &v1::UploadHeader) -> UploadHeader {
    let kind = match v1::UploadKind::try_from(header.kind) {
        Ok(v1::UploadKind::KeyShare) => Some(UploadKind::KeyShare),
        Ok(v1::UploadKind::Contribution) => Some(UploadKind::Contribution),
        Ok(v1::UploadKind::DecryptionShare) => Some(UploadKind::DecryptionShare),
        Ok(v1::UploadKind::Statement) => Some(UploadKind::Statement),
        Ok(v1::UploadKind::Sum) => Some(UploadKind::Sum),
        Ok(v1::UploadKind::Unspecified) | Err(_) => None,
    };
    UploadHeader {
        federation_id: header.federation_id.clone(),
        session: header.session.map(session_from_proto),
        node: header.node_id.clone(),
        kind,
    }
}

fn figures_to_header(figures: &PublicFigures, header: &mut v1::TaskHeader) {
    header.total_train_rows = figures.train_rows;
    header.total_test_rows = figures.test_rows;
    header.feature_means = figures.feature_stats.iter().map(|s| s.mean).collect();
    header.feature_stds = figures.feature_stats.iter().map(|s| s.std).collect();
    header.top_k = figures.top_k.iter().map(|chosen| v1::TopKChoice { buckets: chosen.clone() }).collect();
}

fn figures_from_header(header: &v1::TaskHeader) -> Result<PublicFigures, ProtocolError> {
    if header.feature_means.len() != header.feature_stds.len() {
        return Err(invalid(
            "feature statistics",
            format!("{} means and {} deviations", header.feature_means.len(), header.feature_stds.len()),
            "one mean and one deviation per numeric feature",
        ));
    }
    Ok(PublicFigures {
        train_rows: header.total_train_rows,
        test_rows: header.total_test_rows,
        feature_stats: header
            .feature_means
            .iter()
            .zip(&header.feature_stds)
            .map(|(&mean, &std)| fedcare_core::ColumnStats::sanitized(mean, std))
            .collect(),
        top_k: header.top_k.iter().map(|choice| choice.buckets.clone()).collect(),
    })
}

/// The header of a task, with the sizes of its sections.
pub fn task_header(task: &Task) -> v1::TaskHeader {
    let mut header = v1::TaskHeader {
        kind: task_kind_to_proto(task.kind) as i32,
        session: task.session.map(session_to_proto),
        round_kind: task.session_kind.map_or(v1::RoundKind::Unspecified, session_kind_to_proto) as i32,
        crs: task.crs.map(|crs| bytes::Bytes::copy_from_slice(&crs.0.to_le_bytes())).unwrap_or_default(),
        section_sizes: task.sections.iter().map(|s| s.len() as u64).collect(),
        message: task.message.clone(),
        ..v1::TaskHeader::default()
    };
    figures_to_header(&task.figures, &mut header);
    header
}

/// A task a hospital received: its header and the payload's sections.
pub fn task_from_proto(header: &v1::TaskHeader, sections: Vec<bytes::Bytes>) -> Result<Task, ProtocolError> {
    let crs = match header.crs.len() {
        0 => None,
        16 => {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&header.crs);
            Some(Crs(u128::from_le_bytes(bytes)))
        }
        other => return Err(invalid("crs", format!("{other} bytes"), "16 bytes")),
    };
    Ok(Task {
        kind: task_kind_from_proto(header.kind)?,
        session: header.session.map(session_from_proto),
        session_kind: session_kind_from_proto(header.round_kind)?,
        crs,
        figures: figures_from_header(header)?,
        sections,
        message: header.message.clone(),
    })
}

/// The status reply.
pub fn status_to_proto(status: &Status) -> v1::StatusReply {
    v1::StatusReply {
        session: status.session.map(session_to_proto),
        phase: task_kind_to_proto(status.phase) as i32,
        active_hospitals: status.active.iter().map(|n| n.as_str().to_owned()).collect(),
        rounds_done: status.rounds_done,
    }
}

/// The settings' wire form, what a hospital receives when it joins ([`settings_from_proto`]
/// reads it back to the same settings).
pub fn settings_to_proto(settings: &FederationSettings) -> v1::FederationConfig {
    let t = &settings.train;
    let codec = settings.codec;
    let (optimizer, learning_rate, momentum) = match t.optimizer {
        OptimizerConfig::Adam { lr, .. } => (v1::Optimizer::Adam, lr, 0.0),
        OptimizerConfig::Sgd { lr, momentum } => (v1::Optimizer::Sgd, lr, momentum),
    };
    let layout = &settings.layout;
    v1::FederationConfig {
        federation_id: settings.federation_id.clone(),
        model: Some(v1::ModelSpec {
            input_width: settings.spec.input_width() as u32,
            hidden: settings.spec.hidden().iter().map(|&h| h as u32).collect(),
        }),
        codec: Some(v1::CodecConfig {
            value_bits: codec.value_bits,
            frac_bits: codec.frac_bits,
            max_parties: codec.max_parties,
            plaintext_bits: codec.plaintext_bits,
        }),
        crypto_params_id: u32::from(PARAMS_V2.id),
        rounds: settings.rounds,
        patience: settings.patience.unwrap_or(0),
        privacy: settings.privacy.map(|p| v1::Privacy {
            sampling_rate: p.dp_sgd.map_or(0.0, |dp| dp.sampling_rate),
            noise_multiplier: p.dp_sgd.map_or(0.0, |dp| dp.noise_multiplier),
            clip_norm: p.dp_sgd.map_or(0.0, |dp| dp.clip_norm),
            delta: p.delta,
            pooled_noise: p.pooled.map_or(0.0, |pooled| pooled.multiplier),
            evaluation_noise: p.pooled.map_or(0.0, |pooled| pooled.evaluation_multiplier),
            pooled_rows_per_patient: p.pooled.map_or(0, |pooled| pooled.rows_per_patient),
        }),
        training: Some(v1::TrainingConfig {
            epochs: t.epochs,
            batch_size: t.batch_size as u32,
            optimizer: optimizer as i32,
            learning_rate,
            momentum,
            l2: t.l2,
            prox_mu: t.prox_mu,
            pos_weight: t.pos_weight,
            seed: t.seed,
        }),
        min_hospitals: settings.min_hospitals as u32,
        eval_bins: layout.bins as u32,
        schema_id: settings.schema_id.clone(),
        max_upload_bytes: settings.max_upload_bytes,
        test_fraction: settings.test_fraction,
        numeric_features: layout.numeric as u32,
        top_k_columns: layout.top_k.iter().map(|s| v1::TopKColumn { buckets: s.buckets, k: s.k }).collect(),
        server_rule: Some(match settings.server {
            ServerOptimizerConfig::FedAvg { lr } => {
                v1::ServerRule { kind: v1::ServerRuleKind::FedAvg as i32, lr, ..Default::default() }
            }
            ServerOptimizerConfig::FedAdam { lr, beta1, beta2, tau } => {
                v1::ServerRule { kind: v1::ServerRuleKind::FedAdam as i32, lr, beta1, beta2, tau }
            }
        }),
        exploration: match &settings.job {
            Job::Train => None,
            Job::Explore { min_cell, label, noise } => Some(v1::Exploration {
                min_cell: *min_cell,
                label: label.clone(),
                columns: layout.explore.iter().map(explore_column_to_proto).collect(),
                noise: noise.map_or(0.0, |n| n.multiplier),
                rows_per_patient: noise.map_or(0, |n| n.rows_per_patient),
            }),
        },
        subgroups: (!layout.subgroups.is_empty()).then(|| v1::Subgroups {
            columns: layout.subgroups.iter().map(explore_column_to_proto).collect(),
            min_cell: settings.subgroup_min_cell,
        }),
        boosting: settings.boosting.as_ref().map(|b| v1::Boosting {
            trees: b.config.trees,
            depth: b.config.depth,
            learning_rate: b.config.learning_rate,
            lambda: b.config.lambda,
            gamma: b.config.gamma,
            min_child_weight: b.config.min_child_weight,
            pos_weight: b.config.pos_weight,
            subsample: b.config.subsample,
            numeric_thresholds: b.numeric_thresholds.iter().map(|t| v1::Thresholds { values: t.clone() }).collect(),
        }),
    }
}

/// The boosting settings of a received configuration, checked: valid trees, thresholds for
/// each numeric input (finite and ascending), as many rounds as the trees take, and no patience
/// (every tree is grown); their privacy is checked with the rest ([`privacy_from_proto`]).
fn boosting_from_proto(config: &v1::FederationConfig) -> Result<Option<Boosting>, ProtocolError> {
    let Some(b) = &config.boosting else { return Ok(None) };
    let boosting_config = BoostingConfig {
        trees: b.trees,
        depth: b.depth,
        learning_rate: b.learning_rate,
        lambda: b.lambda,
        gamma: b.gamma,
        min_child_weight: b.min_child_weight,
        pos_weight: b.pos_weight,
        subsample: if b.subsample == 0.0 { 1.0 } else { b.subsample },
    };
    boosting_config.validate()?;
    if b.numeric_thresholds.len() != config.numeric_features as usize {
        return Err(invalid(
            "boosting thresholds",
            b.numeric_thresholds.len(),
            format!("one list per numeric input ({})", config.numeric_features),
        ));
    }
    for (input, thresholds) in b.numeric_thresholds.iter().enumerate() {
        let ok = thresholds.values.iter().all(|t| t.is_finite())
            && thresholds.values.windows(2).all(|w| w[0] < w[1])
            && thresholds.values.len() < fedcare_core::gbdt::MAX_BINS;
        if !ok {
            return Err(invalid("boosting thresholds", input, "finite, strictly ascending and fewer than 256"));
        }
    }
    let boosting = Boosting {
        config: boosting_config,
        numeric_thresholds: b.numeric_thresholds.iter().map(|t| t.values.clone()).collect(),
    };
    if config.rounds != boosting.rounds() {
        return Err(invalid(
            "rounds",
            config.rounds,
            format!("{} (the base session and a level per tree)", boosting.rounds()),
        ));
    }
    if config.patience > 0 {
        return Err(invalid("boosting", "with patience", "every tree grown (no patience)"));
    }
    if config.exploration.is_some() {
        return Err(invalid("boosting", "in an exploration", "a training job"));
    }
    Ok(Some(boosting))
}

/// The digest every participant's transcript covers: BLAKE3 of the settings' wire form, as the
/// aggregator sends it and each hospital receives it ([`settings_from_proto`] computes the same
/// from the bytes it received).
pub fn settings_digest(settings: &FederationSettings) -> SettingsDigest {
    SettingsDigest(*blake3::hash(&prost::Message::encode_to_vec(&settings_to_proto(settings))).as_bytes())
}

/// Most columns an exploration may count.
const MAX_EXPLORE_COLUMNS: usize = 4096;

fn explore_column_to_proto(column: &ColumnSpec) -> v1::ExploreColumn {
    match &column.kind {
        ColumnKind::Numeric { edges, bins } => v1::ExploreColumn {
            name: column.name.clone(),
            numeric: true,
            edges: edges.clone(),
            bins: *bins,
            ..Default::default()
        },
        ColumnKind::Categorical { categories, labels } => v1::ExploreColumn {
            name: column.name.clone(),
            categories: *categories,
            labels: labels.clone(),
            ..Default::default()
        },
    }
}

fn explore_column_from_proto(column: &v1::ExploreColumn) -> Result<ColumnSpec, ProtocolError> {
    let kind = if column.numeric {
        ColumnKind::Numeric { edges: column.edges.clone(), bins: column.bins }
    } else {
        ColumnKind::Categorical { categories: column.categories, labels: column.labels.clone() }
    };
    let spec = ColumnSpec { name: column.name.clone(), kind };
    spec.validate().map_err(|e| invalid("exploration column", &column.name, e.to_string()))?;
    Ok(spec)
}

/// Most subgroup columns a final evaluation may measure.
pub const MAX_SUBGROUP_COLUMNS: usize = 16;
/// Most cells of a subgroup column (its missing values aside).
pub const MAX_SUBGROUP_CELLS: usize = 64;

/// Checks a subgroup column: categorical, or numeric with edges (its bands), of at most
/// [`MAX_SUBGROUP_CELLS`] cells.
pub fn check_subgroup_column(column: &ColumnSpec) -> Result<(), ProtocolError> {
    column.validate().map_err(|e| invalid("subgroup column", &column.name, e.to_string()))?;
    if column.is_numeric() && column.edges().is_empty() {
        return Err(invalid("subgroup column", &column.name, "a numeric column with edges (its bands)"));
    }
    if column.cells() > MAX_SUBGROUP_CELLS {
        return Err(invalid(
            "subgroup column",
            format!("{} ({} cells)", column.name, column.cells()),
            format!("at most {MAX_SUBGROUP_CELLS} cells (a top_k column's hash buckets are no subgroups)"),
        ));
    }
    Ok(())
}

/// The subgroup columns and their `min_cell` of a received configuration (none: no columns).
fn subgroups_from_proto(config: &v1::FederationConfig) -> Result<(Vec<ColumnSpec>, u64), ProtocolError> {
    let Some(subgroups) = &config.subgroups else { return Ok((Vec::new(), fedcare_core::explore::DEFAULT_MIN_CELL)) };
    if subgroups.columns.is_empty() || subgroups.columns.len() > MAX_SUBGROUP_COLUMNS {
        return Err(invalid("subgroup columns", subgroups.columns.len(), format!("1 to {MAX_SUBGROUP_COLUMNS}")));
    }
    if subgroups.min_cell == 0 {
        return Err(invalid("subgroup min_cell", 0, "at least 1"));
    }
    let columns: Vec<ColumnSpec> = subgroups.columns.iter().map(explore_column_from_proto).collect::<Result<_, _>>()?;
    columns.iter().try_for_each(check_subgroup_column)?;
    Ok((columns, subgroups.min_cell))
}

/// The job and the exploration's columns of a received configuration.
fn job_from_proto(config: &v1::FederationConfig) -> Result<(Job, Vec<ColumnSpec>), ProtocolError> {
    let Some(exploration) = &config.exploration else { return Ok((Job::Train, Vec::new())) };
    if exploration.min_cell == 0 {
        return Err(invalid("exploration min_cell", 0, "at least 1"));
    }
    if exploration.columns.is_empty() || exploration.columns.len() > MAX_EXPLORE_COLUMNS {
        return Err(invalid("exploration columns", exploration.columns.len(), format!("1 to {MAX_EXPLORE_COLUMNS}")));
    }
    let columns = exploration.columns.iter().map(explore_column_from_proto).collect::<Result<_, _>>()?;
    let noise = match (exploration.noise, exploration.rows_per_patient) {
        (0.0, _) => None,
        (multiplier, _) if !(multiplier.is_finite() && multiplier > 0.0) => {
            return Err(invalid("exploration noise", multiplier, "0 (exact) or a positive multiplier"));
        }
        (_, 0) => return Err(invalid("exploration rows_per_patient", 0, "at least 1 under noise")),
        (multiplier, rows_per_patient) => Some(ExploreNoise { multiplier, rows_per_patient }),
    };
    let job = Job::Explore { min_cell: exploration.min_cell, label: exploration.label.clone(), noise };
    Ok((job, columns))
}

/// The privacy settings as received, checked; `layout` tells the statistics the setup releases.
/// Boosted trees (`boosting`) take no DP-SGD (its fields zero) and need the pooled noise, which
/// covers their histograms.
fn privacy_from_proto(
    privacy: &v1::Privacy,
    layout: &ContributionLayout,
    boosting: bool,
) -> Result<Privacy, ProtocolError> {
    let dp_sgd = DpSgd {
        sampling_rate: privacy.sampling_rate,
        noise_multiplier: privacy.noise_multiplier,
        clip_norm: privacy.clip_norm,
    };
    let dp_sgd = if boosting {
        if dp_sgd != (DpSgd { sampling_rate: 0.0, noise_multiplier: 0.0, clip_norm: 0.0 })
            || privacy.pooled_noise == 0.0
        {
            return Err(invalid(
                "privacy",
                "DP-SGD settings or no pooled noise with boosted trees",
                "no DP-SGD and pooled_noise > 0 (it covers the histograms)",
            ));
        }
        None
    } else {
        dp_sgd.validate()?;
        Some(dp_sgd)
    };
    if !(privacy.delta > 0.0 && privacy.delta < 1.0) {
        return Err(invalid("privacy delta", privacy.delta, "between 0 and 1 (exclusive)"));
    }
    let pooled = (privacy.pooled_noise != 0.0).then_some(PooledNoise {
        multiplier: privacy.pooled_noise,
        evaluation_multiplier: privacy.evaluation_noise,
        rows_per_patient: privacy.pooled_rows_per_patient,
    });
    if let Some(pooled) = pooled {
        pooled.validate()?;
    }
    Ok(Privacy {
        dp_sgd,
        delta: privacy.delta,
        pooled,
        setup_statistics: layout.setup_statistics(),
        evaluation_statistics: layout.evaluation_statistics(),
    })
}

/// What a hospital makes of the configuration it received, checked field by field.
pub fn settings_from_proto(config: &v1::FederationConfig) -> Result<FederationSettings, ProtocolError> {
    let missing = |field| ProtocolError::Missing { message: "federation configuration", field };
    let model = config.model.as_ref().ok_or_else(|| missing("model"))?;
    let hidden: Vec<usize> = model.hidden.iter().map(|&h| h as usize).collect();
    let spec = ModelSpec::mlp(model.input_width as usize, &hidden)?;
    if u32::from(PARAMS_V2.id) != config.crypto_params_id {
        return Err(invalid(
            "crypto_params_id",
            config.crypto_params_id,
            format!("{} ({})", PARAMS_V2.id, PARAMS_V2.name),
        ));
    }
    let c = config.codec.as_ref().ok_or_else(|| missing("codec"))?;
    let codec = CodecConfig {
        value_bits: c.value_bits,
        frac_bits: c.frac_bits,
        max_parties: c.max_parties,
        plaintext_bits: c.plaintext_bits,
    };
    PARAMS_V2.check_codec(&codec)?;
    let t = config.training.as_ref().ok_or_else(|| missing("training settings"))?;
    let optimizer = match v1::Optimizer::try_from(t.optimizer) {
        Ok(v1::Optimizer::Adam) => OptimizerConfig::adam(t.learning_rate),
        Ok(v1::Optimizer::Sgd) => OptimizerConfig::Sgd { lr: t.learning_rate, momentum: t.momentum },
        Ok(v1::Optimizer::Unspecified) | Err(_) => return Err(invalid("optimizer", t.optimizer, "adam or sgd")),
    };
    optimizer.validate()?;
    if t.epochs == 0 || t.batch_size == 0 {
        return Err(invalid("epochs and batch size", format!("{} and {}", t.epochs, t.batch_size), "at least 1"));
    }
    let train = TrainConfig {
        epochs: t.epochs,
        batch_size: t.batch_size as usize,
        optimizer,
        pos_weight: t.pos_weight,
        l2: t.l2,
        prox_mu: t.prox_mu,
        seed: t.seed,
    };
    if !(2..=4096).contains(&config.eval_bins) {
        return Err(invalid("eval_bins", config.eval_bins, "2 to 4096"));
    }
    if !(config.test_fraction > 0.0 && config.test_fraction < 1.0) {
        return Err(invalid("test_fraction", config.test_fraction, "between 0 and 1 (exclusive)"));
    }
    let top_k: Vec<TopKShape> = config.top_k_columns.iter().map(|c| TopKShape { buckets: c.buckets, k: c.k }).collect();
    for shape in &top_k {
        shape.validate()?;
    }
    let rule = config.server_rule.as_ref().ok_or_else(|| missing("server rule"))?;
    let server = match v1::ServerRuleKind::try_from(rule.kind) {
        Ok(v1::ServerRuleKind::FedAvg) => ServerOptimizerConfig::FedAvg { lr: rule.lr },
        Ok(v1::ServerRuleKind::FedAdam) => {
            ServerOptimizerConfig::FedAdam { lr: rule.lr, beta1: rule.beta1, beta2: rule.beta2, tau: rule.tau }
        }
        Ok(v1::ServerRuleKind::Unspecified) | Err(_) => {
            return Err(invalid("server rule", rule.kind, "fedavg or fedadam"));
        }
    };
    // Validates the hyperparameters.
    ServerOptimizer::new(server, 0)?;
    let (job, explore) = job_from_proto(config)?;
    let (subgroups, subgroup_min_cell) = subgroups_from_proto(config)?;
    let layout = ContributionLayout {
        params: spec.param_count(),
        bins: config.eval_bins as usize,
        numeric: config.numeric_features as usize,
        top_k,
        explore,
        subgroups,
    };
    let privacy =
        config.privacy.as_ref().map(|p| privacy_from_proto(p, &layout, config.boosting.is_some())).transpose()?;
    let boosting = boosting_from_proto(config)?;
    Ok(FederationSettings {
        boosting,
        job,
        privacy,
        server,
        federation_id: config.federation_id.clone(),
        layout,
        spec,
        codec,
        train,
        min_hospitals: config.min_hospitals.max(2) as usize,
        max_upload_bytes: config.max_upload_bytes,
        test_fraction: config.test_fraction,
        schema_id: config.schema_id.clone(),
        rounds: config.rounds,
        patience: (config.patience > 0).then_some(config.patience),
        subgroup_min_cell,
        digest: SettingsDigest(*blake3::hash(&prost::Message::encode_to_vec(config)).as_bytes()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings with every kind of field set: a hidden layer, a numeric feature, a `top_k`
    /// column, patience; the digest that of their wire form.
    fn settings() -> FederationSettings {
        let mut settings = crate::driver::test_settings(3);
        settings.spec = ModelSpec::mlp(5, &[3]).unwrap();
        settings.layout = ContributionLayout {
            params: settings.spec.param_count(),
            bins: 16,
            numeric: 1,
            top_k: vec![TopKShape { buckets: 8, k: 2 }],
            explore: Vec::new(),
            subgroups: vec![ColumnSpec {
                name: "sex".into(),
                kind: ColumnKind::Categorical { categories: 3, labels: vec!["F".into(), "M".into()] },
            }],
        };
        settings.subgroup_min_cell = 20;
        settings.patience = Some(7);
        settings.train.optimizer = OptimizerConfig::Sgd { lr: 0.05, momentum: 0.9 };
        settings.digest = settings_digest(&settings);
        settings
    }

    #[test]
    fn the_joined_configuration_round_trips_and_unknown_values_are_refused() {
        let sent = settings();
        let wire = settings_to_proto(&sent);
        let settings = settings_from_proto(&wire).unwrap();
        assert_eq!(settings, sent, "every setting, the digest of the wire form among them");
        assert_eq!((settings.rounds, settings.patience), (3, Some(7)));
        let mut unknown = wire.clone();
        unknown.training.as_mut().unwrap().optimizer = 7;
        let error = settings_from_proto(&unknown).unwrap_err().to_string();
        assert!(error.contains("optimizer = 7") && error.contains("adam or sgd"), "{error}");
        let mut unspecified = wire.clone();
        unspecified.training.as_mut().unwrap().optimizer = v1::Optimizer::Unspecified as i32;
        assert!(settings_from_proto(&unspecified).is_err(), "no silent default optimizer");
        let mut no_model = wire.clone();
        no_model.model = None;
        assert_eq!(
            settings_from_proto(&no_model).unwrap_err(),
            ProtocolError::Missing { message: "federation configuration", field: "model" }
        );
        let mut buckets = wire.clone();
        buckets.subgroups.as_mut().unwrap().columns[0].categories = 1024;
        let error = settings_from_proto(&buckets).unwrap_err().to_string();
        assert!(error.contains("sex (1024 cells)") && error.contains("at most 64 cells"), "{error}");
        let mut unbanded = wire.clone();
        unbanded.subgroups.as_mut().unwrap().columns[0] =
            v1::ExploreColumn { name: "age".into(), numeric: true, bins: 10, ..Default::default() };
        assert!(settings_from_proto(&unbanded).unwrap_err().to_string().contains("with edges"));
        let mut other_params = wire;
        other_params.crypto_params_id = 9;
        assert!(settings_from_proto(&other_params).is_err());
    }

    #[test]
    fn a_task_round_trips_through_its_header() {
        let task = Task {
            kind: TaskKind::Contribute,
            session: Some(SessionId { round: 2, attempt: 1 }),
            session_kind: Some(SessionKind::Train),
            crs: Some(Crs(0x0123_4567_89ab_cdef_0011_2233_4455_6677)),
            figures: PublicFigures {
                train_rows: 10,
                test_rows: 4,
                feature_stats: vec![fedcare_core::ColumnStats { mean: 1.5, std: 2.0 }],
                top_k: vec![vec![3, 1]],
            },
            sections: vec![bytes::Bytes::from_static(b"key"), bytes::Bytes::from_static(b"model")],
            message: String::new(),
        };
        let header = task_header(&task);
        assert_eq!(header.section_sizes, [3, 5]);
        let back = task_from_proto(&header, task.sections.clone()).unwrap();
        assert_eq!(
            (back.kind, back.session, back.session_kind, back.crs, &back.figures),
            (task.kind, task.session, task.session_kind, task.crs, &task.figures)
        );
        let mut bad = header.clone();
        bad.crs = bytes::Bytes::from_static(b"short");
        assert!(task_from_proto(&bad, Vec::new()).is_err());
        let mut bad = header;
        bad.kind = 99;
        assert!(task_from_proto(&bad, Vec::new()).is_err());
    }
}
