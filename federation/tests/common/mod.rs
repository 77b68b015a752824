//! What the end-to-end tests share: the configuration of a small test federation.

use std::path::Path;

use fedcare_federation::config::{AggregatorConfig, ModelConfig, ServerRule, TlsFiles, TrainingSettings};
use fedcare_federation::tls;

/// Federation "test" of `names` (logistic regression on 16 features, one round, at least two
/// hospitals), writing to `out`, with the aggregator's certificate from the PKI in `pki`.
pub(crate) fn plan(names: &[String], join_timeout_secs: u64, out: &Path, pki: &Path) -> AggregatorConfig {
    AggregatorConfig {
        privacy: None,
        federation_id: "test".into(),
        listen: "127.0.0.1:0".into(),
        hospitals: names.to_vec(),
        min_hospitals: 2,
        rounds: 1,
        patience: None,
        phase_timeout_secs: 60,
        join_timeout_secs,
        out_dir: out.to_path_buf(),
        seed: 0,
        crypto_threads: None,
        eval_bins: 8,
        schema_id: "test".into(),
        numeric_features: 0,
        top_k: Vec::new(),
        schema: None,
        top_k_key_fingerprint: None,
        model: ModelConfig { input_width: 16, hidden: vec![], kind: Default::default() },
        boosting: Default::default(),
        numeric_edges: Vec::new(),
        training: TrainingSettings::default(),
        server: ServerRule::default(),
        tls: TlsFiles {
            ca: pki.join(tls::files::CA_CERT),
            cert: pki.join(tls::files::SERVER_CERT),
            key: pki.join(tls::files::SERVER_KEY),
        },
        operations: Default::default(),
        job: Default::default(),
        explore: Default::default(),
        evaluation: Default::default(),
        tracking: Default::default(),
    }
}
