//! The aggregator's listening side: TCP connections and their TLS handshakes, each with a
//! client certificate of the consortium's CA, under limits that keep connections which never
//! authenticate from holding the aggregator.
//!
//! Guarantees: a handshake that has not finished within [`ConnectionLimits::handshake_timeout`]
//! is dropped; at most [`ConnectionLimits::max_handshakes`] run at once, and at most
//! [`ConnectionLimits::max_handshakes_per_source`] from one IP address (a connection beyond
//! either is closed at once, before any TLS work); every refused or failed handshake is counted
//! in the metrics (`fedcare_refusals_total{reason}`: `tls-handshake`, `handshake-timeout`,
//! `too-many-handshakes`), and a failed one (a certificate of another CA, no certificate) is
//! logged with its address. Only connections that completed the handshake reach the gRPC
//! service.

use core::net::IpAddr;
use core::time::Duration;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

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
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { handshake_timeout: Duration::from_secs(10), max_handshakes: 256, max_handshakes_per_source: 32 }
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

/// The connections of `listener` that completed their TLS handshake under `limits`, as a
/// stream for the gRPC server (which reads each one's client certificate). The accept loop
/// stops when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: &ServerTls,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = std::io::Result<TlsStream<TcpStream>>> + Send + 'static {
    let (ready, established) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(tls.config());
    tokio::spawn(async move {
        let handshakes = Arc::new(Semaphore::new(limits.max_handshakes));
        let sources = Arc::new(PerSource::default());
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
            let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                metrics.refused("too-many-handshakes");
                continue;
            };
            let Some(slot) = sources.take(address.ip(), limits.max_handshakes_per_source) else {
                metrics.refused("too-many-handshakes");
                continue;
            };
            // Without TCP_NODELAY each small message of a step (a signed statement, a task
            // header) waits out the peer's delayed ACK, about 40 ms per step on Linux.
            if let Err(error) = stream.set_nodelay(true) {
                tracing::warn!("cannot set TCP_NODELAY on a connection: {error}");
            }
            let (acceptor, ready, metrics) = (acceptor.clone(), ready.clone(), metrics.clone());
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await;
                drop((permit, slot));
                match handshake {
                    Ok(Ok(stream)) => {
                        let _ = ready.send(Ok(stream)).await;
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
    async fn silent_garbage_and_surplus_connections_are_closed_and_counted() {
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

        let text = metrics.encode();
        for line in [
            "fedcare_refusals_total{reason=\"too-many-handshakes\"} 1",
            "fedcare_refusals_total{reason=\"handshake-timeout\"} 2",
            "fedcare_refusals_total{reason=\"tls-handshake\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
    }
}
