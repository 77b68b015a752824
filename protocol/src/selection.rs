//! Model selection across rounds: the federation keeps the best model so far by the secure
//! held-out AUROC, and hands that one out at the end, not merely the last.
//!
//! Every training round evaluates the global model it starts from on every hospital's held-out
//! rows (under the same encryption as the update), and the final evaluation scores the last
//! one. The best of those models, with its metrics and its Platt scaling, is part of the
//! federation state the server carries across rounds ([`ServerState`]), beside the server
//! optimizer's: the aggregator and every hospital update it with the same rule on the same
//! checked sums ([`crate::output::session_output`]), its bytes are covered by the state digest
//! every hospital endorses, and a hospital that joins late or missed sessions receives it with
//! the rest of the state. No hospital's validation rows leave it: only the pooled score
//! histogram is decrypted. With a `patience`, training stops once that many evaluations in a row
//! found nothing better ([`training_ends`]).
//!
//! Under differential privacy with noisy pooled statistics the training rounds are not
//! evaluated (a noisy evaluation each round would spend ε and choose by its noise): the only
//! evaluation is the final one, so the model handed out is the last.

use fedcare_core::{Platt, ServerOptimizer, ServerOptimizerConfig};
use serde::{Deserialize, Serialize};

use crate::error::InvalidServerState;
use crate::record::RoundRecord;

/// What the server carries from one session to the next: the server optimizer's state and the
/// best model so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerState {
    /// The server optimizer (FedAvg's is empty; FedAdam's holds its moments).
    pub optimizer: ServerOptimizer,
    /// The best model evaluated so far; `None` before the first evaluation.
    pub best: Option<BestModel>,
    /// Training rounds whose sum may have been decrypted so far: after training round `r`, `r`
    /// (a round given up once its decryption opened counts too). DP-SGD's ε is that of these
    /// rounds.
    pub released_rounds: u32,
    /// A boosting federation's trees (`None`: the global parameters are the model).
    pub boosting: Option<crate::boosting::BoostingState>,
}

/// The best model evaluated so far and what its evaluation found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestModel {
    /// Training rounds the model had (0: the initial model).
    pub trained_rounds: u32,
    /// Its AUROC on all held-out rows (binned scores).
    pub auroc: f64,
    /// Its AUPRC on the same rows.
    pub auprc: Option<f64>,
    /// Its Platt scaling, fitted to the same score histogram.
    pub platt: Option<Platt>,
    /// Its parameters.
    pub params: Vec<f32>,
}

impl ServerState {
    /// The state before the first session.
    pub fn new(config: ServerOptimizerConfig, len: usize) -> fedcare_core::Result<Self> {
        Ok(Self { optimizer: ServerOptimizer::new(config, len)?, best: None, released_rounds: 0, boosting: None })
    }

    /// Checks a relayed state against the agreed rule and model size: the optimizer's state
    /// fits, and the best model has as many finite parameters and an AUROC in [0, 1].
    pub fn check(&self, config: ServerOptimizerConfig, len: usize) -> Result<(), InvalidServerState> {
        self.optimizer.check(config, len).map_err(InvalidServerState::Optimizer)?;
        if let Some(best) = &self.best {
            if best.params.len() != len {
                return Err(InvalidServerState::BestLength { got: best.params.len(), expected: len });
            }
            if !best.params.iter().all(|p| p.is_finite()) {
                return Err(InvalidServerState::BestNotFinite);
            }
            if !(0.0..=1.0).contains(&best.auroc) {
                return Err(InvalidServerState::BestAuroc(best.auroc));
            }
        }
        Ok(())
    }

    /// Takes `params` (after `trained_rounds` rounds), scored by the session `record` describes,
    /// as the best model when its AUROC beats the best so far's (on a tie the earlier model
    /// stays; a model without an AUROC never does).
    pub fn consider(&mut self, trained_rounds: u32, params: &[f32], record: &RoundRecord) {
        let Some(auroc) = record.auroc else { return };
        if self.best.as_ref().is_some_and(|best| !better(record, best.auroc)) {
            return;
        }
        self.best = Some(BestModel {
            trained_rounds,
            auroc,
            auprc: record.auprc,
            platt: record.platt,
            params: params.to_vec(),
        });
    }
}

/// Whether training ends after training session `round` completed: it was the last of `rounds`,
/// or the last `patience` evaluations (of the models after `best_trained_rounds + 1` to
/// `round − 1` training rounds) found no better AUROC than the best model's. The next session
/// is then the final evaluation, of the last model.
pub fn training_ends(round: u32, rounds: u32, patience: Option<u32>, best_trained_rounds: Option<u32>) -> bool {
    round >= rounds
        || patience
            .zip(best_trained_rounds)
            .is_some_and(|(patience, best)| round.saturating_sub(1).saturating_sub(best) >= patience)
}

/// Whether the model `record` evaluated beats a best model of AUROC `best`: a higher AUROC (on a
/// tie the earlier model stays). A model without an AUROC (held-out rows of one class only) never
/// does.
fn better(record: &RoundRecord, best: f64) -> bool {
    record.auroc.is_some_and(|auroc| auroc > best)
}

/// The record of the evaluation whose model a federation with these completed sessions keeps
/// (the rule of [`ServerState::consider`]); `None` before any evaluation. What `metrics.jsonl`
/// alone tells of the model file.
pub fn kept_record(records: &[RoundRecord]) -> Option<&RoundRecord> {
    records.iter().fold(None, |kept, record| match kept {
        Some(kept) if !kept.auroc.is_some_and(|best| better(record, best)) => Some(kept),
        _ if record.auroc.is_some() => Some(record),
        _ => kept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{SessionId, SessionKind};

    fn record(round: u32, auroc: Option<f64>) -> RoundRecord {
        let kind = if round == 4 { SessionKind::Evaluate } else { SessionKind::Train };
        RoundRecord { auroc, ..RoundRecord::new(SessionId { round, attempt: 0 }, kind, 3) }
    }

    #[test]
    fn the_best_auroc_is_kept_the_earlier_on_a_tie_and_the_records_tell_the_same() {
        let config = ServerOptimizerConfig::default();
        let mut state = ServerState::new(config, 2).unwrap();
        let records =
            [record(0, None), record(1, Some(0.6)), record(2, Some(0.7)), record(3, Some(0.7)), record(4, None)];
        for record in &records {
            let params = [record.round as f32; 2];
            state.consider(record.round.saturating_sub(1), &params, record);
        }
        let best = state.best.as_ref().unwrap();
        assert_eq!((best.trained_rounds, best.auroc, best.params.as_slice()), (1, 0.7, &[2.0f32, 2.0][..]));
        assert_eq!(kept_record(&records).map(|r| r.round), Some(2));
        assert_eq!(kept_record(&records[..1]), None);
        state.check(config, 2).unwrap();
    }

    #[test]
    fn training_ends_at_the_last_round_or_after_patience_evaluations_without_a_better_model() {
        // Without a patience: only the last of the rounds ends it.
        assert!(!training_ends(9, 10, None, Some(0)));
        assert!(training_ends(10, 10, None, Some(9)));
        // Best after 8 rounds: sessions 10..=18 evaluated the models after 9..=17 rounds, nine
        // without a better one; session 19's evaluation is the tenth.
        assert!(!training_ends(18, 200, Some(10), Some(8)));
        assert!(training_ends(19, 200, Some(10), Some(8)));
        // A better model resets the count; without any evaluated model patience never ends it.
        assert!(!training_ends(19, 200, Some(10), Some(15)));
        assert!(!training_ends(150, 200, Some(10), None));
        assert!(training_ends(200, 200, Some(10), None));
    }

    #[test]
    fn a_relayed_state_with_a_bad_best_model_is_refused() {
        let config = ServerOptimizerConfig::default();
        let good = BestModel { trained_rounds: 1, auroc: 0.7, auprc: None, platt: None, params: vec![0.5, 1.0] };
        let with = |best: BestModel| ServerState { best: Some(best), ..ServerState::new(config, 2).unwrap() };
        assert!(with(good.clone()).check(config, 2).is_ok());
        let short = with(BestModel { params: vec![0.5], ..good.clone() }).check(config, 2).unwrap_err();
        assert_eq!(short, InvalidServerState::BestLength { got: 1, expected: 2 });
        assert!(short.to_string().contains("1 parameters, the model 2"), "{short}");
        let nan = with(BestModel { params: vec![f32::NAN, 1.0], ..good.clone() }).check(config, 2).unwrap_err();
        assert_eq!(nan, InvalidServerState::BestNotFinite);
        let auroc = with(BestModel { auroc: 1.5, ..good }).check(config, 2).unwrap_err();
        assert_eq!(auroc, InvalidServerState::BestAuroc(1.5));
        assert!(auroc.to_string().contains("outside [0, 1]"), "{auroc}");
    }
}
