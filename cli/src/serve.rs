//! `fedcare serve`: the aggregator of a real deployment, until the federation ends or a signal
//! stops it (exit 0; started again on the same `out_dir` it resumes).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use fedcare_federation::config::{self, AggregatorConfig, SchemaShape};
use fedcare_federation::coordinator::Failure;
use fedcare_federation::server::AggregatorServer;
use fedcare_federation::tls;

/// `fedcare serve`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// aggregator.toml.
    #[arg(long)]
    config: PathBuf,
}

pub(crate) fn run(args: Args) -> Result<()> {
    tls::install_crypto_provider();
    let mut config: AggregatorConfig = config::load(&args.config)?;
    if let Some(name) = &config.schema {
        // The aggregator never reads patient data: only the schema's shape goes in its plan.
        let schema = fedcare_data::Schema::by_name(name)?;
        let shape = SchemaShape {
            id: schema.id.clone(),
            width: schema.width(),
            numeric: schema.numeric.len(),
            top_k: schema.top_k_shapes(),
        };
        config.apply_schema(&shape).with_context(|| format!("invalid configuration in {}", args.config.display()))?;
    }
    let plan = config.plan().with_context(|| format!("invalid configuration in {}", args.config.display()))?;
    let server_tls = tls::server_tls(&config.tls.ca, &config.tls.cert, &config.tls.key)?;
    let aggregator = AggregatorServer::new(plan)?;
    let outcome = crate::runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr().context("the listening socket has no address")?;
        // The first line of output: scripts (and `listen = "127.0.0.1:0"` users) read the port.
        println!("aggregator listening on {address}");
        let _ = std::io::stdout().flush();
        tracing::info!(%address, "aggregator listening");
        anyhow::Ok(aggregator.serve_until(listener, server_tls, crate::shutdown_signal()).await?)
    })?;
    match outcome.failure {
        Some(Failure::Interrupted) => {
            println!("stopped by a signal after {} sessions; start again to resume", outcome.records.len());
            Ok(())
        }
        Some(failure) => anyhow::bail!("the federation stopped early: {failure}"),
        None => {
            println!("federation done: {} sessions", outcome.records.len());
            Ok(())
        }
    }
}
