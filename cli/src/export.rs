//! `fedcare export`: a model file as an ONNX graph, for scoring in any ONNX runtime (a
//! hospital's Java or C# service): `Gemm` and `Relu` layers, the model's Platt scaling and a
//! `Sigmoid`, on the encoded inputs; the schema, the input names and the feature scaling in its
//! metadata (`fedcare-onnx` documents the graph and the keys).

use std::path::PathBuf;

use anyhow::Result;
use fedcare_data::predict::{check_model_fits, read_model_file};
use fedcare_federation::persistence::write_atomically;

/// `fedcare export`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model file.
    model: PathBuf,
    /// Where to write the ONNX graph (replaced atomically).
    #[arg(long)]
    onnx: PathBuf,
    /// The model's schema, which names its inputs: diabetes130, diabetes130-all or a schema
    /// TOML path.
    #[arg(long, default_value = "diabetes130")]
    schema: String,
    /// The file of the consortium's top_k key, for a model trained under one.
    #[arg(long)]
    top_k_key: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let model = read_model_file(&args.model)?;
    let schema = crate::top_k_key::schema(&args.schema, args.top_k_key.as_deref())?;
    check_model_fits(&model, &schema)?;
    let bytes = fedcare_onnx::export(&model, Some(&schema.feature_names()))?;
    write_atomically(&args.onnx, &bytes)?;
    println!(
        "wrote {} ({} bytes): input {:?} ({} encoded values per row), output {:?}, opset {}",
        args.onnx.display(),
        bytes.len(),
        fedcare_onnx::INPUT,
        model.spec.input_width(),
        fedcare_onnx::OUTPUT,
        fedcare_onnx::OPSET
    );
    Ok(())
}
