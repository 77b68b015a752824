//! `fedcare serve`: the aggregator of a real deployment, until the federation ends or a signal
//! stops it (exit 0; started again on the same `out_dir` it resumes). It prints a table row per
//! completed session (the `simulate` table, without the hospitals' own crypto time) and, where
//! `[operations]` asks, serves the gRPC health protocol and Prometheus metrics, and stays up
//! after the end.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use fedcare_federation::config::{self, AggregatorConfig};
use fedcare_federation::coordinator::{Failure, Outcome};
use fedcare_federation::server::AggregatorServer;
use fedcare_federation::tracking::Trackers;
use fedcare_federation::{health, metrics, tls};
use tokio::sync::watch;

use crate::simulate::{table_header, table_row};

/// `fedcare serve`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// aggregator.toml (FEDCARE_LISTEN, FEDCARE_HOSPITALS, FEDCARE_OUT_DIR, FEDCARE_HEALTH_LISTEN,
    /// FEDCARE_METRICS_LISTEN, FEDCARE_KEEP_SERVING and FEDCARE_FEDERATION_ID override its keys).
    #[arg(long)]
    config: PathBuf,
}

pub(crate) fn run(args: Args) -> Result<()> {
    tls::install_crypto_provider();
    let mut config: AggregatorConfig = config::load_with_env(&args.config)?;
    let threads = fedcare_crypto::threads::set_threads(config.crypto_threads)?;
    tracing::info!(threads, "crypto threads");
    if let Some(name) = &config.schema {
        // The aggregator never reads patient data: only the schema's shape goes in its plan.
        let schema = fedcare_data::Schema::by_name(name)?;
        config
            .apply_schema(&config::schema_shape(&schema))
            .with_context(|| format!("invalid configuration in {}", args.config.display()))?;
    }
    let plan = config.plan().with_context(|| format!("invalid configuration in {}", args.config.display()))?;
    let server_tls = tls::server_tls(&config.tls.ca, &config.tls.cert, &config.tls.key)?;
    let trackers =
        Trackers::start(&config.tracking, &plan, &plan.settings.federation_id).map_err(anyhow::Error::msg)?;
    let aggregator = AggregatorServer::new(plan, &config.out_dir)?;
    let outcome = crate::aggregator_runtime()?.block_on(serve(&config, aggregator, server_tls, trackers))?;
    match outcome.failure {
        Some(Failure::Interrupted) => {
            println!("stopped by a signal after {} sessions; start again to resume", outcome.records.len());
            Ok(())
        }
        Some(failure) => anyhow::bail!("the federation stopped early: {failure}"),
        None => Ok(()),
    }
}

async fn bind(address: &str, what: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address} ({what})"))
}

async fn serve(
    config: &AggregatorConfig,
    aggregator: AggregatorServer,
    server_tls: tls::ServerTls,
    trackers: Trackers,
) -> Result<Outcome> {
    let listener = bind(&config.listen, "listen").await?;
    let address = listener.local_addr().context("the listening socket has no address")?;
    // The first line of output: scripts (and `listen = "127.0.0.1:0"` users) read the port.
    println!("aggregator listening on {address}");
    let _ = std::io::stdout().flush();
    tracing::info!(%address, "aggregator listening");

    let (stop, stopped) = watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let operations = &config.operations;
    let mut endpoints = tokio::task::JoinSet::new();
    let health = match &operations.health_listen {
        Some(address) => {
            let listener = bind(address, "operations.health_listen").await?;
            println!("health (grpc.health.v1) on {}", listener.local_addr()?);
            let (health, server) = health::serve(listener, until_stopped()).await;
            endpoints.spawn(async move { server.await.context("the health endpoint failed") });
            Some(health)
        }
        None => None,
    };
    if let Some(address) = &operations.metrics_listen {
        let listener = bind(address, "operations.metrics_listen").await?;
        println!("metrics (Prometheus) on http://{}/metrics", listener.local_addr()?);
        let server = metrics::serve(listener, aggregator.metrics(), until_stopped());
        endpoints.spawn(async move { server.await.context("the metrics endpoint failed") });
    }

    let (table_done, table_stop) = tokio::sync::oneshot::channel::<()>();
    let table = tokio::spawn(print_table(aggregator.clone(), table_stop, trackers));
    let mut interrupted = core::pin::pin!(crate::shutdown_signal());
    let outcome = aggregator.serve_until(listener, server_tls, interrupted.as_mut()).await;
    // Every row is printed (and recorded) before the verdict.
    let _ = table_done.send(());
    let trackers = table.await.ok();
    if let Ok(outcome) = &outcome
        && outcome.failure != Some(Failure::Interrupted)
    {
        match &outcome.failure {
            None => {
                println!("federation done: {} sessions", outcome.records.len());
                if let (Some(trackers), Some(server)) = (trackers, config.tracking.mlflow.clone()) {
                    let out = config.out_dir.clone();
                    let delivery = tokio::task::spawn_blocking(move || {
                        trackers.finish(&out, || crate::simulate::federation_pages(&out))
                    })
                    .await
                    .context("the MLflow thread panicked")?;
                    if let Some(delivery) = delivery {
                        crate::simulate::print_delivery(&server, &delivery);
                    }
                }
                if outcome.exploration.is_some() {
                    let json = config.out_dir.join(fedcare_federation::exploration::EXPLORE_FILE);
                    let page = crate::explore::render_file(&json)?;
                    println!("exploration: wrote {} and {}", json.display(), page.display());
                }
            }
            // Said at once when staying up; otherwise it is the command's error, on return.
            Some(failure) if operations.keep_serving => eprintln!("the federation stopped early: {failure}"),
            Some(_) => {}
        }
        if let Some(health) = &health {
            health.set_federation_running(false).await;
        }
        if operations.keep_serving {
            println!("keep_serving: health and metrics stay up until a signal");
            let _ = std::io::stdout().flush();
            interrupted.await;
        }
    }
    let _ = stop.send(true);
    while let Some(result) = endpoints.join_next().await {
        result.context("an operations endpoint panicked")??;
    }
    Ok(outcome?)
}

/// Prints the table's header, then a row per session as it completes (sessions resumed from
/// the checkpoint first), recording each in `trackers`, until `stop` fires; then the rows not
/// printed yet. Gives `trackers` back.
async fn print_table(
    aggregator: AggregatorServer,
    stop: tokio::sync::oneshot::Receiver<()>,
    mut trackers: Trackers,
) -> Trackers {
    let mut printed = 0;
    // A closed stdout (`serve | head`) must not stop the aggregator: write errors are ignored.
    let mut print_new = || {
        let records = aggregator.records_since(printed);
        let mut out = std::io::stdout().lock();
        for record in &records {
            let _ = writeln!(out, "{}", table_row(record, None));
            trackers.record(record);
        }
        printed += records.len();
        let _ = out.flush();
    };
    let _ = writeln!(std::io::stdout(), "{}", table_header());
    let mut changed = aggregator.subscribe();
    let mut stop = core::pin::pin!(stop);
    loop {
        print_new();
        tokio::select! {
            moved = changed.changed() => if moved.is_err() { break },
            _ = &mut stop => break,
        }
    }
    print_new();
    trackers
}
