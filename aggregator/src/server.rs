//! The aggregator's gRPC service: a thin shell around the [`Coordinator`]. It holds no secret
//! key and never reads patient data.
//!
//! Each request becomes an [`Event`]; the coordinator's lock is held only while it handles one
//! (cheap bookkeeping), never across an await. The work its [`Action`]s ask for runs outside that
//! lock: a contribution is decoded and added into the session's own sum chunk by chunk as it
//! arrives (a fraction of a millisecond a chunk, locked only by the adds), so the aggregator
//! never holds a whole ciphertext; decoding the other uploads and subtracting each decryption
//! share (at most [`BUFFERED_UPLOADS`] of them held at once), finishing the aggregate and the
//! decryption run off the async executor (`spawn_blocking`), and snapshots are written by one
//! writer, in order, so the files on disk always move forward. Task payloads are shared [`Bytes`]: every hospital's stream is slices of one
//! buffer. Node identity comes from [`crate::identity::authenticate`], one interceptor.

use core::pin::Pin;
use core::time::Duration;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use fedcare_crypto::{ContributionHash, Crs, CryptoError, PartyId, WireLimits};
use fedcare_proto::CHUNK_BYTES;
use fedcare_proto::v1::{self, federation_server::Federation};
use tokio::sync::{mpsc, watch};
use tokio_stream::{Stream, StreamExt};
use tonic::codegen::http;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status, Streaming};

use crate::config::FederationPlan;
use crate::convert;
use crate::coordinator::{Action, Coordinator, Event, Outcome, SharedBuilder, Verified, decrypt_sum};
use crate::error::{FederationError, IntoStatus as _, Refusal, Result, TransferError, refusal_status};
use crate::identity::{InProcessListener, authenticate, peer};
use crate::listener::ConnectionLimits;
use crate::metrics::Metrics;
use crate::persistence::{CHECKPOINT_FILE, Snapshot, load_checkpoint, persist};
use crate::protocol::{NodeId, RoundRecord, SessionId, TaskKind};
use crate::tls::ServerTls;
use crate::transfer::{Assembler, chunks};

/// How long the aggregator waits at most, after the end, for every hospital to fetch its final
/// task (it leaves as soon as all have; 5 s was too short for 32 hospitals sharing 2 cores).
const FINAL_DELIVERY: Duration = Duration::from_secs(30);

/// Uploads larger than one chunk (decryption shares, recovered sums) held whole at once while
/// they are verified; the others wait, unread (HTTP/2 holds their senders back), so the
/// aggregator's memory does not grow with the number of hospitals. Contributions are not held:
/// they go into the sum as they arrive ([`stream_contribution`]).
const BUFFERED_UPLOADS: usize = 2;

struct Shared {
    plan: Arc<FederationPlan>,
    /// Where the checkpoint, metrics and model file are written.
    out_dir: PathBuf,
    federation: v1::FederationConfig,
    limits: WireLimits,
    coordinator: Mutex<Coordinator>,
    changed: watch::Sender<u64>,
    uploading: Mutex<BTreeSet<NodeId>>,
    /// Permits to hold a large upload whole while it is verified ([`BUFFERED_UPLOADS`]).
    buffers: tokio::sync::Semaphore,
    snapshots: mpsc::UnboundedSender<Box<Snapshot>>,
    writer: Mutex<Option<mpsc::UnboundedReceiver<Box<Snapshot>>>>,
    metrics: Arc<Metrics>,
}

/// The aggregator role.
#[derive(Clone)]
pub struct AggregatorServer {
    shared: Arc<Shared>,
}

impl Shared {
    fn coordinator(&self) -> MutexGuard<'_, Coordinator> {
        // A poisoned lock means a handler panicked mid-update: the state may be inconsistent,
        // and going on could decrypt something it should not. Stop loudly.
        self.coordinator.lock().expect("aggregator state lock poisoned")
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Hands `event` to the coordinator and carries out the actions it asks for. Watchers (task
    /// long-polls, the drive loop, progress displays) are woken when the federation may have moved:
    /// after any peer or worker event, and after a tick or a sent task only when the running session
    /// or the ending changed — else the drive loop's own ticks would wake it at once, forever.
    fn event(self: &Arc<Self>, event: Event) -> core::result::Result<(), Refusal> {
        let quiet = matches!(event, Event::Tick | Event::TaskSent { .. } | Event::Asked { .. });
        match &event {
            Event::UploadVerified { bytes, .. } => self.metrics.received(*bytes),
            Event::TaskSent { bytes, .. } => self.metrics.sent(*bytes),
            _ => {}
        }
        let (actions, moved) = {
            let mut coordinator = self.coordinator();
            let before = coordinator.position();
            let census = coordinator.census();
            let now = Instant::now();
            let actions = coordinator.handle(event, now);
            self.metrics.update(&census, &coordinator.census(), coordinator.records(), now);
            (actions, !quiet || coordinator.position() != before)
        };
        let result = actions.map(|actions| self.dispatch(actions));
        if moved {
            self.notify();
        }
        result
    }

    fn dispatch(self: &Arc<Self>, actions: Vec<Action>) {
        for action in actions {
            match action {
                // Uploads are verified by their own handler, which answers the peer.
                Action::Verify(_) | Action::Finished => {}
                Action::FinishAggregate { session, builder } => {
                    let shared = self.clone();
                    tokio::spawn(async move {
                        let result = blocking(move || builder.finish()).await;
                        let _ = shared.event(Event::AggregateReady { session, result });
                    });
                }
                Action::DecryptSum { session, aggregate, decryption } => {
                    let shared = self.clone();
                    tokio::spawn(async move {
                        let result = blocking(move || decrypt_sum(&aggregate, &decryption)).await;
                        let _ = shared.event(Event::SumDecrypted { session, result });
                    });
                }
                Action::Persist(snapshot) => {
                    // The writer lives as long as the shared state; a send can fail only at exit.
                    let _ = self.snapshots.send(snapshot);
                }
            }
        }
    }
}

/// Runs CPU-heavy crypto work on the blocking pool; a panic there is an error, not a crash.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> core::result::Result<T, CryptoError> + Send + 'static,
) -> core::result::Result<T, CryptoError> {
    tokio::task::spawn_blocking(work).await.unwrap_or(Err(CryptoError::Malformed("the worker failed")))
}

/// A node's one upload in flight; released when dropped.
struct UploadSlot {
    shared: Arc<Shared>,
    node: NodeId,
}

impl UploadSlot {
    fn take(shared: &Arc<Shared>, node: &NodeId) -> core::result::Result<Self, Refusal> {
        let mut uploading = shared.uploading.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !uploading.insert(node.clone()) {
            return Err(Refusal::UploadInFlight(node.clone()));
        }
        Ok(Self { shared: shared.clone(), node: node.clone() })
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        self.shared.uploading.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.node);
    }
}

impl AggregatorServer {
    /// An aggregator for `plan` writing into `out_dir`: creates the directory and resumes from
    /// the checkpoint there, if any (refusing one of another federation or model).
    pub fn new(plan: FederationPlan, out_dir: &Path) -> Result<Self> {
        Self::with_crs(plan, out_dir, Box::new(Crs::random))
    }

    /// [`Self::new`] with the sessions' CRS drawn from `crs` (tests).
    pub fn with_crs(plan: FederationPlan, out_dir: &Path, crs: crate::coordinator::CrsSource) -> Result<Self> {
        std::fs::create_dir_all(out_dir)
            .map_err(|source| FederationError::Write { path: out_dir.to_path_buf(), source })?;
        let resume = load_checkpoint(out_dir)?;
        let plan = Arc::new(plan);
        let mut coordinator =
            Coordinator::new(plan.clone(), resume, Instant::now(), crs).map_err(|error| match error {
                fedcare_protocol::Error::ForeignCheckpoint { expected, found } => {
                    FederationError::ForeignCheckpoint { path: out_dir.join(CHECKPOINT_FILE), expected, found }
                }
                other => other.into(),
            })?;
        let initial = coordinator.start();
        // The metrics start from what the coordinator holds (a resumed checkpoint's sessions).
        let metrics = Arc::new(Metrics::new());
        metrics.update(&Default::default(), &coordinator.census(), coordinator.records(), Instant::now());
        let (snapshots, writer) = mpsc::unbounded_channel();
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            federation: convert::settings_to_proto(&plan.settings),
            limits: plan.settings.wire_limits(),
            plan,
            out_dir: out_dir.to_path_buf(),
            coordinator: Mutex::new(coordinator),
            changed,
            uploading: Mutex::default(),
            buffers: tokio::sync::Semaphore::new(BUFFERED_UPLOADS),
            snapshots,
            writer: Mutex::new(Some(writer)),
            metrics,
        });
        shared.dispatch(initial);
        Ok(Self { shared })
    }

    /// A receiver that changes whenever the federation moves on (for progress displays).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changed.subscribe()
    }

    /// The running session and its phase, and whether the federation has ended.
    pub fn position(&self) -> (Option<(SessionId, TaskKind)>, bool) {
        self.shared.coordinator().position()
    }

    /// The aggregator's metrics (served by [`crate::metrics::serve`] where configured).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// The sessions completed so far.
    pub fn records(&self) -> Vec<RoundRecord> {
        self.records_since(0)
    }

    /// The sessions completed after the first `count` (what a progress display has not shown).
    pub fn records_since(&self, count: usize) -> Vec<RoundRecord> {
        self.shared.coordinator().records().iter().skip(count).cloned().collect()
    }

    /// The gRPC service, with explicit message-size limits and the identity interceptor.
    pub fn service(&self) -> AuthenticatedService {
        let server = v1::federation_server::FederationServer::new(self.clone())
            .max_decoding_message_size(fedcare_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(fedcare_proto::MAX_MESSAGE_BYTES);
        InterceptedService::new(server, authenticate as fn(_) -> _)
    }

    fn builder() -> tonic::transport::Server {
        // Limits so that one slow or malicious client cannot stall or exhaust the aggregator:
        // every request ends within 60 s, few streams per connection, dead peers are noticed.
        tonic::transport::Server::builder()
            .timeout(Duration::from_secs(60))
            .concurrency_limit_per_connection(8)
            .max_concurrent_streams(16)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .tcp_keepalive(Some(Duration::from_secs(60)))
    }

    /// Serves on `listener` with mTLS until the federation ends; returns the outcome.
    pub async fn serve(&self, listener: tokio::net::TcpListener, tls: ServerTls) -> Result<Outcome> {
        self.serve_until(listener, tls, core::future::pending()).await
    }

    /// Serves until the federation ends or `shutdown` completes (then the running session is
    /// abandoned: the checkpoint of the last completed one stays, and a restart reruns the round
    /// with fresh keys), with the default [`ConnectionLimits`].
    pub async fn serve_until(
        &self,
        listener: tokio::net::TcpListener,
        tls: ServerTls,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Outcome> {
        self.serve_with_limits(listener, tls, ConnectionLimits::default(), shutdown).await
    }

    /// [`Self::serve_until`] with `limits` on connections: only connections that completed the
    /// TLS handshake with a client certificate of the CA reach the service, within their caps
    /// and while not idle ([`crate::listener`]).
    pub async fn serve_with_limits(
        &self,
        listener: tokio::net::TcpListener,
        tls: ServerTls,
        limits: ConnectionLimits,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Outcome> {
        let incoming = crate::listener::incoming(listener, &tls, limits, self.shared.metrics.clone());
        self.serve_incoming(Self::builder(), incoming, shutdown).await
    }

    /// Serves hospitals of this process (see [`crate::identity::in_process`]) until the
    /// federation ends or `shutdown` completes.
    pub async fn serve_in_process(
        &self,
        listener: InProcessListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Outcome> {
        self.serve_incoming(Self::builder(), listener.into_incoming(), shutdown).await
    }

    /// Serves the connections of `incoming` with `builder`'s settings while the federation is
    /// driven; stops the server once it has ended.
    async fn serve_incoming<IO, IE>(
        &self,
        builder: tonic::transport::Server,
        incoming: impl Stream<Item = core::result::Result<IO, IE>> + Send + 'static,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Outcome>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Connected + Unpin + Send + 'static,
        IO::ConnectInfo: Clone + Send + Sync + 'static,
        IE: Into<Box<dyn core::error::Error + Send + Sync>> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // Every refusal a peer receives is counted, whichever handler (or the identity
        // interceptor) made it: they all carry their kind in the response's metadata.
        let metrics = self.shared.metrics.clone();
        let count_refusals = tower::util::MapResponseLayer::new(move |response: http::Response<tonic::body::Body>| {
            metrics.observe_response(&response);
            response
        });
        let server =
            builder.layer(count_refusals).add_service(self.service()).serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            });
        let server = tokio::spawn(server);
        let outcome = self.drive_until(shutdown).await;
        let _ = stop.send(());
        server.await.map_err(|e| FederationError::Task(e.to_string()))?.map_err(FederationError::Server)?;
        Ok(outcome)
    }

    /// The writer of snapshots: one at a time, in order, each reported back to the coordinator.
    fn spawn_writer(&self) -> Option<tokio::task::JoinHandle<()>> {
        let mut snapshots = self.shared.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()?;
        let shared = self.shared.clone();
        Some(tokio::spawn(async move {
            while let Some(snapshot) = snapshots.recv().await {
                let dir = shared.out_dir.clone();
                let result = tokio::task::spawn_blocking(move || persist(&dir, &snapshot))
                    .await
                    .unwrap_or_else(|e| Err(FederationError::Task(e.to_string())))
                    .map_err(|e| e.to_string());
                let _ = shared.event(Event::Persisted { result });
            }
        }))
    }

    /// Drives the federation (start, deadlines) until it ends or `shutdown` completes; every
    /// snapshot is written before it returns.
    pub async fn drive_until(&self, shutdown: impl Future<Output = ()>) -> Outcome {
        let writer = self.spawn_writer();
        let mut changed = self.subscribe();
        let mut shutdown = core::pin::pin!(shutdown);
        loop {
            let _ = self.shared.event(Event::Tick);
            let (finished, deadline) = {
                let coordinator = self.shared.coordinator();
                (coordinator.is_finished(), coordinator.next_deadline())
            };
            if finished {
                break;
            }
            let wait = deadline
                .map_or(Duration::from_secs(1), |d| d.saturating_duration_since(Instant::now()))
                .clamp(Duration::from_millis(10), Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::timeout(wait, changed.changed()) => {}
                () = &mut shutdown => {
                    let _ = self.shared.event(Event::Shutdown);
                }
            }
        }
        // Nothing reported done is lost: wait for the writer to catch up.
        while !self.shared.coordinator().is_persisted() {
            let _ = tokio::time::timeout(Duration::from_millis(200), changed.changed()).await;
        }
        // Give the hospitals a moment to fetch their final task.
        let until = Instant::now() + FINAL_DELIVERY;
        while !self.shared.coordinator().all_delivered() && Instant::now() < until {
            let _ = tokio::time::timeout(Duration::from_millis(100), changed.changed()).await;
        }
        if let Some(writer) = writer {
            writer.abort();
        }
        self.shared.coordinator().outcome()
    }
}

/// The service as `Server::add_service` takes it: the generated server behind the identity
/// interceptor.
pub type AuthenticatedService = InterceptedService<
    v1::federation_server::FederationServer<AggregatorServer>,
    fn(Request<()>) -> core::result::Result<Request<()>, Status>,
>;

type TaskStream = Pin<Box<dyn Stream<Item = core::result::Result<v1::TaskChunk, Status>> + Send>>;

/// How long one `NextTask` call may wait for news at most.
const MAX_WAIT: Duration = Duration::from_secs(30);

#[tonic::async_trait]
impl Federation for AggregatorServer {
    async fn join(&self, request: Request<v1::JoinRequest>) -> core::result::Result<Response<v1::JoinReply>, Status> {
        let node = peer(&request)?;
        let federation_id = request.into_inner().federation_id;
        self.shared.event(Event::Join { node: node.clone(), federation_id }).into_status()?;
        Ok(Response::new(v1::JoinReply {
            node_id: node.as_str().to_owned(),
            config: Some(self.shared.federation.clone()),
        }))
    }

    type NextTaskStream = TaskStream;

    async fn next_task(
        &self,
        request: Request<v1::TaskRequest>,
    ) -> core::result::Result<Response<Self::NextTaskStream>, Status> {
        let node = peer(&request)?;
        let request = request.into_inner();
        if request.federation_id != self.shared.plan.settings.federation_id {
            return Err(refusal_status(Refusal::UnknownFederation(request.federation_id)));
        }
        self.shared.event(Event::Asked { node: node.clone() }).into_status()?;
        let after: Option<(SessionId, i32)> =
            request.after.map(|s| (convert::session_from_proto(s), request.after_kind));
        let wait = Duration::from_millis(u64::from(request.wait_ms)).min(MAX_WAIT);
        let mut changed = self.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        let task = loop {
            let task = self.shared.coordinator().task_for(&node).into_status()?;
            let seen = match (task.session, after) {
                (Some(session), Some((after, kind))) => {
                    session == after && kind == convert::task_kind_to_proto(task.kind) as i32
                }
                _ => false,
            };
            let fresh = task.kind != TaskKind::Wait && !seen;
            if fresh {
                break task;
            }
            if tokio::time::Instant::now() >= deadline {
                break crate::protocol::Task { kind: TaskKind::Wait, sections: Vec::new(), ..task };
            }
            let _ = tokio::time::timeout_at(deadline, changed.changed()).await;
        };
        let bytes: u64 = task.sections.iter().map(|s| s.len() as u64).sum();
        if bytes > 0 || task.kind == TaskKind::Done {
            let sent = Event::TaskSent { node, session: task.session, bytes, done: task.kind == TaskKind::Done };
            let _ = self.shared.event(sent);
        }
        let header = convert::task_header(&task);
        let mut messages = vec![Ok(v1::TaskChunk { part: Some(v1::task_chunk::Part::Header(header)) })];
        messages.extend(
            chunks(&task.sections).into_iter().map(|c| Ok(v1::TaskChunk { part: Some(v1::task_chunk::Part::Data(c)) })),
        );
        Ok(Response::new(Box::pin(tokio_stream::iter(messages))))
    }

    async fn upload(
        &self,
        request: Request<Streaming<v1::UploadChunk>>,
    ) -> core::result::Result<Response<v1::UploadReply>, Status> {
        let node = peer(&request)?;
        let mut stream = request.into_inner();
        let header = match stream.next().await {
            Some(Ok(v1::UploadChunk { part: Some(v1::upload_chunk::Part::Header(header)) })) => header,
            Some(Err(status)) => return Err(status),
            _ => return Err(refusal_status(Refusal::Stream("an upload starts with its header"))),
        };
        let total = header.total_bytes;
        let started = Event::UploadStarted { node: node.clone(), header: convert::upload_header_from_proto(&header) };
        let actions = self.shared.coordinator().handle(started, Instant::now()).into_status()?;
        let Some(Action::Verify(ticket)) = actions.into_iter().next() else {
            return Err(Status::internal("the coordinator asked for no verification"));
        };
        let _in_flight = UploadSlot::take(&self.shared, &node).into_status()?;
        let cap = self.shared.plan.settings.max_upload_bytes;
        if let Some((party, builder)) = ticket.contribution() {
            let reception =
                Reception { shared: self.shared.clone(), session: ticket.session, node: node.clone(), party, builder };
            let hash = stream_contribution(reception, total, cap, &mut stream).await?;
            let upload = Verified::Contribution(hash);
            self.shared.event(Event::UploadVerified { ticket, upload, bytes: total }).into_status()?;
            return Ok(Response::new(v1::UploadReply {}));
        }
        let _buffer = match total > CHUNK_BYTES as u64 {
            true => Some(self.shared.buffers.acquire().await.map_err(|_| Status::unavailable("shutting down"))?),
            false => None,
        };
        let mut assembler = Assembler::new(total, cap).map_err(Refusal::from).into_status()?;
        while let Some(chunk) = stream.next().await {
            assembler.push(&data_of(chunk)?).map_err(Refusal::from).into_status()?;
        }
        let bytes: Bytes = assembler.finish().map_err(Refusal::from).into_status()?;
        let size = bytes.len() as u64;
        let limits = self.shared.limits;
        let (ticket, upload) = tokio::task::spawn_blocking(move || ticket.verify(&bytes, &limits).map(|v| (ticket, v)))
            .await
            .map_err(|_| Status::internal("the verification worker failed"))?
            .into_status()?;
        self.shared.event(Event::UploadVerified { ticket, upload, bytes: size }).into_status()?;
        Ok(Response::new(v1::UploadReply {}))
    }

    async fn status(
        &self,
        request: Request<v1::StatusRequest>,
    ) -> core::result::Result<Response<v1::StatusReply>, Status> {
        let node = peer(&request)?;
        let status = self.shared.coordinator().status(&node).into_status()?;
        Ok(Response::new(convert::status_to_proto(&status)))
    }

    async fn leave(
        &self,
        request: Request<v1::LeaveRequest>,
    ) -> core::result::Result<Response<v1::LeaveReply>, Status> {
        let node = peer(&request)?;
        let v1::LeaveRequest { federation_id, reason } = request.into_inner();
        // The reason is the peer's text: keep a bounded amount of it for the log.
        let reason: String = reason.chars().take(500).collect();
        self.shared.event(Event::Leave { node, federation_id, reason }).into_status()?;
        Ok(Response::new(v1::LeaveReply {}))
    }
}

/// The data of an upload's chunk after its header.
fn data_of(chunk: core::result::Result<v1::UploadChunk, Status>) -> core::result::Result<Bytes, Status> {
    match chunk?.part {
        Some(v1::upload_chunk::Part::Data(data)) => Ok(data),
        _ => Err(refusal_status(Refusal::Stream("a second header in one upload"))),
    }
}

/// One contribution being streamed into its session's sum. Dropped before it is committed (its
/// upload failed, or the connection went and the handler with it), it abandons the stream; if
/// that breaks the sum, the coordinator hears of it and restarts the round without that node.
struct Reception {
    shared: Arc<Shared>,
    session: SessionId,
    node: NodeId,
    party: PartyId,
    builder: SharedBuilder,
}

impl Drop for Reception {
    fn drop(&mut self) {
        if let Some(why) = self.builder.abandon(&self.party, "its upload did not complete") {
            let _ = self.shared.event(Event::AggregateBroken { session: self.session, node: self.node.clone(), why });
        }
    }
}

/// Receives a contribution of `total` bytes (at most `cap`) into its session's sum as its
/// chunks arrive: each chunk is decoded and added at once, and only the sum is kept.
async fn stream_contribution(
    reception: Reception,
    total: u64,
    cap: u64,
    stream: &mut Streaming<v1::UploadChunk>,
) -> core::result::Result<ContributionHash, Status> {
    let invalid = |source| Refusal::Invalid { what: "contribution", source };
    if total > cap {
        return Err(refusal_status(Refusal::from(TransferError::TooLarge { total, limit: cap })));
    }
    let mut ciphertext = reception.builder.begin(reception.party.clone()).map_err(invalid).into_status()?;
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        let data = data_of(chunk)?;
        received += data.len() as u64;
        if received > total {
            return Err(refusal_status(Refusal::from(TransferError::Overflow { expected: total })));
        }
        // Here, not on the blocking pool: a chunk is a fraction of a millisecond of work, and
        // one stream keeps one buffer (handing chunks to other threads let the allocator's
        // per-thread caches grow the aggregator's memory round after round).
        reception.builder.add_piece(&mut ciphertext, &data).map_err(invalid).into_status()?;
    }
    if received != total {
        return Err(refusal_status(Refusal::from(TransferError::Short { got: received, expected: total })));
    }
    // A failed commit has abandoned the stream itself; the reception's drop reports the sum.
    reception.builder.commit(ciphertext).map_err(invalid).into_status()
}
