//! The standard gRPC health protocol (`grpc.health.v1`) for the aggregator, on a plaintext port
//! of its own, and the client check `fedcare health` makes (a container's health check: a
//! scratch image has no shell or curl).
//!
//! The overall service (`""`) is SERVING while the process runs; [`FEDERATION_SERVICE`] is
//! SERVING while the federation runs and NOT_SERVING once it has ended. The endpoint answers
//! nothing else: no identity, no data, so it needs no certificate.

use core::time::Duration;

use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::server::HealthReporter;

use crate::error::{FederationError, Result};

/// The service name the federation's own status is reported under.
pub const FEDERATION_SERVICE: &str = "fedcare.v1.Federation";

/// Sets what the health endpoint reports.
#[derive(Debug, Clone)]
pub struct Health {
    reporter: HealthReporter,
}

impl Health {
    /// Reports whether the federation runs.
    pub async fn set_federation_running(&self, running: bool) {
        let status = if running { ServingStatus::Serving } else { ServingStatus::NotServing };
        self.reporter.set_service_status(FEDERATION_SERVICE, status).await;
    }
}

/// Serves the health protocol on `listener` until `shutdown` completes; the returned handle
/// sets what it reports (the federation starts as running).
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (Health, impl Future<Output = Result<()>>) {
    let (reporter, service) = tonic_health::server::health_reporter();
    let health = Health { reporter };
    health.set_federation_running(true).await;
    let server = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(10))
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown);
    (health, async move { server.await.map_err(FederationError::Server) })
}

/// What a health endpoint answered for a service.
pub type Reported = tonic_health::pb::health_check_response::ServingStatus;

/// Asks the health endpoint at `address` (`host:port`) for `service` (`""`: the process);
/// fails when it cannot be reached or does not answer within `timeout`.
pub async fn check(address: &str, service: &str, timeout: Duration) -> Result<Reported> {
    let url = format!("http://{address}");
    let connect = |source| FederationError::Connect { url: url.clone(), source };
    let endpoint = tonic::transport::Endpoint::from_shared(url.clone())
        .map_err(connect)?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint.connect().await.map_err(connect)?;
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest { service: service.to_owned() })
        .await
        .map_err(|status| FederationError::Rpc { call: "health check", status })?;
    Ok(reply.into_inner().status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_serving_then_not_serving_and_an_unreachable_endpoint_fails() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (health, server) = serve(listener, async {
            let _ = stopped.await;
        })
        .await;
        let server = tokio::spawn(server);
        let timeout = Duration::from_secs(5);
        assert_eq!(check(&address, "", timeout).await.unwrap(), Reported::Serving);
        assert_eq!(check(&address, FEDERATION_SERVICE, timeout).await.unwrap(), Reported::Serving);
        health.set_federation_running(false).await;
        assert_eq!(check(&address, FEDERATION_SERVICE, timeout).await.unwrap(), Reported::NotServing);
        let _ = stop.send(());
        server.await.unwrap().unwrap();
        assert!(check(&address, "", Duration::from_millis(500)).await.is_err());
    }
}
