//! `fedcare join`: a hospital node of a real deployment, on its own data file.

use std::path::PathBuf;

use anyhow::{Context, Result};
use fedcare_data::{BadRows, read_csv};
use fedcare_federation::config::{self, HospitalConfig};
use fedcare_federation::hospital::{Connection, HospitalData, HospitalNode, trainer};
use fedcare_federation::participant::{HospitalTrust, LEDGER_FILE};
use fedcare_federation::persistence::write_atomically;
use fedcare_federation::signing::SigningKey;
use fedcare_federation::tls;
use fedcare_gpu_trainer::Selection;

use crate::simulate::TrainerArg;

/// `fedcare join`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// hospital.toml (FEDCARE_AGGREGATOR, FEDCARE_SERVER_NAME, FEDCARE_STATE_DIR and
    /// FEDCARE_FEDERATION_ID override its keys).
    #[arg(long)]
    config: PathBuf,
    /// The hospital's CSV: in the schema hospital.toml names, or numeric feature columns and a
    /// 0/1 `label` column without one.
    #[arg(long)]
    data: PathBuf,
    /// Where to write the final model (the aggregator's model.bin: it scores with
    /// `fedcare predict`); after an exploration, explore.json and explore.html go beside it.
    #[arg(long, default_value = "fedcare-model.bin")]
    out: PathBuf,
    /// Local trainer; overrides `trainer` in hospital.toml.
    #[arg(long, value_enum)]
    trainer: Option<TrainerArg>,
}

pub(crate) fn run(args: Args) -> Result<()> {
    tls::install_crypto_provider();
    let config: HospitalConfig = config::load_with_env(&args.config)?;
    let threads = fedcare_crypto::threads::set_threads(config.crypto_threads)?;
    tracing::info!(threads, "crypto threads");
    let data = match &config.schema {
        Some(name) => {
            let schema = crate::top_k_key::schema(name, config.top_k_key.as_deref())?;
            crate::top_k_key::warn_if_unkeyed(&schema);
            let (table, report) = read_csv(&args.data, &schema, BadRows::from_limit(config.bad_rows_limit))?;
            eprintln!("read {}", report.summary());
            HospitalData::Table { table, schema: Box::new(schema) }
        }
        None => HospitalData::Ready(fedcare_data::plain::load_csv(&args.data)?),
    };
    let connection = Connection::Tls {
        url: config.aggregator.clone(),
        tls: tls::client_tls(&config.tls.ca, &config.tls.cert, &config.tls.key, &config.server_name)?,
    };
    let choice = args.trainer.map_or(config.trainer, Into::into);
    let train_threads = config
        .train_threads
        .map_or_else(|| std::thread::available_parallelism().map_or(1, core::num::NonZeroUsize::get), |n| n.get());
    let (trainer, why) = trainer::choose(
        choice,
        &Selection::from_env(),
        train_threads,
        Some(std::sync::Arc::new(|line: &str| eprintln!("trainer: {line}"))),
    )
    .context("choosing the trainer")?;
    eprintln!("trainer: {why}");
    let trust = HospitalTrust {
        key: std::sync::Arc::new(SigningKey::from_pem_file(&config.tls.key)?),
        consortium: config.consortium.clone(),
        ledger: Some(config.state_dir.join(LEDGER_FILE)),
    };
    let node = HospitalNode::new(connection, config.agreement(), data, trainer, trust);
    let model = crate::runtime()?.block_on(async {
        tokio::select! {
            model = node.run() => model.map(Some),
            () = crate::shutdown_signal() => Ok(None),
        }
    })?;
    match model {
        Some(model) => {
            write_atomically(&args.out, &model.bytes)?;
            println!("federation done: final model written to {}", args.out.display());
            if let Some(report) = &model.exploration {
                let dir = args.out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
                let (json, page) = crate::explore::write_outputs(report, dir)?;
                println!(
                    "exploration: wrote {} and {} (this hospital's figures beside the pooled ones)",
                    json.display(),
                    page.display()
                );
            }
        }
        None => println!("stopped by a signal; start again to rejoin at the next round"),
    }
    Ok(())
}
