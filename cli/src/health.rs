//! `fedcare health`: asks an aggregator's `grpc.health.v1` endpoint whether it serves, and
//! exits 0 only if it does: a container's `HEALTHCHECK` with no shell or curl in the image.

use core::time::Duration;

use anyhow::{Result, bail};
use fedcare_federation::health::{self, Reported};

/// `fedcare health`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The endpoint, `host:port`: by default the aggregator's own `FEDCARE_HEALTH_LISTEN` (an
    /// unspecified address such as 0.0.0.0 is asked on this host), else 127.0.0.1:50052.
    #[arg(long)]
    address: Option<String>,
    /// The service to ask about: "" (the process) or "fedcare.v1.Federation" (SERVING only while
    /// the federation runs).
    #[arg(long, default_value = "")]
    service: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
}

/// The port `fedcare health` asks when nothing says otherwise.
const DEFAULT_ADDRESS: &str = "127.0.0.1:50052";

/// The address to ask for an aggregator that listens on `listen`: an unspecified host (all
/// interfaces) is asked on the loopback.
fn address_to_ask(listen: &str) -> String {
    match listen.rsplit_once(':') {
        Some(("0.0.0.0" | "[::]" | "", port)) => format!("127.0.0.1:{port}"),
        _ => listen.to_owned(),
    }
}

pub(crate) fn run(args: Args) -> Result<()> {
    let address = args
        .address
        .or_else(|| std::env::var("FEDCARE_HEALTH_LISTEN").ok().map(|listen| address_to_ask(&listen)))
        .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let reported = crate::runtime()?.block_on(health::check(&address, &args.service, timeout))?;
    let service = if args.service.is_empty() { "the aggregator" } else { args.service.as_str() };
    match reported {
        Reported::Serving => {
            println!("{service} at {address}: serving");
            Ok(())
        }
        other => bail!("{service} at {address}: {}", other.as_str_name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_asked_on_the_loopback() {
        assert_eq!(address_to_ask("0.0.0.0:50052"), "127.0.0.1:50052");
        assert_eq!(address_to_ask("[::]:7"), "127.0.0.1:7");
        assert_eq!(address_to_ask("10.0.0.2:50052"), "10.0.0.2:50052");
    }
}
