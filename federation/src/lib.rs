//! # fedcare-federation
//!
//! The federation's two roles under one import path, for the `fedcare` binary, the Python
//! package and the tests: the pure protocol ([`fedcare_protocol`], as [`protocol`], with its
//! [`convert`], [`coordinator`], [`output`], [`selection`], [`transcript`] and [`transfer`]
//! modules), the aggregator's shell ([`fedcare_aggregator`]: [`server`], [`listener`],
//! [`health`], [`metrics`], [`persistence`], [`exploration`]), the hospital's shell
//! ([`fedcare_hospital`], as [`hospital`], with its [`participant`] and ledger file), what both
//! shells share ([`fedcare_net`]: [`error`], [`tls`], [`identity`], [`signing`]), one
//! [`config`] module for both roles' files, and a whole federation on one machine
//! ([`simulation`]), which needs both roles and so lives here, above them.
//!
//! Guarantees: those of the crates it gathers. The aggregator's crate never depends on patient
//! data (`cargo tree -p fedcare-aggregator` has no `fedcare-data`; CI checks it); this facade
//! does, through the hospital's.
#![forbid(unsafe_code)]

pub mod simulation;

pub use fedcare_aggregator::{health, listener, metrics, persistence, server, tensorboard, tracking};
pub use fedcare_hospital::{self as hospital, participant};
pub use fedcare_net::{error, identity, signing};
pub use fedcare_protocol::{self as protocol, convert, coordinator, output, selection, transcript, transfer};

pub use error::{FederationError, Refusal, Result};

/// Both roles' configuration files: the aggregator's ([`fedcare_aggregator::config`]) and a
/// hospital's ([`fedcare_hospital::config`]), and what they share.
pub mod config {
    pub use fedcare_aggregator::config::*;
    pub use fedcare_hospital::config::{HospitalConfig, TrainerChoice, load_roster};

    /// The shape of `schema` as the aggregator's configuration takes it
    /// ([`AggregatorConfig::apply_schema`]): read here, where the schema is, so that the
    /// aggregator's crate never depends on the patient-data crate.
    pub fn schema_shape(schema: &fedcare_data::Schema) -> SchemaShape {
        SchemaShape {
            id: schema.id.clone(),
            width: schema.width(),
            numeric: schema.numeric.len(),
            numeric_edges: schema.numeric.iter().map(|c| c.edges.clone().unwrap_or_default()).collect(),
            top_k: schema.top_k_shapes(),
            explore: schema.explore_columns(),
            label: schema.label_description(),
            subgroups: schema.subgroups.clone(),
        }
    }
}

/// mTLS ([`fedcare_net::tls`]) and a development hospital's trust in its PKI
/// ([`fedcare_hospital::participant::dev_trust`]).
pub mod tls {
    pub use fedcare_hospital::participant::dev_trust;
    pub use fedcare_net::tls::*;
}

/// An exploration's report on disk ([`fedcare_aggregator::exploration`]) and a hospital's report
/// of its own table ([`fedcare_hospital::exploration::local_report`]).
pub mod exploration {
    pub use fedcare_aggregator::exploration::*;
    pub use fedcare_hospital::exploration::local_report;
}
