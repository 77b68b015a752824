//! The aggregator's listening side: TCP connections and their TLS handshakes, each with a
//! client certificate of the consortium's CA, under limits that keep connections which never
//! authenticate from holding the aggregator.
//!
//! Guarantees: a handshake that has not finished within [`ConnectionLimits::handshake_timeout`]
//! is dropped; at most [`ConnectionLimits::max_handshakes`] run at once, and at most
//! [`ConnectionLimits::max_handshakes_per_source`] from one IP address (a connection beyond
//! either is closed at once, before any TLS work); authenticated connections are capped the
//! same way ([`ConnectionLimits::max_connections`], overall and per source) and closed when
//! nothing moved on them for [`ConnectionLimits::idle_timeout`]; every refused or failed
//! handshake is counted in the metrics (`fedcare_refusals_total{reason}`: `tls-handshake`,
//! `handshake-timeout`, `too-many-handshakes`, `too-many-connections`), and a failed one (a
//! certificate of another CA, no certificate) is logged with its address. Only connections
//! that completed the handshake reach the gRPC service.

use core::net::IpAddr;
use core::time::Duration;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use core::pin::Pin;
use core::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

use crate::metrics::Metrics;
use crate::tls::ServerTls;

/// What connections that have not authenticated may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// Handshakes running at once, from everyone.
    pub max_handshakes: usize,
    /// Handshakes running at once from one IP address.
    pub max_handshakes_per_source: usize,
    /// Authenticated connections open at once, from everyone.
    pub max_connections: usize,
    /// Authenticated connections open at once from one IP address.
    pub max_connections_per_source: usize,
    /// An authenticated connection on which nothing moves this long is closed (a hospital's
    /// HTTP/2 pings every 10 s keep a live one moving, in a round or between rounds).
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 256,
            max_handshakes_per_source: 32,
            max_connections: 1024,
            max_connections_per_source: 64,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Handshakes in flight per source address; an entry leaves when its count falls to zero.
#[derive(Default)]
struct PerSource(Mutex<HashMap<IpAddr, usize>>);

/// One handshake's place in [`PerSource`]; released when dropped.
struct SourceSlot {
    sources: Arc<PerSource>,
    address: IpAddr,
}

impl PerSource {
    fn take(self: &Arc<Self>, address: IpAddr, max: usize) -> Option<SourceSlot> {
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(address).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(SourceSlot { sources: self.clone(), address })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut counts = self.sources.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// An authenticated connection: it holds its places in the connection caps while it is open,
/// and fails (so the server closes it) when nothing moved on it for the idle timeout.
pub struct Established {
    stream: TlsStream<TcpStream>,
    _places: (OwnedSemaphorePermit, SourceSlot),
    idle_timeout: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl Established {
    fn moved(&mut self) {
        self.idle.as_mut().reset(tokio::time::Instant::now() + self.idle_timeout);
    }
}

impl AsyncRead for Established {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "idle connection")))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Established {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, data);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.moved();
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl Connected for Established {
    type ConnectInfo = TlsConnectInfo<TcpConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

/// The places of one kind of connection: overall and per source address.
struct Places {
    overall: Arc<Semaphore>,
    sources: Arc<PerSource>,
    per_source: usize,
}

impl Places {
    fn new(overall: usize, per_source: usize) -> Self {
        Self { overall: Arc::new(Semaphore::new(overall)), sources: Arc::default(), per_source }
    }

    fn take(&self, address: IpAddr) -> Option<(OwnedSemaphorePermit, SourceSlot)> {
        let permit = self.overall.clone().try_acquire_owned().ok()?;
        let slot = self.sources.take(address, self.per_source)?;
        Some((permit, slot))
    }
}

/// The connections of `listener` that completed their TLS handshake under `limits`, as a
/// stream for the gRPC server (which reads each one's client certificate). The accept loop
/// stops when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: &ServerTls,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = std::io::Result<Established>> + Send + 'static {
    let (ready, established) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(tls.config());
    tokio::spawn(async move {
        let handshakes = Places::new(limits.max_handshakes, limits.max_handshakes_per_source);
        let connections = Arc::new(Places::new(limits.max_connections, limits.max_connections_per_source));
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = ready.closed() => break,
            };
            let (stream, address) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, or a connection reset before it was accepted: the
                    // listener itself is fine; pause a moment rather than spin.
                    tracing::debug!("accepting a connection failed: {error}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let Some(handshake_places) = handshakes.take(address.ip()) else {
                metrics.refused("too-many-handshakes");
                continue;
            };
            // Without TCP_NODELAY each small message of a step (a signed statement, a task
            // header) waits out the peer's delayed ACK, about 40 ms per step on Linux.
            if let Err(error) = stream.set_nodelay(true) {
                tracing::warn!("cannot set TCP_NODELAY on a connection: {error}");
            }
            let (acceptor, ready, metrics, connections) =
                (acceptor.clone(), ready.clone(), metrics.clone(), connections.clone());
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await;
                drop(handshake_places);
                match handshake {
                    Ok(Ok(stream)) => {
                        let Some(places) = connections.take(address.ip()) else {
                            metrics.refused("too-many-connections");
                            tracing::warn!(%address, "refused an authenticated connection: too many open");
                            return;
                        };
                        let idle = Box::pin(tokio::time::sleep(limits.idle_timeout));
                        let established =
                            Established { stream, _places: places, idle_timeout: limits.idle_timeout, idle };
                        let _ = ready.send(Ok(established)).await;
                    }
                    Ok(Err(error)) => {
                        metrics.refused("tls-handshake");
                        tracing::warn!(%address, "refused a connection at the TLS handshake: {error}");
                    }
                    Err(_) => {
                        metrics.refused("handshake-timeout");
                        tracing::debug!(%address, "closed a connection that did not finish its TLS handshake in time");
                    }
                }
            });
        }
    });
    ReceiverStream::new(established)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    use super::*;
    use crate::tls;

    fn pem_certificates(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(path).unwrap().map(Result::unwrap).collect()
    }

    fn pem_key(path: &std::path::Path) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_file(path).unwrap()
    }

    /// Reads until the peer closes the connection (or resets it); how long that took.
    async fn closed_after(mut stream: TcpStream) -> Duration {
        let start = Instant::now();
        let mut buffer = [0u8; 256];
        while let Ok(read) = stream.read(&mut buffer).await {
            if read == 0 {
                break;
            }
        }
        start.elapsed()
    }

    #[tokio::test]
    async fn silent_garbage_surplus_and_idle_connections_are_closed_and_counted() {
        tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        tls::generate_dev_pki(dir.path(), &["st-marys".into()], &[]).unwrap();
        let files = |name: &str| dir.path().join(name);
        let server = tls::server_tls(
            &files(tls::files::CA_CERT),
            &files(tls::files::SERVER_CERT),
            &files(tls::files::SERVER_KEY),
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let limits = ConnectionLimits {
            handshake_timeout: Duration::from_millis(300),
            max_handshakes: 8,
            max_handshakes_per_source: 2,
            max_connections: 8,
            max_connections_per_source: 1,
            idle_timeout: Duration::from_millis(400),
        };
        let mut established = Box::pin(incoming(listener, &server, limits, metrics.clone()));

        // Two silent connections hold this address's two handshake places until the timeout.
        let silent = [TcpStream::connect(address).await.unwrap(), TcpStream::connect(address).await.unwrap()];
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A third from the same address is closed at once.
        let surplus = closed_after(TcpStream::connect(address).await.unwrap()).await;
        assert!(surplus < Duration::from_millis(250), "the surplus connection was held {surplus:?}");
        let start = Instant::now();
        for stream in silent {
            closed_after(stream).await;
        }
        let held = start.elapsed() + Duration::from_millis(50);
        assert!(held >= Duration::from_millis(250) && held < Duration::from_secs(3), "held {held:?}");
        // Garbage instead of a ClientHello is refused at once.
        let mut garbage = TcpStream::connect(address).await.unwrap();
        garbage.write_all(&[0x42; 64]).await.unwrap();
        assert!(closed_after(garbage).await < Duration::from_millis(250));

        // A hospital with a certificate of the CA gets through.
        let (cert, key) = tls::party_files(dir.path(), "st-marys");
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(pem_certificates(&files(tls::files::CA_CERT)));
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(pem_certificates(&cert), pem_key(&key))
            .unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let tcp = TcpStream::connect(address).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut stream = connector.connect(name, tcp).await.unwrap();
        stream.write_all(b"hello").await.unwrap();
        let mut accepted = established.next().await.unwrap().unwrap();
        let mut hello = [0u8; 5];
        accepted.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello, b"hello");

        // A second one from the same address is over its cap of authenticated connections.
        let tcp = TcpStream::connect(address).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut second = connector.connect(name, tcp).await.unwrap();
        let start = Instant::now();
        let mut buffer = [0u8; 16];
        while let Ok(read) = second.read(&mut buffer).await {
            if read == 0 {
                break;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(2), "the surplus authenticated connection was kept");

        // The first, silent since its hello, fails as idle after the idle timeout.
        let start = Instant::now();
        let error = accepted.read(&mut buffer).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(3), "idle after {waited:?}");
        drop(stream);

        let text = metrics.encode();
        for line in [
            "fedcare_refusals_total{reason=\"too-many-handshakes\"} 1",
            "fedcare_refusals_total{reason=\"handshake-timeout\"} 2",
            "fedcare_refusals_total{reason=\"tls-handshake\"} 1",
            "fedcare_refusals_total{reason=\"too-many-connections\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
    }
}
