//! A federation tracked in MLflow: [`MlflowRun`] sends its parameters once, every session's
//! metrics (the round as the step) and, at the end, its files as artifacts to an MLflow tracking
//! server through the server's REST API (`/api/2.0/mlflow/…`; artifacts through the server's
//! artifact proxy, `/api/2.0/mlflow-artifacts/…`), from a thread of its own.
//!
//! Guarantees:
//! - The federation never waits for the server: logging puts an entry in a queue and returns.
//!   A server that is down, slow (10 s a request at most) or answers errors is tried again, the
//!   entry kept, with backoff (1 s doubling to 30 s); the first failure of an outage is logged
//!   once, and so is the recovery.
//! - Entries are sent in the order they were logged, each once it was accepted.
//! - [`MlflowRun::finish`] waits for the queue at most the time it is given; whatever is still
//!   unsent then is reported once ([`Delivery::lost`]), never silently dropped.
//! - Only what `metrics.jsonl` holds goes to the server (pooled figures, no subgroup under its
//!   `min_cell`), and the files it is handed.

use core::time::Duration;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use fedcare_protocol::{FederationPlan, RoundRecord};

use crate::config::TrackingSettings;
use crate::persistence::{METRICS_FILE, MODEL_FILE};
use crate::tensorboard::EventWriter;
use serde_json::{Value, json};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// The longest a request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait after a failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between tries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Most metrics in one `log-batch` request (the server's limit is 1,000).
const METRICS_PER_BATCH: usize = 500;
/// Most parameters in one `log-batch` request (the server's limit is 100).
const PARAMS_PER_BATCH: usize = 100;
/// Where Debian, Ubuntu and Alpine keep the system's CA bundle (what an `https` server is
/// checked against unless `[tracking] ca` names another).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What is queued for the server.
#[derive(Debug)]
enum Entry {
    /// Parameters, once.
    Params(Vec<(String, String)>),
    /// One session's metrics at `step`.
    Metrics { step: i64, timestamp: i64, values: Vec<(String, f64)> },
    /// A file, stored as the run's artifact `name`.
    Artifact { name: String, bytes: Vec<u8> },
    /// Finish within `deadline`.
    Finish { deadline: Instant },
}

impl Entry {
    fn describe(&self) -> String {
        match self {
            Self::Params(params) => format!("{} parameters", params.len()),
            Self::Metrics { step, values, .. } => format!("{} metrics of round {step}", values.len()),
            Self::Artifact { name, bytes } => format!("artifact {name} ({} bytes)", bytes.len()),
            Self::Finish { .. } => "the run's end".into(),
        }
    }
}

/// What reached the server.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Delivery {
    /// The run's id, once the server created it.
    pub run_id: Option<String>,
    /// Entries the server accepted.
    pub sent: usize,
    /// What was never sent, described (empty: everything arrived).
    pub lost: Vec<String>,
}

/// A run of an MLflow tracking server that a federation logs to.
#[derive(Debug)]
pub struct MlflowRun {
    queue: mpsc::Sender<Entry>,
    worker: Option<JoinHandle<Delivery>>,
}

impl MlflowRun {
    /// Starts logging to the tracking server at `server` (`http://host:5000`): in experiment
    /// `experiment` (made if missing), a run named `run_name`. An `https` server's certificate is
    /// checked against the CA certificates in the PEM file `ca` (default: the system's bundle,
    /// [`SYSTEM_CA_BUNDLE`]). Refuses an address that is not an `http` or `https` URL, and an
    /// `https` one without readable CA certificates; the server itself is reached later, never
    /// waited for here.
    pub fn start(server: &str, experiment: &str, run_name: &str, ca: Option<&Path>) -> Result<Self, String> {
        let server = server.trim_end_matches('/').to_owned();
        let (rest, https) = match (server.strip_prefix("http://"), server.strip_prefix("https://")) {
            (Some(rest), _) => (Some(rest), false),
            (_, rest) => (rest, true),
        };
        if rest.is_none_or(|host| host.is_empty() || host.contains(char::is_whitespace)) {
            return Err(format!("{server:?} is not an MLflow tracking server's URL (http://host:port or https://…)"));
        }
        let roots = if https { ca_certificates(ca.unwrap_or(Path::new(SYSTEM_CA_BUNDLE)))? } else { Vec::new() };
        fedcare_net::tls::install_crypto_provider();
        let (queue, received) = mpsc::channel();
        let client = Client::new(server, experiment.to_owned(), run_name.to_owned(), roots);
        let worker = std::thread::Builder::new()
            .name("mlflow".into())
            .spawn(move || client.run(&received))
            .map_err(|e| format!("cannot start the MLflow thread: {e}"))?;
        Ok(Self { queue, worker: Some(worker) })
    }

    fn push(&self, entry: Entry) {
        // The worker ends only in `finish`, which consumes `self`: a send cannot fail before.
        let _ = self.queue.send(entry);
    }

    /// Queues the federation's parameters.
    pub fn log_params(&self, params: Vec<(String, String)>) {
        self.push(Entry::Params(params));
    }

    /// Queues a completed session's metrics, its round as the step.
    pub fn log_record(&self, record: &RoundRecord) {
        self.push(Entry::Metrics {
            step: i64::from(record.round),
            timestamp: now_millis(),
            values: record_metrics(record),
        });
    }

    /// Queues a file as the run's artifact `name`.
    pub fn log_artifact(&self, name: &str, bytes: Vec<u8>) {
        self.push(Entry::Artifact { name: name.to_owned(), bytes });
    }

    /// Ends the run: waits at most `wait` for the queue to reach the server, marks the run
    /// finished, and says what it could not send.
    pub fn finish(mut self, wait: Duration) -> Delivery {
        self.push(Entry::Finish { deadline: Instant::now() + wait });
        let delivery = match self.worker.take().map(JoinHandle::join) {
            Some(Ok(delivery)) => delivery,
            _ => Delivery { lost: vec!["everything: the MLflow thread stopped".into()], ..Delivery::default() },
        };
        if !delivery.lost.is_empty() {
            tracing::warn!(lost = ?delivery.lost, "MLflow: {} entries were never sent", delivery.lost.len());
        }
        delivery
    }
}

impl Drop for MlflowRun {
    /// A run dropped unfinished (the federation failed) stops trying at once.
    fn drop(&mut self) {
        if self.worker.is_some() {
            let _ = self.queue.send(Entry::Finish { deadline: Instant::now() });
        }
    }
}

/// How long a finished federation waits for its MLflow run to take what is still queued.
pub const FINISH_WAIT: Duration = Duration::from_secs(30);

/// Where a federation's sessions are recorded besides `metrics.jsonl` (`[tracking]`): its MLflow
/// run and its TensorBoard event file, each optional. What `fedcare serve` and the simulation
/// share.
#[derive(Debug, Default)]
pub struct Trackers {
    mlflow: Option<MlflowRun>,
    board: Option<EventWriter>,
}

impl Trackers {
    /// Starts what `settings` ask for the federation `plan` describes: the MLflow run `run_name`
    /// in `settings.experiment` (default: the federation id), its parameters queued, and the
    /// event file. Refuses a bad URL or CA file, and a folder it cannot write.
    pub fn start(settings: &TrackingSettings, plan: &FederationPlan, run_name: &str) -> Result<Self, String> {
        let mlflow = match &settings.mlflow {
            Some(server) => {
                let experiment = settings.experiment.as_deref().unwrap_or(&plan.settings.federation_id);
                let run = MlflowRun::start(server, experiment, run_name, settings.ca.as_deref())
                    .map_err(|why| format!("[tracking] mlflow: {why}"))?;
                run.log_params(params(plan));
                Some(run)
            }
            None => None,
        };
        let board = match &settings.tensorboard {
            Some(dir) => {
                Some(EventWriter::create(dir).map_err(|e| format!("[tracking] tensorboard: {}: {e}", dir.display()))?)
            }
            None => None,
        };
        Ok(Self { mlflow, board })
    }

    /// Records a completed session; a TensorBoard file that cannot be written is said once and
    /// given up.
    pub fn record(&mut self, record: &RoundRecord) {
        if let Some(run) = &self.mlflow {
            run.log_record(record);
        }
        if let Some(writer) = &mut self.board
            && let Err(error) = writer.write_record(record)
        {
            tracing::warn!("TensorBoard: {}: {error}; no more events are written", writer.path().display());
            self.board = None;
        }
    }

    /// After the federation: sends the model file and `metrics.jsonl` from `out`, then `pages`
    /// (name, bytes), as the MLflow run's artifacts, and ends the run ([`MlflowRun::finish`],
    /// waiting at most [`FINISH_WAIT`]); `None` without a run. `pages` is made only then.
    pub fn finish(self, out: &Path, pages: impl FnOnce() -> Vec<(String, Vec<u8>)>) -> Option<Delivery> {
        let run = self.mlflow?;
        for name in [METRICS_FILE, MODEL_FILE] {
            match std::fs::read(out.join(name)) {
                Ok(bytes) => run.log_artifact(name, bytes),
                Err(error) => tracing::warn!("MLflow: {name} not sent: {error}"),
            }
        }
        for (name, bytes) in pages() {
            run.log_artifact(&name, bytes);
        }
        Some(run.finish(FINISH_WAIT))
    }
}

/// The parameters of a federation's run: its settings as the model file has them
/// ([`fedcare_protocol::output::settings_text`]), the hospitals, the federation id and, under
/// DP, ε after every round.
pub fn params(plan: &FederationPlan) -> Vec<(String, String)> {
    let settings = &plan.settings;
    let mut params: Vec<(String, String)> = fedcare_protocol::output::settings_text(settings).into_iter().collect();
    params.push(("hospitals".into(), plan.hospitals.len().to_string()));
    params.push(("federation_id".into(), settings.federation_id.clone()));
    if let Some(privacy) = &settings.privacy {
        let epsilon = privacy.epsilon_after(settings.rounds, settings.train.epochs);
        params.push(("epsilon_after_all_rounds".into(), format!("{epsilon:.4}")));
    }
    params
}

/// The certificates of the PEM file at `path`; refuses a file without any.
fn ca_certificates(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("the CA certificates in {}: {e}", path.display()))?;
    let certificates: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(certificate)) => Some(certificate),
            _ => None,
        })
        .collect();
    if certificates.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certificates)
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An MLflow metric key: letters, digits and `_-. /` kept, anything else `_`.
fn metric_key(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || "_-. /".contains(c) { c } else { '_' }).collect()
}

/// The metrics of a session's record: its losses, AUROC, AUPRC, ε, bytes and seconds, and for
/// the final evaluation each shown subgroup's AUROC, ECE and gaps (`subgroup/COLUMN/LABEL/…`).
pub fn record_metrics(record: &RoundRecord) -> Vec<(String, f64)> {
    let mut values = Vec::new();
    let mut put = |key: &str, value: Option<f64>| {
        if let Some(value) = value.filter(|v| v.is_finite()) {
            values.push((metric_key(key), value));
        }
    };
    put("train_loss", record.train_loss);
    put("test_loss", record.test_loss);
    put("auroc", record.auroc);
    put("auprc", record.auprc);
    put("epsilon", record.epsilon);
    put("hospitals", Some(record.hospitals as f64));
    put("seconds", Some(record.seconds));
    put("bytes_up", Some(record.bytes_up as f64));
    put("bytes_down", Some(record.bytes_down as f64));
    if let Some(report) = &record.subgroups {
        for column in &report.columns {
            for subgroup in &column.subgroups {
                let Some(figures) = subgroup.figures.shown() else { continue };
                let key = |name: &str| format!("subgroup/{}/{}/{name}", column.name, subgroup.label);
                put(&key("rows"), Some(figures.rows as f64));
                put(&key("auroc"), figures.auroc);
                put(&key("ece"), Some(figures.ece));
                put(&key("auroc_gap"), figures.auroc_gap);
                put(&key("tpr_gap"), figures.tpr_gap);
            }
        }
    }
    values
}

/// The server's side of a run: its address, and the run once created.
struct Client {
    agent: ureq::Agent,
    server: String,
    experiment: String,
    run_name: String,
    /// The run's id and artifact location, once created.
    run: Option<(String, String)>,
}

impl Client {
    fn new(server: String, experiment: String, run_name: String, roots: Vec<Certificate<'static>>) -> Self {
        let tls = TlsConfig::builder().root_certs(RootCerts::from(roots)).build();
        let agent = ureq::Agent::config_builder().timeout_global(Some(REQUEST_TIMEOUT)).tls_config(tls).build().into();
        Self { agent, server, experiment, run_name, run: None }
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.server);
        let mut response = self.agent.post(&url).send_json(body).map_err(|e| format!("POST {url}: {e}"))?;
        response.body_mut().read_json::<Value>().map_err(|e| format!("POST {url}: {e}"))
    }

    /// The experiment's id, made if missing.
    fn experiment_id(&self) -> Result<String, String> {
        let url = format!("{}/api/2.0/mlflow/experiments/get-by-name", self.server);
        let found = self.agent.get(&url).query("experiment_name", &self.experiment).call();
        let id = match found {
            Ok(mut response) => {
                let body: Value = response.body_mut().read_json().map_err(|e| format!("GET {url}: {e}"))?;
                body["experiment"]["experiment_id"].as_str().map(str::to_owned)
            }
            Err(ureq::Error::StatusCode(404)) => None,
            Err(e) => return Err(format!("GET {url}: {e}")),
        };
        match id {
            Some(id) => Ok(id),
            None => {
                let made = self.post("experiments/create", &json!({ "name": self.experiment }))?;
                made["experiment_id"].as_str().map(str::to_owned).ok_or_else(|| format!("no experiment id in {made}"))
            }
        }
    }

    /// The run, created on first use.
    fn run_id(&mut self) -> Result<(String, String), String> {
        if let Some(run) = &self.run {
            return Ok(run.clone());
        }
        let experiment = self.experiment_id()?;
        let made = self.post(
            "runs/create",
            &json!({
                "experiment_id": experiment,
                "run_name": self.run_name,
                "start_time": now_millis(),
                "tags": [{ "key": "mlflow.source.name", "value": "fedcare" }],
            }),
        )?;
        let info = &made["run"]["info"];
        let (Some(id), Some(artifacts)) = (info["run_id"].as_str(), info["artifact_uri"].as_str()) else {
            return Err(format!("no run id in {made}"));
        };
        self.run = Some((id.to_owned(), artifacts.to_owned()));
        tracing::info!(run = id, "MLflow: logging to run {id} at {}", self.server);
        Ok((id.to_owned(), artifacts.to_owned()))
    }

    /// Sends one entry.
    fn send(&mut self, entry: &Entry) -> Result<(), String> {
        let (run, artifacts) = self.run_id()?;
        match entry {
            Entry::Params(params) => {
                for chunk in params.chunks(PARAMS_PER_BATCH) {
                    let params: Vec<Value> = chunk.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect();
                    self.post("runs/log-batch", &json!({ "run_id": run, "params": params }))?;
                }
                Ok(())
            }
            Entry::Metrics { step, timestamp, values } => {
                for chunk in values.chunks(METRICS_PER_BATCH) {
                    let metrics: Vec<Value> = chunk
                        .iter()
                        .map(|(k, v)| json!({ "key": k, "value": v, "timestamp": timestamp, "step": step }))
                        .collect();
                    self.post("runs/log-batch", &json!({ "run_id": run, "metrics": metrics }))?;
                }
                Ok(())
            }
            Entry::Artifact { name, bytes } => {
                // Only a server that proxies artifacts (`mlflow server`'s default) takes uploads.
                let Some(location) = artifacts.strip_prefix("mlflow-artifacts:/") else {
                    return Err(format!(
                        "the server keeps artifacts at {artifacts}, which only it can write (start it with \
                         --serve-artifacts)"
                    ));
                };
                let url = format!(
                    "{}/api/2.0/mlflow-artifacts/artifacts/{}/{name}",
                    self.server,
                    location.trim_start_matches('/')
                );
                self.agent.put(&url).send(&bytes[..]).map_err(|e| format!("PUT {url}: {e}"))?;
                Ok(())
            }
            Entry::Finish { .. } => {
                let ended = json!({ "run_id": run, "status": "FINISHED", "end_time": now_millis() });
                self.post("runs/update", &ended).map(|_| ())
            }
        }
    }

    /// The worker: sends what is queued in order, retrying with backoff, until `Finish` and an
    /// empty queue, or `Finish`'s deadline.
    fn run(mut self, received: &mpsc::Receiver<Entry>) -> Delivery {
        let mut pending: VecDeque<Entry> = VecDeque::new();
        let mut delivery = Delivery::default();
        let mut deadline: Option<Instant> = None;
        let mut backoff = FIRST_BACKOFF;
        let mut failing = false;
        loop {
            // Take what is queued (blocking only when there is nothing to send).
            let next =
                if pending.is_empty() && deadline.is_none() { received.recv().ok() } else { received.try_recv().ok() };
            match next {
                Some(Entry::Finish { deadline: at }) => {
                    deadline = Some(at);
                    pending.push_back(Entry::Finish { deadline: at });
                    continue;
                }
                Some(entry) => {
                    pending.push_back(entry);
                    continue;
                }
                None if pending.is_empty() => break,
                None => {}
            }
            if deadline.is_some_and(|at| Instant::now() >= at) {
                break;
            }
            let Some(entry) = pending.front() else { break };
            match self.send(entry) {
                Ok(()) => {
                    if failing {
                        tracing::info!("MLflow: {} answers again", self.server);
                        failing = false;
                    }
                    let done = matches!(entry, Entry::Finish { .. });
                    pending.pop_front();
                    delivery.sent += 1;
                    backoff = FIRST_BACKOFF;
                    if done {
                        break;
                    }
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(
                            "MLflow: {error}; the federation goes on, and what it logs is kept and sent again \
                             (backoff up to {} s)",
                            MAX_BACKOFF.as_secs()
                        );
                        failing = true;
                    }
                    let wait = match deadline {
                        Some(at) => backoff.min(at.saturating_duration_since(Instant::now())),
                        None => backoff,
                    };
                    // Wait, but take new entries meanwhile.
                    match received.recv_timeout(wait) {
                        Ok(entry) => {
                            if let Entry::Finish { deadline: at } = entry {
                                deadline = Some(at);
                            }
                            pending.push_back(entry);
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        delivery.run_id = self.run.as_ref().map(|(id, _)| id.clone());
        delivery.lost = pending.iter().filter(|e| !matches!(e, Entry::Finish { .. })).map(Entry::describe).collect();
        delivery
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcare_protocol::{SessionId, SessionKind};

    #[test]
    fn a_record_gives_its_metrics_and_keys_are_what_mlflow_takes() {
        let mut record = RoundRecord::new(SessionId { round: 3, attempt: 0 }, SessionKind::Train, 4);
        record.auroc = Some(0.7);
        record.train_loss = Some(f64::NAN);
        let metrics = record_metrics(&record);
        assert!(metrics.contains(&("auroc".into(), 0.7)) && metrics.contains(&("hospitals".into(), 4.0)));
        assert!(!metrics.iter().any(|(key, _)| key == "train_loss"), "a non-finite value is not sent");
        assert_eq!(metric_key("subgroup/age/[70, 80)/auroc"), "subgroup/age/_70_ 80_/auroc");
    }

    #[test]
    fn a_small_subgroup_sends_no_metric() {
        use fedcare_core::ScoreHistogram;
        use fedcare_core::explore::{ColumnKind, ColumnSpec};
        use fedcare_core::subgroup::{SubgroupHistograms, subgroup_report};
        let sex = ColumnSpec {
            name: "gender".into(),
            kind: ColumnKind::Categorical { categories: 2, labels: vec!["Female".into(), "Male".into()] },
        };
        let histogram = |p: [u64; 2], n: [u64; 2]| ScoreHistogram { positives: p.to_vec(), negatives: n.to_vec() };
        // Female large, Male with 4 positives (small), nothing missing.
        let histograms = SubgroupHistograms {
            columns: vec![vec![histogram([30, 60], [200, 90]), histogram([1, 3], [50, 40]), histogram([0, 0], [0, 0])]],
        };
        let mut record = RoundRecord::new(SessionId { round: 5, attempt: 0 }, SessionKind::Evaluate, 3);
        record.subgroups = Some(subgroup_report(&[sex], &histograms, None, 10));
        let keys: Vec<String> = record_metrics(&record).into_iter().map(|(key, _)| key).collect();
        assert!(keys.iter().all(|key| !key.contains("/Male/")), "{keys:?}");
        // The lone small subgroup hides the other one too: no subgroup metric at all.
        assert!(keys.iter().all(|key| !key.starts_with("subgroup/")), "{keys:?}");
    }

    #[test]
    fn a_server_that_is_not_there_loses_what_was_logged_and_says_so_without_blocking() {
        assert!(MlflowRun::start("localhost:5000", "e", "r", None).is_err(), "not a URL");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty.pem"), "no certificate here").unwrap();
        let error = MlflowRun::start("https://mlflow:5000", "e", "r", Some(&dir.path().join("empty.pem"))).unwrap_err();
        assert!(error.contains("no PEM certificate"), "{error}");
        // A port nobody listens on: every request fails at once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let run = MlflowRun::start(&format!("http://127.0.0.1:{port}"), "e", "r", None).unwrap();
        let started = Instant::now();
        run.log_params(vec![("rounds".into(), "3".into())]);
        run.log_record(&RoundRecord::new(SessionId { round: 1, attempt: 0 }, SessionKind::Train, 2));
        assert!(started.elapsed() < Duration::from_millis(100), "logging never waits for the server");
        let delivery = run.finish(Duration::from_millis(300));
        assert_eq!(delivery.sent, 0);
        assert_eq!(delivery.lost, ["1 parameters", "4 metrics of round 1"]);
        assert!(delivery.run_id.is_none());
    }
}
