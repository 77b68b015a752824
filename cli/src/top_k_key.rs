//! The consortium's `top_k` key on the command line: `fedcare top-k-key` makes one, and the
//! commands that read data in a schema with `top_k` columns take it (`--top-k-key FILE`, or
//! `top_k_key` in hospital.toml) — see `fedcare_data::top_k`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use fedcare_data::Schema;
use fedcare_data::top_k::BucketKey;

/// `fedcare top-k-key`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to write the new key (64 hex digits, mode 0600; an existing file is never
    /// overwritten).
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let key = BucketKey::generate()?;
    fedcare_federation::tls::write_private(&args.out, &format!("{}\n", key.to_hex()))?;
    println!("wrote the consortium's top_k key to {}", args.out.display());
    println!("give it (over a secure channel) to every hospital: top_k_key = {:?} in its hospital.toml", args.out);
    println!("never to the aggregator; its aggregator.toml takes the fingerprint only:");
    println!("top_k_key_fingerprint = \"{}\"", key.fingerprint());
    Ok(())
}

/// The schema `name` names, its `top_k` columns hashed under the key in `key` when given; says
/// on stderr when a schema with `top_k` columns is read without a key.
pub(crate) fn schema(name: &str, key: Option<&Path>) -> Result<Schema> {
    let schema = Schema::by_name(name)?;
    match key {
        Some(path) => Ok(schema.with_bucket_key(BucketKey::read(path).context("the top_k key")?)),
        None => Ok(schema),
    }
}

/// Warns that `schema`'s `top_k` buckets are an unkeyed hash, when it has `top_k` columns and no
/// key: their pooled counts can be read by hashing a dictionary of codes.
pub(crate) fn warn_if_unkeyed(schema: &Schema) {
    if schema.bucket_key.is_none() && !schema.top_k_shapes().is_empty() {
        tracing::warn!(
            schema = %schema.id,
            "no top_k_key: the top_k columns' pooled bucket counts are an unkeyed hash that anyone, the aggregator \
             included, can match to codes; make a key with `fedcare top-k-key` and give it to every hospital"
        );
    }
}
