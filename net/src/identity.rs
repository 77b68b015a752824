//! Who is calling: one interceptor ([`authenticate`]) puts the caller's node id in every
//! request's extensions ([`Peer`]); handlers read it and never parse certificates.
//!
//! Over the network the node id is the name in the caller's mTLS client certificate (checked
//! against the federation's CA by TLS before any handler runs). In-process connections
//! ([`in_process`], for tests and tools that run a federation inside one process) carry the name
//! they were opened with as their connection info: only code in the same process can open one,
//! so a remote peer can never present that identity.

use core::pin::Pin;
use core::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::error::{FederationError, IntoStatus as _, Refusal, refusal_status};
use fedcare_protocol::NodeId;

/// The caller of a request, as [`authenticate`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer(pub NodeId);

/// The interceptor of every call: the caller's node id from its client certificate (or its
/// in-process link) into the request's extensions; a caller without one is refused.
pub fn authenticate(mut request: Request<()>) -> Result<Request<()>, Status> {
    let name = match request.extensions().get::<InProcessPeer>() {
        Some(link) => link.0.clone(),
        None => {
            let certs = request.peer_certs().ok_or(Refusal::NoCertificate).into_status()?;
            let leaf = certs.first().ok_or(Refusal::NoCertificate).into_status()?;
            crate::tls::name_from_der(leaf.as_ref()).map_err(Refusal::BadCertificate).into_status()?
        }
    };
    let node = node_id(&name).into_status()?;
    request.extensions_mut().insert(Peer(node));
    Ok(request)
}

/// The node a certificate (or an in-process link) names, checked to be a valid node id.
fn node_id(name: &str) -> Result<NodeId, Refusal> {
    NodeId::new(name).map_err(|_| Refusal::BadCertificate(format!("{name:?} is not a valid node id")))
}

/// The caller of `request` (put there by [`authenticate`]).
pub fn peer<T>(request: &Request<T>) -> Result<NodeId, Status> {
    request.extensions().get::<Peer>().map(|peer| peer.0.clone()).ok_or_else(|| refusal_status(Refusal::NoCertificate))
}

/// The connection info of an in-process connection: the node name it was opened for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InProcessPeer(String);

/// The aggregator's end of one in-process connection.
#[derive(Debug)]
pub struct InProcessStream {
    inner: DuplexStream,
    peer: InProcessPeer,
}

impl Connected for InProcessStream {
    type ConnectInfo = InProcessPeer;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer.clone()
    }
}

impl AsyncRead for InProcessStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for InProcessStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The aggregator's side of in-process connections: a stream of incoming connections.
#[derive(Debug)]
pub struct InProcessListener(mpsc::UnboundedReceiver<InProcessStream>);

impl InProcessListener {
    /// The incoming connections, as `Server::serve_with_incoming` takes them.
    pub fn into_incoming(self) -> impl tokio_stream::Stream<Item = std::io::Result<InProcessStream>> {
        tokio_stream::wrappers::UnboundedReceiverStream::new(self.0).map(Ok)
    }
}

/// What hospitals of the same process connect to the aggregator with.
#[derive(Debug, Clone)]
pub struct InProcessLink(mpsc::UnboundedSender<InProcessStream>);

/// Bytes buffered in each direction of an in-process connection.
const IN_PROCESS_BUFFER: usize = 4 << 20;

impl InProcessLink {
    /// A channel to the aggregator, authenticated as `node`.
    pub async fn connect(&self, node: &NodeId) -> Result<Channel, FederationError> {
        let sender = self.0.clone();
        let peer = InProcessPeer(node.as_str().to_owned());
        let connector = tower::service_fn(move |_: tonic::transport::Uri| {
            let (client, server) = tokio::io::duplex(IN_PROCESS_BUFFER);
            let sent = sender.send(InProcessStream { inner: server, peer: peer.clone() });
            async move {
                sent.map_err(|_| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "the aggregator is gone"))?;
                Ok::<_, std::io::Error>(TokioIo::new(client))
            }
        });
        let url = "http://in-process.invalid";
        Endpoint::from_static(url)
            .connect_with_connector(connector)
            .await
            .map_err(|source| FederationError::Connect { url: url.to_owned(), source })
    }
}

/// A pair of ends for in-process connections: hospitals connect through the link, the
/// aggregator serves the listener.
pub fn in_process() -> (InProcessLink, InProcessListener) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (InProcessLink(sender), InProcessListener(receiver))
}
