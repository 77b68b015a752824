//! Writes the seed corpora of every fuzz target into `fuzz/corpus/<target>/`, replacing what is
//! there: `cargo run -p fedcare-fuzz --example seeds`.
//!
//! The seeds are real: a federation of three hospitals runs in memory (`fedcare-protocol`'s
//! driver: the real coordinator and participants, real threshold encryption and signatures) and
//! every task it sends, every upload, checkpoint, model file and metrics record is kept in its
//! wire or file form; the configuration seeds are the shipped examples and plans made from them;
//! the CSV seeds are the synthetic Diabetes-130 cohort and a small table of the fuzz schema, read
//! back and explored to make the report seed. Each target also gets an empty input and a
//! truncation of its first seed. Keys, ECDSA nonces and the crypto's noise come from the
//! operating system, so the binary seeds differ from run to run (all equally valid); the text
//! seeds are the same bytes every run.
//!
//! A seed is kept only if it is at most [`MAX_SEED`] bytes, and a target keeps one seed above
//! [`LARGE_SEED`]. The smallest valid public key share and aggregate masks (n = 8192 words) are
//! about 64.1 KiB, and the messages that carry them a little more: the only seeds above 64 KiB.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use fedcare_core::explore::{ExploreReport, LocalFigures, REPORT_FORMAT, figures, resolve_columns};
use fedcare_core::{ColumnStats, ModelFile, ModelSpec, Platt, ServerOptimizerConfig};
use fedcare_crypto::wire::WireMessage;
use fedcare_crypto::{AggregateMasks, DecryptedSum, PARAMS_V2, WireLimits};
use fedcare_data::{BadRows, Schema, read_csv_bytes};
use fedcare_federation::config::{AggregatorConfig, JobKind, schema_shape};
use fedcare_federation::convert;
use fedcare_federation::persistence::metrics_text;
use fedcare_federation::transfer::chunks;
use fedcare_fuzz::{SMALL_SCHEMA, TARGETS};
use fedcare_proto::v1;
use fedcare_protocol::coordinator::Event;
use fedcare_protocol::driver::{Driver, Ending, acknowledge, carry_out, node, test_settings, upload};
use fedcare_protocol::selection::{BestModel, ServerState};
use fedcare_protocol::signing::Signed;
use fedcare_protocol::transcript::{Claim, Statement, decode_bundle, encode_bundle};
use fedcare_protocol::{SessionId, SessionKind, Task, TaskKind, UploadHeader, UploadKind};
use prost::Message;

/// The largest seed kept.
const MAX_SEED: usize = 96 << 10;
/// Seeds above this size: one per target (with its truncation), enough to reach the code behind
/// the words of a large message.
const LARGE_SEED: usize = 16 << 10;

/// The hospitals of the federation run in memory.
const HOSPITALS: [&str; 3] = ["hospital-a", "hospital-b", "hospital-c"];

/// The seeds of every target, by target and file name.
#[derive(Default)]
struct Seeds(BTreeMap<&'static str, BTreeMap<String, Vec<u8>>>);

impl Seeds {
    /// Keeps `bytes` as seed `name` of `target` (unless it is too large, or a seed of that name
    /// is already kept, or it is large and the target has a large seed already).
    fn add(&mut self, target: &'static str, name: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        assert!(TARGETS.iter().any(|t| t.name == target), "no target {target}");
        let bytes = bytes.into();
        let kept = self.0.entry(target).or_default();
        let large = |b: &Vec<u8>| b.len() > LARGE_SEED;
        if bytes.len() <= MAX_SEED && !(large(&bytes) && kept.values().any(large)) {
            kept.entry(name.into()).or_insert(bytes);
        }
    }
}

/// What the federation in memory sent and received.
#[derive(Default)]
struct Recorded {
    tasks: Vec<Task>,
    uploads: Vec<(UploadKind, Option<SessionId>, Vec<u8>)>,
    snapshots: Vec<fedcare_protocol::checkpoint::Snapshot>,
}

/// Runs a federation of [`HOSPITALS`] (one training round) to its end, recording every task and
/// upload, as the driver's own `run` does but with the traffic kept.
fn federation() -> (Recorded, fedcare_protocol::FederationSettings) {
    let now = Instant::now();
    let settings = test_settings(1);
    let mut driver = Driver::new(&HOSPITALS, settings.clone(), None, now);
    let mut recorded = Recorded::default();
    for _ in 0..400 {
        if driver.endings.iter().all(|e| !matches!(e, Ending::Running)) {
            break;
        }
        for index in 0..driver.hospitals.len() {
            if !matches!(driver.endings[index], Ending::Running) {
                continue;
            }
            let name = driver.hospitals[index].name.clone();
            let Ok(task) = driver.coordinator.task_for(&node(&name)) else { continue };
            match task.kind {
                TaskKind::Wait => continue,
                TaskKind::Done => {
                    recorded.tasks.push(task);
                    driver.endings[index] = Ending::Done;
                    let sent = Event::TaskSent { node: node(&name), session: None, bytes: 0, done: true };
                    let _ = driver.coordinator.handle(sent, now);
                    continue;
                }
                TaskKind::Failed => panic!("the federation in memory failed: {}", task.message),
                _ => {}
            }
            let (kind, bytes) = driver.hospitals[index].answer(&settings, &task);
            recorded.uploads.push((kind, task.session, bytes.clone()));
            recorded.tasks.push(task.clone());
            let actions = upload(&mut driver.coordinator, &name, task.session, kind, &bytes, now)
                .unwrap_or_else(|refusal| panic!("{name}'s {kind:?} upload was refused: {refusal}"));
            let snapshots = carry_out(&mut driver.coordinator, actions, now);
            recorded.snapshots.extend(snapshots.iter().cloned());
            let finals: Vec<_> = snapshots.into_iter().filter(|s| s.checkpoint.next.is_none()).collect();
            if !finals.is_empty() && !driver.coordinator.is_persisted() {
                acknowledge(&mut driver.coordinator, finals, now);
            }
        }
    }
    assert!(
        driver.endings.iter().all(|e| matches!(e, Ending::Done)),
        "the federation did not finish: {:?}",
        driver.endings
    );
    (recorded, settings)
}

/// A task as the aggregator streams it: its header, then its data chunks, each length-delimited.
fn task_stream(task: &Task) -> Vec<u8> {
    let mut out = Vec::new();
    let header = v1::TaskChunk { part: Some(v1::task_chunk::Part::Header(convert::task_header(task))) };
    header.encode_length_delimited(&mut out).expect("a Vec grows");
    for chunk in chunks(&task.sections) {
        let data = v1::TaskChunk { part: Some(v1::task_chunk::Part::Data(chunk)) };
        data.encode_length_delimited(&mut out).expect("a Vec grows");
    }
    out
}

/// An upload as a hospital streams it: its header, then (unless `header_only`) its data.
fn upload_stream(header: &UploadHeader, bytes: &[u8], header_only: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let wire = convert::upload_header_to_proto(header, bytes.len() as u64);
    let first = v1::UploadChunk { part: Some(v1::upload_chunk::Part::Header(wire)) };
    first.encode_length_delimited(&mut out).expect("a Vec grows");
    if !header_only {
        for chunk in chunks(&[Bytes::copy_from_slice(bytes)]) {
            let data = v1::UploadChunk { part: Some(v1::upload_chunk::Part::Data(chunk)) };
            data.encode_length_delimited(&mut out).expect("a Vec grows");
        }
    }
    out
}

fn kind_name(kind: TaskKind) -> String {
    format!("{kind:?}").to_lowercase()
}

fn session_name(kind: Option<SessionKind>) -> String {
    kind.map_or_else(|| "none".into(), |k| format!("{k:?}").to_lowercase())
}

/// The seeds the federation in memory gives.
fn federation_seeds(seeds: &mut Seeds) {
    let (recorded, settings) = federation();
    let reply = v1::JoinReply { node_id: HOSPITALS[0].into(), config: Some(convert::settings_to_proto(&settings)) };
    seeds.add("proto_join_reply", "test-settings", reply.encode_to_vec());

    for task in &recorded.tasks {
        let name = format!("{}-{}", kind_name(task.kind), session_name(task.session_kind));
        seeds.add("proto_task_stream", name.clone(), task_stream(task));
        if task.kind == TaskKind::Confirm {
            // Its key shares (3 × 64 KiB) replaced by an empty bundle: the model, the server state
            // and the endorsements as sent.
            let mut small = task.clone();
            small.sections[0] = encode_bundle(core::iter::empty::<&Signed>());
            seeds.add("proto_task_stream", format!("{name}-no-key-shares"), task_stream(&small));
        }
        for (index, section) in task.sections.iter().enumerate() {
            let section_name = format!("{name}-section{index}");
            if let Ok(bundle) = decode_bundle(section)
                && !bundle.is_empty()
            {
                seeds.add("statement_bundle", section_name.clone(), section.to_vec());
            }
            if AggregateMasks::decode(section, &PARAMS_V2, &WireLimits::default()).is_ok() {
                seeds.add("crypto_aggregate_masks", name.clone(), section.to_vec());
                seeds.add("envelope", "aggregate-masks", section.to_vec());
            }
            if DecryptedSum::decode(section, &PARAMS_V2, &WireLimits::default()).is_ok() {
                seeds.add("crypto_decrypted_sum", name.clone(), section.to_vec());
            }
            if let Ok(file) = ModelFile::from_bytes(section) {
                seeds.add("model_file", format!("{name}-final"), section.to_vec());
                seeds.add("statement_bundle", "final-model-endorsements", file.endorsements.clone());
            }
            if task.kind == TaskKind::Confirm && index == 2 && postcard::from_bytes::<ServerState>(section).is_ok() {
                seeds.add("server_state", format!("{name}-relayed"), section.to_vec());
            }
        }
    }
    // A task whose sections disagree with its header's sizes, and a failed federation's task.
    if let Some(task) = recorded.tasks.iter().find(|t| t.sections.len() > 1) {
        let mut stream = task_stream(task);
        stream.truncate(stream.len() - 1);
        seeds.add("proto_task_stream", "short-last-chunk", stream);
    }
    let failed = Task {
        kind: TaskKind::Failed,
        session: Some(SessionId { round: 2, attempt: 1 }),
        session_kind: Some(SessionKind::Train),
        crs: None,
        figures: Default::default(),
        sections: Vec::new(),
        message: "too few hospitals".into(),
    };
    seeds.add("proto_task_stream", "failed", task_stream(&failed));

    for (kind, session, bytes) in &recorded.uploads {
        let header = UploadHeader {
            federation_id: settings.federation_id.clone(),
            session: *session,
            node: HOSPITALS[0].into(),
            kind: Some(*kind),
        };
        let kind_name = format!("{kind:?}").to_lowercase();
        seeds.add("proto_upload_stream", kind_name.clone(), upload_stream(&header, bytes, false));
        seeds.add("proto_upload_stream", format!("{kind_name}-header-only"), upload_stream(&header, bytes, true));
        match kind {
            UploadKind::KeyShare | UploadKind::Statement => {
                let Ok(signed) = postcard::from_bytes::<Signed>(bytes) else { continue };
                let Ok(statement) = Statement::of(&signed) else { continue };
                let step = statement.claim.step().name().replace(' ', "-");
                seeds.add("signed_statement", step, bytes.clone());
                if let Claim::KeyShare(share) = &statement.claim {
                    seeds.add("crypto_public_key_share", "from-key-share-statement", share.clone());
                }
            }
            UploadKind::Contribution => {
                seeds.add("crypto_ciphertext", "contribution", bytes.clone());
                seeds.add("envelope", "ciphertext", bytes.clone());
                seeds.add("crypto_contribution_stream", "whole", [&[0u8][..], bytes].concat());
                seeds.add("crypto_contribution_stream", "pieces-of-679", [&[7u8][..], bytes].concat());
            }
            UploadKind::DecryptionShare => {
                seeds.add("crypto_decryption_share", "share", bytes.clone());
                seeds.add("envelope", "decryption-share", bytes.clone());
            }
            UploadKind::Sum => {
                if !bytes.is_empty() {
                    seeds.add("crypto_decrypted_sum", "recovered", bytes.clone());
                }
            }
        }
    }

    for snapshot in &recorded.snapshots {
        let round = snapshot.checkpoint.records.last().map_or(0, |r| r.round);
        let name = match snapshot.checkpoint.next {
            Some(next) => format!("after-round-{round}-next-{}", format!("{:?}", next.kind).to_lowercase()),
            None => "final".to_owned(),
        };
        let checkpoint = snapshot.checkpoint.to_bytes().expect("a checkpoint encodes");
        seeds.add("checkpoint", name.clone(), checkpoint.clone());
        seeds.add("envelope", format!("checkpoint-{name}"), checkpoint);
        let model = snapshot.model.to_bytes().expect("a model file encodes");
        seeds.add("model_file", format!("snapshot-{name}"), model.clone());
        seeds.add("envelope", format!("model-{name}"), model);
        if !snapshot.checkpoint.records.is_empty() {
            seeds.add("metrics_jsonl", name.clone(), metrics_text(&snapshot.checkpoint.records));
        }
        let state = postcard::to_allocvec(&snapshot.checkpoint.server).expect("a state encodes");
        seeds.add("server_state", format!("checkpoint-{name}"), state);
    }
}

/// Model files and server states not made by the federation: an MLP with everything set.
fn file_seeds(seeds: &mut Seeds) {
    let spec = ModelSpec::mlp(4, &[3]).expect("a valid model");
    let params: Vec<f32> = (0..spec.param_count()).map(|i| i as f32 / 10.0 - 1.0).collect();
    let mut file = ModelFile::new(spec, params.clone(), "wards/v1").expect("a valid model file");
    file.metrics.insert("auroc".into(), 0.75);
    file.metrics.insert("round".into(), 3.0);
    file.feature_scaling = vec![ColumnStats { mean: 40.0, std: 12.5 }, ColumnStats { mean: 3.0, std: 1.5 }];
    file.category_buckets = vec![vec![5]];
    file.calibration = Some(Platt { a: 1.2, b: -0.3 });
    seeds.add("model_file", "mlp-calibrated", file.to_bytes().expect("a model file encodes"));
    let logistic = ModelFile::new(ModelSpec::mlp(2, &[]).expect("a valid model"), vec![0.5, -0.5, 0.1], "s/v1")
        .expect("a valid model file");
    seeds.add("model_file", "logistic", logistic.to_bytes().expect("a model file encodes"));
    // Formats 3 and 4 (still read) cannot be written by this build: the golden files of the older
    // formats, where the core crate has them.
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/golden/formats");
    for old in ["model_v3.bin", "model_v4.bin"] {
        match std::fs::read(golden.join(old)) {
            Ok(bytes) => seeds.add("model_file", old.trim_end_matches(".bin").replace('_', "-"), bytes),
            Err(error) => eprintln!("warning: no {old} seed ({}: {error})", golden.display()),
        }
    }
    let mut state = ServerState::new(ServerOptimizerConfig::FedAdam { lr: 0.1, beta1: 0.9, beta2: 0.99, tau: 0.01 }, 3)
        .expect("a valid server rule");
    state.best = Some(BestModel {
        trained_rounds: 2,
        auroc: 0.7,
        auprc: Some(0.4),
        platt: Some(Platt { a: 1.0, b: 0.0 }),
        params: vec![0.1, 0.2, 0.3],
    });
    state.released_rounds = 2;
    seeds.add("server_state", "fedadam-with-best", postcard::to_allocvec(&state).expect("a state encodes"));
    seeds.add("envelope", "empty-payload", fedcare_core::model_file::FORMAT.seal(&[]).expect("an empty payload"));
}

/// A small table of [`SMALL_SCHEMA`]: every transform, a missing value, an unknown category, a
/// dropped row, a bad row.
const SMALL_CSV: &str = "\
patient,age,stay,band,visit,sex,diagnosis,ward,died
p1,25,3,[20-30),1,F,250.01,icu,yes
p1,26,,[20-30),2,F,401,icu,no
p2,61,10,[60-70),1,M,V57,er,no
p3,?,4,[40-50),1,X,E909,,yes
p4,40,2,[40-50),3,M,996,er,no
p5,33,1,[30-40),1,F,786,morgue,yes
p6,fifty,2,[50-60),1,M,250,er,no
p7,70,8,[70-80),2,F,428,ward-7,no
";

/// The CSV, schema, configuration and report seeds.
fn text_seeds(seeds: &mut Seeds) {
    let cohort = fedcare_data::synth::hospital_csv(0, 3, 6, 7);
    seeds.add("csv_diabetes130", "synthetic-cohort", cohort.clone());
    let crlf = String::from_utf8(cohort.clone()).expect("UTF-8 text").replace('\n', "\r\n");
    seeds.add("csv_diabetes130", "synthetic-cohort-crlf", crlf);
    let text = String::from_utf8(cohort).expect("UTF-8 text");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.truncate(4);
    let mut short = lines.join("\n");
    short.push_str("\n1,2,3\n");
    seeds.add("csv_diabetes130", "short-row", short);

    seeds.add("csv_small_schema", "every-transform", SMALL_CSV);
    seeds.add("csv_small_schema", "quoted-fields", "\"patient\",\"age\",\"stay\",band,visit,sex,diagnosis,ward,died\r\n\"p1\",\"25\",3,\"[20-30)\",1,F,\"250.01\",\"icu, east\",yes\r\np2,61,10,[60-70),1,M,V57,er,no\r\n");

    seeds.add("schema_toml", "small", SMALL_SCHEMA);
    seeds.add(
        "schema_toml",
        "minimal",
        "id = \"m/v1\"\nlabel = { column = \"y\", positive = [\"1\"] }\n[[numeric]]\nname = \"x\"\n",
    );
    seeds.add(
        "schema_toml",
        "exact-header",
        "id = \"e/v1\"\nmissing = [\"NA\"]\nexact_header = [\"id\", \"x\", \"code\", \"y\"]\nlabel = { column = \"y\", positive = [\"yes\", \"true\"] }\n[[numeric]]\nname = \"x\"\nedges = [0.5, 1.5, 2.5]\n[[categorical]]\nname = \"code\"\ntop_k = 3\n",
    );

    let aggregator = include_str!("../../examples/aggregator.toml");
    seeds.add("aggregator_config", "example", aggregator);
    let privacy = aggregator
        .replace("# [privacy]", "[privacy]")
        .replace("# target_epsilon = 8.0     # or noise_multiplier = 1.0", "noise_multiplier = 1.0")
        .replace("\n# sampling_rate = ", "\nsampling_rate = ")
        .replace("\n# clip_norm = ", "\nclip_norm = ")
        .replace("\n# delta = ", "\ndelta = ")
        .replace("\n# pooled_noise = ", "\npooled_noise = ");
    seeds.add("aggregator_config", "privacy", privacy.clone());
    let fedadam = aggregator.replace("rule = \"fedavg\"", "rule = \"fedadam\"\nlr = 0.05\ntau = 0.001");
    seeds.add("aggregator_config", "fedadam", fedadam);
    seeds.add(
        "aggregator_config",
        "explore",
        aggregator
            .replace("# job = \"explore\"", "job = \"explore\"\nschema = \"wards.toml\"")
            .replace("# [explore]\n# min_cell = 10", "[explore]\nmin_cell = 5"),
    );
    let hospital = include_str!("../../examples/hospital.toml");
    seeds.add("hospital_config", "example", hospital);
    seeds.add(
        "hospital_config",
        "schema-and-bounds",
        hospital
            .replace("# schema = \"diabetes130\"", "schema = \"diabetes130\"")
            .replace("# bad_rows_limit = 100", "bad_rows_limit = 0")
            .replace("# max_epsilon = 8.0", "max_epsilon = 8.0")
            .replace("# crypto_threads = 8", "crypto_threads = 2"),
    );

    // The settings a hospital joins, from the example configuration: as it is, with privacy, and
    // an exploration of the small schema.
    let schema = Schema::from_toml(SMALL_SCHEMA).expect("the small schema");
    for (name, text) in [("example", aggregator.to_owned()), ("privacy", privacy)] {
        let config: AggregatorConfig = toml::from_str(&text).expect("an example configuration");
        let plan = config.plan().expect("an example plan");
        let reply =
            v1::JoinReply { node_id: "st-marys".into(), config: Some(convert::settings_to_proto(&plan.settings)) };
        seeds.add("proto_join_reply", name, reply.encode_to_vec());
    }
    let mut explore: AggregatorConfig = toml::from_str(aggregator).expect("the example configuration");
    explore.job = JobKind::Explore;
    explore.model.input_width = schema.width() as u32;
    explore.model.hidden = Vec::new();
    explore.apply_schema(&schema_shape(&schema)).expect("the small schema's shape");
    let plan = explore.plan().expect("an exploration plan");
    let reply = v1::JoinReply { node_id: "general".into(), config: Some(convert::settings_to_proto(&plan.settings)) };
    seeds.add("proto_join_reply", "explore", reply.encode_to_vec());

    // An exploration report of the small table, as a hospital makes its own.
    let (table, _) = read_csv_bytes(SMALL_CSV.as_bytes(), Path::new("small.csv"), &schema, BadRows::Skip { limit: 10 })
        .expect("the small table");
    let stats: Vec<ColumnStats> = table.numeric_moments().iter().map(|m| m.stats()).collect();
    let columns = resolve_columns(&schema.explore_columns(), &stats);
    let counts = table.explore_counts(&schema, &columns).expect("the small table's counts");
    let pooled = figures(&columns, &counts, 2).expect("the figures");
    let report = ExploreReport {
        format: REPORT_FORMAT,
        schema: schema.id.clone(),
        label: schema.label_description(),
        min_cell: 2,
        hospitals: vec!["hospital-a".into()],
        figures: pooled.clone(),
        local: Some(LocalFigures { hospital: "hospital-a".into(), figures: pooled }),
    };
    let mut json = serde_json::to_string_pretty(&report).expect("a report encodes");
    json.push('\n');
    seeds.add("explore_report", "small-table", json);

    // The other messages of the service, each behind its selector byte.
    let messages: [(&str, u8, Vec<u8>); 6] = [
        ("join-request", 0, v1::JoinRequest { federation_id: "fedcare-demo".into() }.encode_to_vec()),
        (
            "task-request",
            1,
            v1::TaskRequest {
                federation_id: "fedcare-demo".into(),
                after: Some(v1::Session { round: 3, attempt: 1 }),
                after_kind: v1::TaskKind::Contribute as i32,
                wait_ms: 500,
            }
            .encode_to_vec(),
        ),
        (
            "leave-request",
            2,
            v1::LeaveRequest { federation_id: "fedcare-demo".into(), reason: "ledger full".into() }.encode_to_vec(),
        ),
        ("status-request", 3, v1::StatusRequest {}.encode_to_vec()),
        (
            "status-reply",
            4,
            v1::StatusReply {
                session: Some(v1::Session { round: 1, attempt: 0 }),
                phase: v1::TaskKind::Decrypt as i32,
                active_hospitals: vec!["general".into(), "st-marys".into()],
                rounds_done: 1,
            }
            .encode_to_vec(),
        ),
        ("session", 5, v1::Session { round: 7, attempt: 2 }.encode_to_vec()),
    ];
    for (name, selector, bytes) in messages {
        seeds.add("proto_messages", name, [&[selector][..], &bytes].concat());
    }
}

fn main() {
    let mut seeds = Seeds::default();
    federation_seeds(&mut seeds);
    file_seeds(&mut seeds);
    text_seeds(&mut seeds);
    // Every target: an empty input and its first seed cut in half.
    for target in TARGETS {
        let kept = seeds.0.entry(target.name).or_default();
        let first =
            kept.iter().next().map(|(name, bytes)| (format!("truncated-{name}"), bytes[..bytes.len() / 2].to_vec()));
        kept.insert("empty".into(), Vec::new());
        if let Some((name, bytes)) = first {
            kept.insert(name, bytes);
        }
    }
    let corpus: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for target in TARGETS {
        let dir = corpus.join(target.name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("the old seeds removed");
        }
        std::fs::create_dir_all(&dir).expect("the corpus folder");
        let kept = &seeds.0[target.name];
        let mut total = 0;
        for (name, bytes) in kept {
            std::fs::write(dir.join(name), bytes).expect("a seed written");
            // Every seed runs through its target here too.
            (target.run)(bytes);
            total += bytes.len();
        }
        println!(
            "{:<28} {:>3} seeds, {:>7} bytes, largest {:>6}",
            target.name,
            kept.len(),
            total,
            kept.values().map(Vec::len).max().unwrap_or(0)
        );
    }
}
