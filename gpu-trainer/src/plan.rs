//! DP-SGD's epochs as the kernels read them: every step's patient batch laid out in the `order`
//! buffer (see `private.wgsl`).
//!
//! Layout of one epoch of `S` steps, in words: `S` pairs (first position, rows) — a step's
//! first position counts from the buffer's start; then the dataset rows of every step, one after
//! the other, with room for the largest epoch (`R` rows); then, for every position `p` below
//! `2S + R`, the pair (first, end) of the positions of its patient, relative to its step's first
//! position (unused below `2S`). Every epoch of a run has the same layout, so the kernels' offsets
//! are fixed for the run.

use fedcare_core::privacy::batches::PatientBatch;

use crate::error::{GpuError, Result};
use crate::workspace::check_u32;

/// One epoch's patient batches.
#[derive(Debug, Clone, Default)]
pub(crate) struct EpochPlan {
    /// Dataset rows of every step, step after step.
    pub(crate) rows: Vec<u32>,
    /// Per step: (index of its first row in `rows`, its number of rows).
    pub(crate) steps: Vec<(u32, u32)>,
    /// Per row of `rows`: its patient's (first, end) rows relative to its step's first row.
    patients: Vec<(u32, u32)>,
}

impl EpochPlan {
    /// Appends the next step's batch.
    pub(crate) fn push(&mut self, batch: &PatientBatch) {
        self.steps.push((self.rows.len() as u32, batch.rows.len() as u32));
        self.rows.extend_from_slice(&batch.rows);
        for patient in &batch.patients {
            let range = (patient.start as u32, patient.end as u32);
            self.patients.extend(core::iter::repeat_n(range, patient.len()));
        }
    }

    /// The words of the `order` buffer for this epoch under `layout`.
    pub(crate) fn words(&self, layout: &PlanLayout) -> Vec<u32> {
        let mut words = vec![0u32; layout.words];
        let first_row = 2 * layout.steps as u32;
        for (step, &(start, rows)) in self.steps.iter().enumerate() {
            words[2 * step] = first_row + start;
            words[2 * step + 1] = rows;
        }
        let rows_at = first_row as usize;
        words[rows_at..rows_at + self.rows.len()].copy_from_slice(&self.rows);
        for (index, &(first, end)) in self.patients.iter().enumerate() {
            let at = layout.patients_offset as usize + 2 * (rows_at + index);
            words[at] = first;
            words[at + 1] = end;
        }
        words
    }
}

/// The sizes every epoch of a run shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanLayout {
    /// Steps per epoch.
    steps: usize,
    /// Where the patients' ranges start.
    pub(crate) patients_offset: u32,
    /// Words of the whole plan.
    pub(crate) words: usize,
    /// Rows of the largest step: the workspace's batch size.
    pub(crate) largest_step: usize,
}

impl PlanLayout {
    /// The layout that holds each of `plans` (of `steps` steps each).
    pub(crate) fn of(plans: &[EpochPlan], steps: usize) -> Result<Self> {
        let rows = plans.iter().map(|p| p.rows.len()).max().unwrap_or(0);
        let largest_step = plans.iter().flat_map(|p| &p.steps).map(|&(_, rows)| rows as usize).max().unwrap_or(0);
        let positions = 2 * steps + rows;
        let words = positions + 2 * positions;
        check_u32("the words of an epoch's batch plan", words)?;
        Ok(Self { steps, patients_offset: positions as u32, words, largest_step })
    }
}

/// Refuses a batch whose rows are not rows of a `rows`-row dataset, or whose patients' ranges do
/// not cover its rows in order.
pub(crate) fn check_patient_batch(batch: &PatientBatch, rows: usize) -> Result<()> {
    let mut next = 0;
    for patient in &batch.patients {
        if patient.start != next || patient.end <= patient.start {
            return Err(GpuError::Unsupported(format!(
                "patient ranges must cover the batch's rows in order; found {patient:?} at row {next}"
            )));
        }
        next = patient.end;
    }
    if batch.rows.is_empty() || next != batch.rows.len() || batch.rows.iter().any(|&r| r as usize >= rows) {
        return Err(GpuError::Unsupported(format!(
            "a batch of {} rows ({} in patients) naming rows of a {rows}-row dataset",
            batch.rows.len(),
            next
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // lists of patients' ranges
    fn every_epoch_fits_the_layout_and_positions_find_their_patient() {
        let batch = |rows: &[u32], patients: &[core::ops::Range<usize>]| PatientBatch {
            rows: rows.to_vec(),
            patients: patients.to_vec(),
        };
        let mut first = EpochPlan::default();
        first.push(&batch(&[4, 9, 2], &[0..2, 2..3]));
        first.push(&batch(&[], &[]));
        let mut second = EpochPlan::default();
        second.push(&batch(&[7], &[0..1]));
        second.push(&batch(&[1, 3, 5, 6], &[0..1, 1..4]));
        let plans = [first, second];
        let layout = PlanLayout::of(&plans, 2).unwrap();
        assert_eq!((layout.largest_step, layout.patients_offset, layout.words), (4, 9, 27));
        let words = plans[1].words(&layout);
        assert_eq!(&words[..4], &[4, 1, 5, 4], "steps start after the 4 plan words");
        assert_eq!(&words[4..9], &[7, 1, 3, 5, 6]);
        // Position 7 (dataset row 5) is in step 1 (base 5) at row 2: patient rows 1..4.
        assert_eq!(&words[9 + 2 * 7..9 + 2 * 7 + 2], &[1, 4]);
        assert_eq!(plans[0].words(&layout).len(), layout.words);
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // lists of patients' ranges
    fn malformed_batches_are_refused() {
        let ok = PatientBatch { rows: vec![0, 1, 2], patients: vec![0..1, 1..3] };
        check_patient_batch(&ok, 3).unwrap();
        for (rows, patients, data_rows) in [
            (vec![0, 1, 2], vec![0..1, 2..3], 3),
            (vec![0, 1, 2], vec![0..1], 3),
            (vec![0, 1, 5], vec![0..3], 3),
            (vec![], vec![], 3),
        ] {
            assert!(check_patient_batch(&PatientBatch { rows, patients }, data_rows).is_err());
        }
    }
}
