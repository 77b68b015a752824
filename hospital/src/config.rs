//! A hospital's configuration (`hospital.toml`), the roster it pins and its privacy budget.
//!
//! `hospital.toml`: `aggregator = "https://localhost:50051"`, `server_name = "localhost"`,
//! `federation_id` and `job = "train"` (or "explore": the federation and job this hospital agreed
//! to; another is refused), `[tls] ca, cert, key`, `trainer = "auto"` (or "gpu", "cpu"), optional
//! `schema = "diabetes130"`, `top_k_key` (the file of the consortium's `top_k` key) and `bad_rows_limit = 100`, `state_dir = "fedcare-hospital"` (its
//! ledger: releases, privacy charges and endorsements, kept across federations), `crypto_threads` (the encrypted path's threads; default one per core,
//! results the same whatever the number), `train_threads` (the CPU trainer's; the same), and `[consortium]`: the hospital's own roster (`members`: certificate
//! name = key fingerprint, as `fedcare keygen` prints them) and its bounds (`min_hospitals = 2`,
//! `max_rounds = 10000`, `max_attempts = 16`, `max_params = 16777216`, `max_epochs = 100`, and
//! optionally `max_epsilon`: the most ε its patients may spend over all its federations, by its
//! ledger, with `max_delta`; see [`Consortium`]). `examples/` holds both files with every
//! key explained. Unknown keys and unknown names are refused with the list of valid ones.
//!
//!
//! The keys an environment variable may replace are [`HospitalConfig`]'s [`EnvOverrides`].

use std::path::{Path, PathBuf};

pub use fedcare_net::config::{
    EnvKey, EnvOverrides, EnvValue, TlsFiles, env_key, load, load_with_env, load_with_overrides,
};
pub use fedcare_protocol::JobKind;
pub use fedcare_protocol::roster::Consortium;
use serde::{Deserialize, Serialize};

use crate::error::{FederationError, Result};

fn default_federation_id() -> String {
    "fedcare".into()
}

/// Which trainer a hospital uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainerChoice {
    /// With a hardware adapter, the faster of the GPU and the CPU on the federation's model and
    /// batch, measured at the first training; the CPU otherwise.
    #[default]
    Auto,
    /// The GPU (any adapter, a software one included).
    Gpu,
    /// The CPU.
    Cpu,
}

/// `hospital.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HospitalConfig {
    /// The aggregator's URL.
    #[serde(default = "default_aggregator")]
    pub aggregator: String,
    /// The name the aggregator's certificate must carry.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// Federation to join: a federation of another id is refused, whatever the aggregator says
    /// (this hospital's ledger and privacy budget are kept under it).
    #[serde(default = "default_federation_id")]
    pub federation_id: String,
    /// The job this hospital agreed to (`"train"`, the default, or `"explore"`): a federation of
    /// the other job is refused.
    #[serde(default)]
    pub job: JobKind,
    /// The local trainer.
    #[serde(default)]
    pub trainer: TrainerChoice,
    /// The data's schema (`"diabetes130"`, `"diabetes130-all"` or a schema TOML path); absent:
    /// a numeric CSV with a 0/1 `label` column, used as it is.
    #[serde(default)]
    pub schema: Option<String>,
    /// The file holding the consortium's `top_k` key (64 hex digits; `fedcare top-k-key` writes
    /// one): every hospital of the consortium has the same, the aggregator only its fingerprint.
    /// Absent: the `top_k` columns' buckets are an unkeyed hash anyone can compute.
    #[serde(default)]
    pub top_k_key: Option<PathBuf>,
    /// Bad rows skipped (and counted) before the file is refused; 0 refuses at the first.
    #[serde(default = "default_bad_rows")]
    pub bad_rows_limit: usize,
    /// Threads of the encrypted path (encryption, decryption share); `None`: one per core. The
    /// results are the same whatever the number.
    #[serde(default)]
    pub crypto_threads: Option<core::num::NonZeroUsize>,
    /// Threads of the CPU trainer (the parts of each batch's gradient); `None`: one per core.
    /// The trained model is the same whatever the number.
    #[serde(default)]
    pub train_threads: Option<core::num::NonZeroUsize>,
    /// Where this hospital keeps its state: the decryption ledger.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// The consortium this hospital pins.
    pub consortium: Consortium,
    /// TLS material (its key is also the hospital's signing key).
    pub tls: TlsFiles,
}

fn default_state_dir() -> PathBuf {
    "fedcare-hospital".into()
}

/// A roster from a file: a `members.toml` (`name = "sha256:…"` lines, as `fedcare certs`
/// writes it) or a hospital's configuration (its `[consortium]`).
pub fn load_roster(path: &Path) -> Result<Consortium> {
    #[derive(Deserialize)]
    struct WithConsortium {
        consortium: Consortium,
    }
    let text =
        std::fs::read_to_string(path).map_err(|source| FederationError::Read { path: path.to_path_buf(), source })?;
    if let Ok(hospital) = toml::from_str::<WithConsortium>(&text) {
        return Ok(hospital.consortium);
    }
    toml::from_str(&text).map(Consortium::new).map_err(|e| FederationError::ConfigFile {
        path: path.to_path_buf(),
        message: format!("neither a members.toml nor a hospital configuration with [consortium]: {e}"),
    })
}

fn default_aggregator() -> String {
    "https://localhost:50051".into()
}
fn default_server_name() -> String {
    "localhost".into()
}
fn default_bad_rows() -> usize {
    100
}

impl HospitalConfig {
    /// The federation and job this hospital agreed to.
    pub fn agreement(&self) -> fedcare_protocol::Agreement {
        fedcare_protocol::Agreement { federation_id: self.federation_id.clone(), job: self.job }
    }
}

impl EnvOverrides for HospitalConfig {
    const ENV: &'static [EnvKey] = &[
        env_key("FEDCARE_FEDERATION_ID", "federation_id", EnvValue::Text),
        env_key("FEDCARE_AGGREGATOR", "aggregator", EnvValue::Text),
        env_key("FEDCARE_SERVER_NAME", "server_name", EnvValue::Text),
        env_key("FEDCARE_STATE_DIR", "state_dir", EnvValue::Text),
    ];
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use fedcare_aggregator::config::AggregatorConfig;

    use super::*;
    use crate::protocol::{FederationSettings, Privacy, SessionKind, TrustError};

    /// An aggregator's configuration of two hospitals (the settings hospitals receive come from
    /// its plan).
    fn aggregator(extra: &str) -> core::result::Result<AggregatorConfig, toml::de::Error> {
        toml::from_str(&format!(
            "hospitals = [\"a\", \"b\"]\n{extra}\n[model]\ninput_width = 6\n\
             [tls]\nca = \"ca.pem\"\ncert = \"a.pem\"\nkey = \"a.key\"\n"
        ))
    }

    #[test]
    fn a_hospital_charges_every_release_and_refuses_one_past_its_budget_or_without_privacy() {
        let plan = aggregator("rounds = 10\n[privacy]\nnoise_multiplier = 1.0").unwrap().plan().unwrap();
        let settings = fedcare_protocol::convert::settings_from_proto(&fedcare_protocol::convert::settings_to_proto(
            &plan.settings,
        ))
        .unwrap();
        assert_eq!(settings, plan.settings, "the settings travel to the hospitals whole");
        assert_eq!(settings.layout.bins, 16, "with the evaluation's bins under pooled noise");
        let mut consortium = Consortium::new(BTreeMap::new());
        let charge = |consortium: &Consortium, settings: &FederationSettings, kind, round, spent| {
            consortium.privacy_charge(settings, kind, round, spent)
        };
        assert_eq!(charge(&consortium, &settings, SessionKind::Train, 10, 0.0), Ok(None), "no budget, no charge");
        let privacy = settings.privacy.unwrap();
        consortium.max_epsilon = Some((privacy.epsilon_after(3, 1) + privacy.epsilon_after(4, 1)) / 2.0);
        // Each release is charged the federation's ε once it is out: the setup's (with the final
        // evaluation's statistics, counted from the start), each round's, the evaluation's.
        let charged = charge(&consortium, &settings, SessionKind::Train, 3, 0.0).unwrap();
        assert_eq!(charged, Some(privacy.epsilon_after(3, 1)));
        assert_eq!(
            charge(&consortium, &settings, SessionKind::Setup, 0, 0.0).unwrap(),
            Some(privacy.epsilon_after(0, 1))
        );
        assert_eq!(charge(&consortium, &settings, SessionKind::Evaluate, 4, 0.0).unwrap(), charged);
        let error = charge(&consortium, &settings, SessionKind::Train, 4, 0.0).unwrap_err();
        assert!(matches!(error, TrustError::PrivacyBudget { round: 4, spent: 0.0, .. }), "{error}");
        // What earlier federations spent counts: round 3 no longer fits after one round elsewhere.
        let spent = privacy.epsilon_after(1, 1);
        let error = charge(&consortium, &settings, SessionKind::Train, 3, spent).unwrap_err().to_string();
        assert!(error.contains("training round 3") && error.contains("spent in earlier federations"), "{error}");
        let plain = aggregator("").unwrap().plan().unwrap();
        let plain = plain.settings;
        let error = charge(&consortium, &plain, SessionKind::Train, 1, 0.0).unwrap_err();
        assert!(matches!(error, TrustError::PrivacyBudget { epsilon, .. } if epsilon.is_infinite()), "{error}");
        // The setup's exact counts are refused too, and the message names the setup session.
        let error = charge(&consortium, &plain, SessionKind::Setup, 0, 0.0).unwrap_err().to_string();
        assert!(error.contains("the setup session's pooled counts"), "{error}");
        // With pooled noise the setup alone spends some ε.
        assert!(privacy.pooled.is_some() && privacy.epsilon_after(0, 1) > 0.0);
        // Attack 5: ε at the aggregator's δ close to 1, or with the pooled statistics exact,
        // bounds nothing: refused by name whatever the round.
        let mut loose = settings.clone();
        loose.privacy = Some(Privacy { delta: 0.5, ..privacy });
        let error = charge(&consortium, &loose, SessionKind::Train, 1, 0.0).unwrap_err().to_string();
        assert!(error.contains("above its max_delta of 1e-5"), "{error}");
        loose.privacy = Some(Privacy { pooled: None, ..privacy });
        let error = charge(&consortium, &loose, SessionKind::Setup, 0, 0.0).unwrap_err().to_string();
        assert!(error.contains("pooled_noise = 0"), "{error}");
        // Less pooled noise than the hospital's own floor (the final evaluation's here: 12).
        consortium.min_pooled_noise = 20.0;
        let error = charge(&consortium, &settings, SessionKind::Setup, 0, 0.0).unwrap_err().to_string();
        assert!(error.contains("evaluation_noise 12") && error.contains("min_pooled_noise of 20"), "{error}");
        consortium.min_pooled_noise = 12.0;
        assert!(charge(&consortium, &settings, SessionKind::Setup, 0, 0.0).is_ok());
        // An exploration without noise releases exact counts: refused under a budget.
        let mut explore = settings.clone();
        explore.job = fedcare_protocol::Job::Explore { min_cell: 10, label: "readmitted = <30".into(), noise: None };
        let error = charge(&consortium, &explore, SessionKind::Setup, 0, 0.0).unwrap_err().to_string();
        assert!(error.contains("an exploration without noise releases exact counts"), "{error}");
        // With noise it is charged at the hospital's own δ: the setup's statistics, then the
        // exploration's as well; below the hospital's noise floor it is refused.
        let noise = fedcare_protocol::ExploreNoise { multiplier: 12.0, rows_per_patient: 2 };
        explore.job = fedcare_protocol::Job::Explore { min_cell: 10, label: "positive".into(), noise: Some(noise) };
        let setup = u64::from(explore.layout.setup_statistics());
        let explored = setup + u64::from(explore.layout.explore_statistics());
        let setup_charge = noise.epsilon(setup, consortium.max_delta);
        assert_eq!(charge(&consortium, &explore, SessionKind::Setup, 0, 0.0), Ok(Some(setup_charge)));
        let explore_charge = noise.epsilon(explored, consortium.max_delta);
        assert!(explore_charge > setup_charge && setup_charge > 0.0);
        assert_eq!(charge(&consortium, &explore, SessionKind::Explore, 1, 0.0), Ok(Some(explore_charge)));
        let spent = consortium.max_epsilon.unwrap() - explore_charge / 2.0;
        let error = charge(&consortium, &explore, SessionKind::Explore, 1, spent).unwrap_err();
        assert!(matches!(error, TrustError::PrivacyBudget { kind: SessionKind::Explore, .. }), "{error}");
        consortium.min_pooled_noise = 13.0;
        let error = charge(&consortium, &explore, SessionKind::Setup, 0, 0.0).unwrap_err().to_string();
        assert!(error.contains("noise 12 is below its min_pooled_noise of 13"), "{error}");
    }

    #[test]
    fn the_example_configuration_parses() {
        let hospital: HospitalConfig = toml::from_str(include_str!("../../examples/hospital.toml")).unwrap();
        assert_eq!(hospital.trainer, TrainerChoice::Auto);
        assert_eq!(hospital.consortium.members.len(), 3);
        assert_eq!(hospital.consortium.min_hospitals, 3);
        assert_eq!(hospital.crypto_threads, None, "one thread per core");
        assert_eq!(hospital.agreement(), fedcare_protocol::Agreement::train("fedcare-demo"));
        let explore = include_str!("../../examples/hospital.toml").replace(r#"job = "train""#, r#"job = "explore""#);
        assert_eq!(toml::from_str::<HospitalConfig>(&explore).unwrap().job, JobKind::Explore);
        let error = toml::from_str::<HospitalConfig>(&explore.replace(r#""explore""#, r#""learn""#)).unwrap_err();
        assert!(error.to_string().contains("train") && error.to_string().contains("explore"), "{error}");
        let text = include_str!("../../examples/hospital.toml").replace("# crypto_threads = 8", "crypto_threads = 3");
        let hospital: HospitalConfig = toml::from_str(&text).unwrap();
        assert_eq!(hospital.crypto_threads.map(core::num::NonZeroUsize::get), Some(3));
        let error = toml::from_str::<HospitalConfig>(&text.replace("crypto_threads = 3", "crypto_threads = 0"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("crypto_threads") && error.contains("nonzero"), "{error}");
    }

    #[test]
    fn a_hospital_config_refuses_an_unknown_trainer_and_a_bad_fingerprint() {
        let roster =
            "[consortium.members]\nh = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\n";
        let text = format!("[tls]\nca = \"ca.pem\"\ncert = \"h.pem\"\nkey = \"h.key\"\n{roster}");
        let config: HospitalConfig = toml::from_str(&text).unwrap();
        assert_eq!(config.trainer, TrainerChoice::Auto);
        assert_eq!(config.consortium.max_attempts, crate::protocol::MAX_ATTEMPTS);
        let error = toml::from_str::<HospitalConfig>(&text.replace("sha256:00", "sha256:zz")).unwrap_err().to_string();
        assert!(error.contains("not a key fingerprint"), "{error}");
        let text = text.as_str();
        let error = toml::from_str::<HospitalConfig>(&format!("trainer = \"tpu\"\n{text}")).unwrap_err().to_string();
        assert!(error.contains("auto") && error.contains("gpu") && error.contains("cpu"), "{error}");
    }
}
