//! The aggregator's operational metrics in the Prometheus (OpenMetrics) text format, and the
//! plain HTTP endpoint that serves them (`GET /metrics`).
//!
//! What is counted: sessions completed by kind and training rounds done, the time spent in each
//! phase of a session, hospitals joined and taking part, hospitals dropped from a federation,
//! payload bytes received and sent, and requests refused, by the refusal's stable kind (the
//! `fedcare-refusal` metadata every refusal carries). Only figures about the protocol: no
//! patient data, no model, no key. The endpoint is off unless `metrics_listen` is set.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use tonic::codegen::http;

pub use crate::coordinator::Census;
use crate::error::REFUSAL_METADATA;
use crate::protocol::{RoundRecord, SessionId, SessionKind, TaskKind};

type Labels = [(&'static str, String); 1];

fn label(name: &'static str, value: impl Into<String>) -> Labels {
    [(name, value.into())]
}

fn phase_histogram() -> Histogram {
    // 10 ms to about 20 min: a phase waits on the slowest hospital's training or network.
    Histogram::new(exponential_buckets(0.01, 2.0, 18))
}

/// The aggregator's metrics: cheap to update from any thread, encoded on demand.
pub struct Metrics {
    registry: Registry,
    sessions: Family<Labels, Counter>,
    rounds_done: Gauge,
    phase_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    joined: Gauge,
    active: Gauge,
    dropped: Counter,
    bytes_received: Counter,
    bytes_sent: Counter,
    refusals: Family<Labels, Counter>,
    /// The phase running now and since when.
    phase_since: Mutex<Option<((SessionId, TaskKind), Instant)>>,
}

impl core::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under the `fedcare_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fedcare");
        let sessions = Family::<Labels, Counter>::default();
        registry.register("sessions_completed", "Sessions completed, by kind (setup, train, final)", sessions.clone());
        let rounds_done = Gauge::default();
        registry.register(
            "rounds_done",
            "Training rounds completed (a resumed checkpoint's included)",
            rounds_done.clone(),
        );
        let phase_seconds = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(phase_histogram);
        registry.register(
            "phase_seconds",
            "Time a session spent in each phase (keygen, confirm, contribute, ...)",
            phase_seconds.clone(),
        );
        let joined = Gauge::default();
        registry.register("hospitals_joined", "Hospitals that joined the federation", joined.clone());
        let active = Gauge::default();
        registry.register("hospitals_active", "Hospitals taking part in the federation now", active.clone());
        let dropped = Counter::default();
        registry.register(
            "hospitals_dropped",
            "Hospitals dropped from the federation (a missed deadline, a lost connection, a refusal to take part)",
            dropped.clone(),
        );
        let bytes_received = Counter::default();
        registry.register("received_bytes", "Upload payload bytes received from hospitals", bytes_received.clone());
        let bytes_sent = Counter::default();
        registry.register("sent_bytes", "Task payload bytes sent to hospitals", bytes_sent.clone());
        let refusals = Family::<Labels, Counter>::default();
        registry.register("refusals", "Requests refused, by the refusal's kind", refusals.clone());
        Self {
            registry,
            sessions,
            rounds_done,
            phase_seconds,
            joined,
            active,
            dropped,
            bytes_received,
            bytes_sent,
            refusals,
            phase_since: Mutex::new(None),
        }
    }

    /// Records what changed between two censuses of the coordinator (before and after one
    /// event), with the records it holds after. From `Census::default()` it counts everything
    /// the coordinator holds (the sessions of a checkpoint it resumed).
    pub fn update(&self, before: &Census, after: &Census, records: &[RoundRecord], now: Instant) {
        for record in records.iter().take(after.sessions).skip(before.sessions) {
            self.sessions.get_or_create(&label("kind", record.kind.to_string())).inc();
            if record.kind == SessionKind::Train {
                self.rounds_done.inc();
            }
        }
        self.joined.set(after.joined as i64);
        self.active.set(after.active as i64);
        self.dropped.inc_by(after.dropped.saturating_sub(before.dropped));
        if before.phase != after.phase {
            let mut since = self.phase_since.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(((_, kind), started)) = since.take() {
                let seconds = now.saturating_duration_since(started).as_secs_f64();
                self.phase_seconds.get_or_create(&label("phase", phase_name(kind))).observe(seconds);
            }
            *since = after.phase.map(|phase| (phase, now));
        }
    }

    /// Counts payload bytes received in an upload.
    pub fn received(&self, bytes: u64) {
        self.bytes_received.inc_by(bytes);
    }

    /// Counts payload bytes sent in a task.
    pub fn sent(&self, bytes: u64) {
        self.bytes_sent.inc_by(bytes);
    }

    /// Counts a refusal of `kind` (a [`crate::error::Refusal::kind`]).
    pub fn refused(&self, kind: &str) {
        self.refusals.get_or_create(&label("reason", kind)).inc();
    }

    /// Counts the refusal a gRPC response carries, if any (the `fedcare-refusal` header).
    pub fn observe_response<B>(&self, response: &http::Response<B>) {
        if let Some(kind) = response.headers().get(REFUSAL_METADATA).and_then(|v| v.to_str().ok()) {
            self.refused(kind);
        }
    }

    /// Every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// The phase's name as a label value.
fn phase_name(kind: TaskKind) -> String {
    format!("{kind:?}").to_lowercase()
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `listener` (plain HTTP/1) until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move { ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], metrics.encode()) }
        }),
    );
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use core::time::Duration;

    use super::*;

    #[test]
    fn phases_sessions_drops_and_refusals_are_counted() {
        let metrics = Metrics::new();
        let start = Instant::now();
        let session = SessionId { round: 1, attempt: 0 };
        let idle = Census::default();
        let keygen = Census { phase: Some((session, TaskKind::KeyGen)), joined: 2, active: 2, ..Census::default() };
        metrics.update(&idle, &keygen, &[], start);
        let confirm = Census { phase: Some((session, TaskKind::Confirm)), active: 1, dropped: 1, ..keygen };
        metrics.update(&keygen, &confirm, &[], start + Duration::from_millis(300));
        metrics.received(1000);
        metrics.sent(24);
        metrics.refused("wrong-phase");
        metrics.refused("wrong-phase");
        let text = metrics.encode();
        for line in [
            "fedcare_hospitals_joined 2",
            "fedcare_hospitals_active 1",
            "fedcare_hospitals_dropped_total 1",
            "fedcare_received_bytes_total 1000",
            "fedcare_sent_bytes_total 24",
            "fedcare_refusals_total{reason=\"wrong-phase\"} 2",
            "fedcare_phase_seconds_count{phase=\"keygen\"} 1",
            "fedcare_phase_seconds_sum{phase=\"keygen\"} 0.3",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
    }
}
