//! Which dataset rows a DP-SGD step takes: the rows of every patient [`sample_patients`] draws
//! for the step, patient after patient, with each patient's range among them.
//!
//! Both trainers build their batches here, so the CPU and the GPU train on the same patients for
//! the same key; a patient's rows are always contiguous in a batch, which is what per-patient
//! clipping needs.

use alloc::vec::Vec;
use core::ops::Range;

use super::noise::{NoiseKey, sample_patients};
use crate::dataset::{Dataset, GroupRows};

/// One step's batch: dataset rows, and each sampled patient's range of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientBatch {
    /// Dataset rows, patient after patient.
    pub rows: Vec<u32>,
    /// The range of [`rows`](Self::rows) each sampled patient's rows take, in order.
    pub patients: Vec<Range<usize>>,
}

/// The batches of DP-SGD on one dataset under one key.
#[derive(Debug, Clone)]
pub struct PatientBatches {
    patients: GroupRows,
    key: NoiseKey,
    sampling_rate: f64,
    sampled: Vec<u32>,
}

impl PatientBatches {
    /// Batches of the patients of `data` (its groups; every row its own patient without them),
    /// each sampled with probability `sampling_rate` under `key`.
    pub fn new(data: &Dataset, sampling_rate: f64, key: NoiseKey) -> Self {
        Self { patients: data.group_rows(), key, sampling_rate, sampled: Vec::new() }
    }

    /// Patients in the dataset.
    pub fn patients(&self) -> usize {
        self.patients.groups()
    }

    /// Writes step `step`'s batch (the step counts over all epochs) into `batch`.
    pub fn fill(&mut self, step: u32, batch: &mut PatientBatch) {
        batch.rows.clear();
        batch.patients.clear();
        sample_patients(self.key, step, self.patients.groups() as u32, self.sampling_rate, &mut self.sampled);
        for &patient in &self.sampled {
            let start = batch.rows.len();
            batch.rows.extend_from_slice(self.patients.rows_of(patient as usize));
            batch.patients.push(start..batch.rows.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_every_row_of_each_sampled_patient_together() {
        // Patients: rows {0, 3}, {1}, {2, 4, 5}.
        let data = Dataset::new(alloc::vec![0.0; 6], alloc::vec![0.0; 6], 1)
            .unwrap()
            .with_groups(&[7, 8, 9, 7, 9, 9])
            .unwrap();
        let mut batches = PatientBatches::new(&data, 1.0, NoiseKey::from_u64(1));
        assert_eq!(batches.patients(), 3);
        let mut batch = PatientBatch::default();
        batches.fill(0, &mut batch);
        assert_eq!(batch.rows, [0, 3, 1, 2, 4, 5]);
        assert_eq!(batch.patients, [0..2, 2..3, 3..6]);
        let mut batches = PatientBatches::new(&data, 0.5, NoiseKey::from_u64(1));
        for step in 0..20 {
            batches.fill(step, &mut batch);
            let mut rows: Vec<u32> =
                batch.patients.iter().flat_map(|p| batch.rows[p.clone()].iter().copied()).collect();
            rows.sort_unstable();
            let mut taken = batch.rows.clone();
            taken.sort_unstable();
            assert_eq!(rows, taken, "the ranges cover the rows once");
            for patient in &batch.patients {
                let group = data.groups().unwrap()[batch.rows[patient.start] as usize];
                assert!(batch.rows[patient.clone()].iter().all(|&r| data.groups().unwrap()[r as usize] == group));
            }
        }
    }
}
