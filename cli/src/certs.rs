//! `fedcare certs`, `fedcare keygen` and `fedcare sign`: the consortium's keys and certificates.
//!
//! A real consortium: the CA's operator runs `fedcare certs --out pki` (the CA and the
//! aggregator's certificate); each hospital runs `fedcare keygen` on its own machine (its key
//! never leaves it) and sends the request; the operator signs it with `fedcare sign`; every
//! hospital pins every member's fingerprint in its `hospital.toml`. `fedcare certs --hospitals`
//! makes everyone's keys in one place: a development PKI for trying things out.

use std::path::PathBuf;

use anyhow::{Context, Result};
use fedcare_federation::tls;

/// `fedcare certs`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Output directory (private keys are created mode 0600; existing keys are never
    /// overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Hospital names, comma-separated (they become the node ids); their keys are made here
    /// too, for development. Without it: the CA and the aggregator's certificate only.
    #[arg(long, value_delimiter = ',')]
    hospitals: Vec<String>,
    /// Extra host names for the aggregator's certificate (localhost and 127.0.0.1 are always in).
    #[arg(long, value_delimiter = ',')]
    server_names: Vec<String>,
}

pub(crate) fn run(args: Args) -> Result<()> {
    tls::generate_dev_pki(&args.out, &args.hospitals, &args.server_names)?;
    if args.hospitals.is_empty() {
        println!("wrote a CA and the aggregator's certificate to {}", args.out.display());
        println!("each hospital makes its own key: fedcare keygen --name NAME --out DIR; sign it with fedcare sign");
    } else {
        println!(
            "wrote a development PKI for {} hospitals to {} (the roster: {})",
            args.hospitals.len(),
            args.out.display(),
            args.out.join(tls::files::MEMBERS).display()
        );
    }
    Ok(())
}

/// `fedcare keygen`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// This hospital's name (its node id and its certificate's DNS name).
    #[arg(long)]
    name: String,
    /// Directory for NAME.key (mode 0600, never overwritten) and NAME.csr.
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn keygen(args: KeygenArgs) -> Result<()> {
    let fingerprint = tls::generate_identity(&args.out, &args.name)?;
    let dir = args.out.display();
    println!("wrote {dir}/{name}.key (keep it here) and {dir}/{name}.csr (send it to the CA)", name = args.name);
    println!("this hospital's roster line, for every member's [consortium.members]:");
    println!("{} = \"{fingerprint}\"", args.name);
    Ok(())
}

/// `fedcare sign`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct SignArgs {
    /// The directory with the CA (ca.pem, ca.key), as `fedcare certs` wrote it.
    #[arg(long)]
    ca: PathBuf,
    /// A hospital's certificate request (NAME.csr from `fedcare keygen`).
    #[arg(long)]
    request: PathBuf,
    /// The request is the aggregator's (`fedcare keygen --name HOST` on its host): sign a
    /// server certificate for that name instead of a hospital's client certificate.
    #[arg(long)]
    aggregator: bool,
    /// Where to write the certificate (default: NAME.pem beside the request).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(crate) fn sign(args: SignArgs) -> Result<()> {
    let request =
        std::fs::read_to_string(&args.request).with_context(|| format!("reading {}", args.request.display()))?;
    let role = if args.aggregator { tls::Role::Aggregator } else { tls::Role::Hospital };
    let (name, cert, fingerprint) = tls::sign_request(&args.ca, &request, role)?;
    let out = args.out.unwrap_or_else(|| args.request.with_file_name(format!("{name}.pem")));
    std::fs::write(&out, cert).with_context(|| format!("writing {}", out.display()))?;
    if role == tls::Role::Aggregator {
        println!("signed the aggregator's server certificate for {name}: {}", out.display());
        println!("hospitals connect to it with server_name = \"{name}\"");
        return Ok(());
    }
    println!("signed {name}'s certificate: {}", out.display());
    println!("its roster line (check the fingerprint with the hospital before anyone pins it):");
    println!("{name} = \"{fingerprint}\"");
    Ok(())
}
