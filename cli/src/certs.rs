//! `fedcare certs`: a development PKI (a provisioning kit for trying a deployment).

use std::path::PathBuf;

use anyhow::Result;
use fedcare_federation::tls;

/// `fedcare certs`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Output directory (private keys are created mode 0600; existing keys are never
    /// overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Hospital names, comma-separated (they become the node ids).
    #[arg(long, value_delimiter = ',', required = true)]
    hospitals: Vec<String>,
    /// Extra host names for the aggregator's certificate (localhost and 127.0.0.1 are always in).
    #[arg(long, value_delimiter = ',')]
    server_names: Vec<String>,
}

pub(crate) fn run(args: Args) -> Result<()> {
    tls::generate_dev_pki(&args.out, &args.hospitals, &args.server_names)?;
    println!("wrote a development PKI for {} hospitals to {}", args.hospitals.len(), args.out.display());
    Ok(())
}
