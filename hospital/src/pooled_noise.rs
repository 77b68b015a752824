//! A hospital's noise on the pooled statistics it contributes: exact discrete Gaussian samples
//! (`opendp`'s sampler, which draws from the operating system's randomness), added to its
//! counts, moments and histogram cells before they are encoded and encrypted.
//!
//! Guarantees: every count (rows, present values, bucket rows) gets noise of scale `σ_p·L`, a
//! histogram cell `σ_e·L`, a feature's sum `σ_p·L·⌈256·B⌉` and its sum of squares `σ_p·L·⌈256·B²⌉`,
//! where `L` is the rows counted per patient and `B` the largest magnitude of the feature's
//! clamped values: each is one patient's most change of the statistic times `σ_p`
//! ([`fedcare_core::privacy::PooledNoise`]). The noise is integer and exact (no floating-point
//! sampler: Mironov 2012), and is this hospital's own: its patients keep that protection if
//! every other party colludes. Wrapping arithmetic carries a negative noisy count as the two's
//! complement the contribution encodes.

use dashu::integer::IBig;
use dashu::rational::RBig;
use fedcare_core::explore::ExploreCounts;
use fedcare_core::gbdt::NodeHistogram;
use fedcare_core::privacy::PooledNoise;
use fedcare_core::stats::MOMENT_SCALE;
use fedcare_protocol::boosting::HistogramNoise;

use crate::error::{FederationError, Result};
use crate::protocol::SetupCounts;

/// Draws a hospital's noise for the pooled statistics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PooledSampler {
    noise: PooledNoise,
}

impl PooledSampler {
    /// The sampler of `noise`.
    pub(crate) fn new(noise: PooledNoise) -> Self {
        Self { noise }
    }

    /// The rows this hospital counts of rows whose patients are `groups`.
    pub(crate) fn counted_rows<T: Ord>(&self, groups: &[T]) -> Vec<usize> {
        self.noise.counted_rows(groups)
    }

    /// One exact discrete Gaussian draw for a setup statistic one row changes by at most
    /// `per_row`.
    fn draw(&self, per_row: f64) -> Result<i64> {
        self.draw_scaled(self.noise.scale(per_row))
    }

    /// One exact discrete Gaussian draw of `scale`.
    fn draw_scaled(&self, scale: f64) -> Result<i64> {
        let failed = |what: String| FederationError::Task(format!("the pooled statistics' noise: {what}"));
        let scale = RBig::try_from(scale).map_err(|e| failed(format!("scale {scale}: {e:?}")))?;
        let sample: IBig = opendp::traits::samplers::sample_discrete_gaussian(scale)
            .map_err(|e| failed(format!("the discrete Gaussian sampler: {e}")))?;
        i64::try_from(sample).map_err(|e| failed(format!("a draw beyond 64 bits: {e:?}")))
    }

    /// `count` (one patient changes it by at most `rows_per_patient`) plus noise, wrapping (a
    /// negative result is its two's complement).
    pub(crate) fn noisy_count(&self, count: u64) -> Result<u64> {
        Ok(count.wrapping_add_signed(self.draw(1.0)?))
    }

    /// Noise of `scale` on every one of `counts` (wrapping: a negative result is its two's
    /// complement).
    pub(crate) fn add_count_noise<'a>(&self, counts: impl IntoIterator<Item = &'a mut u64>, scale: f64) -> Result<()> {
        for count in counts {
            *count = count.wrapping_add_signed(self.draw_scaled(scale)?);
        }
        Ok(())
    }

    /// Noise of `scales` on every cell of a boosting level's `histograms`.
    pub(crate) fn add_histogram_noise(&self, histograms: &mut [NodeHistogram], scales: &HistogramNoise) -> Result<()> {
        for cell in histograms.iter_mut().flat_map(|h| h.cells.iter_mut()) {
            cell.grad = cell.grad.wrapping_add(self.draw_scaled(scales.grad)?);
            cell.hess = cell.hess.wrapping_add(self.draw_scaled(scales.hess)?);
            cell.count = cell.count.wrapping_add(self.draw_scaled(scales.count)?);
        }
        Ok(())
    }

    /// This hospital's setup counts with noise on every count and moment; `bounds` is each
    /// numeric feature's largest magnitude after clamping.
    pub(crate) fn setup(&self, counts: &SetupCounts, bounds: &[f64]) -> Result<SetupCounts> {
        let mut noisy = counts.clone();
        noisy.train_rows = self.noisy_count(counts.train_rows)?;
        noisy.test_rows = self.noisy_count(counts.test_rows)?;
        for (moments, &bound) in noisy.moments.iter_mut().zip(bounds) {
            moments.count = self.noisy_count(moments.count)?;
            moments.sum = moments.sum.wrapping_add(self.draw((bound * MOMENT_SCALE).ceil())?);
            moments.squares = moments.squares.wrapping_add(self.draw((bound * bound * MOMENT_SCALE).ceil())?);
        }
        for count in noisy.bucket_counts.iter_mut().flatten() {
            *count = self.noisy_count(*count)?;
        }
        Ok(noisy)
    }

    /// This hospital's exploration counts with noise on every count, of scale `σ_p·L·√2` (one
    /// row changes a column's cell and that cell's positives by one each, or the rows and the
    /// positives; [`fedcare_protocol::ExploreNoise::count_scale`]). `counts` carry no moments.
    pub(crate) fn explore(&self, counts: &ExploreCounts) -> Result<ExploreCounts> {
        let mut noisy = counts.clone();
        let add_noise = |count: &mut u64| -> Result<()> {
            *count = count.wrapping_add_signed(self.draw(core::f64::consts::SQRT_2)?);
            Ok(())
        };
        add_noise(&mut noisy.rows)?;
        add_noise(&mut noisy.positives)?;
        for column in &mut noisy.columns {
            add_noise(&mut column.missing)?;
            add_noise(&mut column.missing_positives)?;
            column.cells.iter_mut().chain(column.positives.iter_mut()).try_for_each(add_noise)?;
        }
        Ok(noisy)
    }

    /// Noise for the `cells` cells of an evaluation's histograms.
    pub(crate) fn histogram(&self, cells: usize) -> Result<Vec<i64>> {
        (0..cells).map(|_| self.draw_scaled(self.noise.evaluation_scale())).collect()
    }
}

#[cfg(test)]
mod tests {
    use fedcare_core::{Moments, ScoreHistogram, TopKShape};

    use super::*;
    use crate::protocol::{ContributionLayout, DecodedSum, LocalEvaluation, SessionKind};
    use fedcare_protocol::testing::sum_through_codec;

    /// The mean and variance of `samples`.
    fn mean_and_variance(samples: &[f64]) -> (f64, f64) {
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        (mean, samples.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0))
    }

    /// Checks that `differences` (noisy total − exact total, over runs) have mean 0 within four
    /// standard errors and the variance `variance` within `tolerance` (relative).
    fn assert_noise(what: &str, differences: &[f64], variance: f64, tolerance: f64) {
        let (mean, observed) = mean_and_variance(differences);
        let standard_error = (variance / differences.len() as f64).sqrt();
        assert!(mean.abs() < 4.0 * standard_error, "{what}: mean {mean}, standard error {standard_error}");
        assert!(
            (observed / variance - 1.0).abs() < tolerance,
            "{what}: variance {observed}, expected {variance} within {tolerance}"
        );
        assert!(differences.iter().all(|d| d.fract() == 0.0), "{what}: integer noise");
    }

    #[test]
    fn noisy_totals_differ_from_the_exact_ones_as_the_configured_noise_says() {
        let noise = PooledNoise { multiplier: 2.0, evaluation_multiplier: 1.0, rows_per_patient: 2 };
        let sampler = PooledSampler::new(noise);
        let layout = ContributionLayout {
            params: 0,
            bins: 4,
            numeric: 1,
            top_k: vec![TopKShape { buckets: 8, k: 2 }],
            explore: Vec::new(),
            subgroups: Vec::new(),
        };
        let (hospitals, runs, bound) = (5usize, 400, 10.0);
        let exact = SetupCounts {
            train_rows: 1000,
            test_rows: 250,
            moments: vec![Moments { count: 990, sum: 1_234_567, squares: 98_765_432 }],
            bucket_counts: vec![(0..8).map(|b| 200 + 10 * b).collect()],
        };
        let (mut rows, mut buckets, mut sums, mut squares) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let vectors: Vec<Vec<f64>> = (0..hospitals)
                .map(|_| layout.setup_vector(&sampler.setup(&exact, &[bound]).unwrap()).unwrap())
                .collect();
            let DecodedSum::Setup(total) = layout.decode(SessionKind::Setup, &sum_through_codec(&vectors), 0).unwrap()
            else {
                panic!("not a setup sum")
            };
            let h = hospitals as f64;
            rows.push(total.train_rows as f64 - h * exact.train_rows as f64);
            rows.push(total.test_rows as f64 - h * exact.test_rows as f64);
            rows.push(total.moments[0].count as f64 - h * exact.moments[0].count as f64);
            sums.push(total.moments[0].sum as f64 - h * exact.moments[0].sum as f64);
            squares.push(total.moments[0].squares as f64 - h * exact.moments[0].squares as f64);
            for (noisy, &count) in total.bucket_counts[0].iter().zip(&exact.bucket_counts[0]) {
                buckets.push(*noisy as f64 - h * count as f64);
            }
        }
        // Each hospital's count noise has scale σ_p·L = 4: the total's variance is H·16.
        let count_variance = hospitals as f64 * noise.scale(1.0).powi(2);
        assert_noise("row counts", &rows, count_variance, 0.15);
        assert_noise("bucket counts", &buckets, count_variance, 0.1);
        // A sum's noise has scale σ_p·L·⌈256·B⌉, a sum of squares' σ_p·L·⌈256·B²⌉.
        assert_noise("sums", &sums, hospitals as f64 * noise.scale(2560.0).powi(2), 0.3);
        assert_noise("squares", &squares, hospitals as f64 * noise.scale(25_600.0).powi(2), 0.3);
    }

    #[test]
    fn noisy_exploration_counts_differ_from_the_exact_ones_as_the_exploration_noise_says() {
        use fedcare_core::explore::{ColumnCounts, ColumnKind, ColumnSpec};

        let noise = fedcare_protocol::ExploreNoise { multiplier: 3.0, rows_per_patient: 2 };
        let sampler = PooledSampler::new(noise.pooled());
        let column =
            ColumnSpec { name: "ward".into(), kind: ColumnKind::Categorical { categories: 4, labels: Vec::new() } };
        let layout = ContributionLayout {
            params: 0,
            bins: 4,
            numeric: 0,
            top_k: Vec::new(),
            explore: vec![column.clone()],
            subgroups: Vec::new(),
        };
        // A rare cell (one row): noisy totals below zero read as zero.
        let exact = ExploreCounts {
            rows: 1000,
            positives: 100,
            columns: vec![ColumnCounts {
                cells: vec![600, 300, 99, 1],
                positives: vec![60, 30, 9, 1],
                missing: 0,
                missing_positives: 0,
                moments: Moments::default(),
            }],
        };
        let (hospitals, runs) = (4usize, 300);
        let h = hospitals as f64;
        let (mut differences, mut rare) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let vectors: Vec<Vec<f64>> =
                (0..hospitals).map(|_| layout.explore_vector(&sampler.explore(&exact).unwrap()).unwrap()).collect();
            let DecodedSum::Explore(total) =
                layout.decode(SessionKind::Explore, &sum_through_codec(&vectors), 0).unwrap()
            else {
                panic!("not an exploration")
            };
            differences.push(total.rows as f64 - h * exact.rows as f64);
            differences.push(total.positives as f64 - h * exact.positives as f64);
            let (pooled, exact) = (&total.columns[0], &exact.columns[0]);
            for (noisy, count) in pooled.cells.iter().zip(&exact.cells).take(2) {
                differences.push(*noisy as f64 - h * *count as f64);
            }
            rare.push(pooled.cells[3]);
            assert_eq!(pooled.moments, Moments::default());
        }
        // Each hospital's count noise has scale σ·L·√2 = 3·2·√2: the total's variance is H·72.
        assert_noise("exploration counts", &differences, h * noise.count_scale().powi(2), 0.1);
        assert!(rare.contains(&0), "a rare cell's noisy total is read as zero below zero");
    }

    #[test]
    fn noisy_histograms_sum_to_the_exact_cells_plus_the_hospitals_noise() {
        use fedcare_core::explore::{ColumnKind, ColumnSpec};
        use fedcare_core::subgroup::SubgroupHistograms;

        use crate::protocol::LocalSubgroups;
        let noise = PooledNoise { multiplier: 1.0, evaluation_multiplier: 3.0, rows_per_patient: 1 };
        let sampler = PooledSampler::new(noise);
        let bins = 8;
        // One subgroup column: every row in its one cell, none missing.
        let ward =
            ColumnSpec { name: "ward".into(), kind: ColumnKind::Categorical { categories: 1, labels: Vec::new() } };
        let layout = ContributionLayout {
            params: 0,
            bins,
            numeric: 0,
            top_k: Vec::new(),
            explore: Vec::new(),
            subgroups: vec![ward.clone()],
        };
        let histogram = ScoreHistogram { positives: vec![100; bins], negatives: vec![900; bins] };
        let subgroup = SubgroupHistograms { columns: vec![vec![histogram.clone(), ScoreHistogram::new(bins)]] };
        let (hospitals, runs) = (4usize, 150);
        let test_rows = (hospitals * 1000 * bins) as u64;
        let (mut differences, mut subgroup_differences) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let vectors: Vec<Vec<f64>> = (0..hospitals)
                .map(|_| {
                    let evaluation = LocalEvaluation {
                        loss_sum: 1.0,
                        histogram: histogram.clone(),
                        noise: sampler.histogram(2 * bins).unwrap(),
                    };
                    let subgroups = LocalSubgroups {
                        last: subgroup.clone(),
                        kept: None,
                        noise: sampler.histogram(SubgroupHistograms::values(&layout.subgroups, bins)).unwrap(),
                    };
                    layout.evaluate_vector(&evaluation, &subgroups, test_rows).unwrap()
                })
                .collect();
            let DecodedSum::Evaluate(total, pooled) =
                layout.decode(SessionKind::Evaluate, &sum_through_codec(&vectors), test_rows).unwrap()
            else {
                panic!("not an evaluation")
            };
            let cells = total.histogram.positives.iter().map(|&c| c as f64 - 400.0);
            differences.extend(cells.chain(total.histogram.negatives.iter().map(|&c| c as f64 - 3600.0)));
            // The subgroup cell holding every row (the missing cell's noise is cut at zero).
            let cell = &pooled.last.columns[0][0];
            let cells = cell.positives.iter().map(|&c| c as f64 - 400.0);
            subgroup_differences.extend(cells.chain(cell.negatives.iter().map(|&c| c as f64 - 3600.0)));
            assert!(pooled.kept.columns[0].iter().all(|h| h.class_totals() == (0, 0)), "no kept model: zeros");
        }
        assert_noise("histogram cells", &differences, hospitals as f64 * 9.0, 0.1);
        assert_noise("subgroup histogram cells", &subgroup_differences, hospitals as f64 * 9.0, 0.1);
    }

    #[test]
    fn noisy_boosting_histograms_sum_to_the_exact_cells_plus_noise_of_the_patients_sensitivity() {
        use fedcare_core::gbdt::{BoostingConfig, Cell, Cuts, Growing};
        use fedcare_protocol::boosting::{Boosting, BoostingContribution, BoostingSum, Step};
        use fedcare_protocol::boosting::{boosting_vector, decode_boosting};

        let noise = PooledNoise { multiplier: 0.5, evaluation_multiplier: 1.0, rows_per_patient: 2 };
        let sampler = PooledSampler::new(noise);
        let boosting = Boosting { config: BoostingConfig::default(), numeric_thresholds: vec![vec![0.0]] };
        let cuts = Cuts::for_inputs(vec![vec![0.0]], 3).unwrap();
        let scales = boosting.histogram_noise(&noise, 3);
        // √(1 + 3 inputs) = 2 cells' worth of a row, 2 rows a patient, σ_p 0.5: 2 rows, and a
        // gradient's 2·65536, a hessian's 2·16384.
        assert_eq!((scales.count, scales.grad, scales.hess), (2.0, 131_072.0, 32_768.0));
        let layout = ContributionLayout {
            params: 0,
            bins: 4,
            numeric: 1,
            top_k: Vec::new(),
            explore: Vec::new(),
            subgroups: Vec::new(),
        };
        let step = Step::Level(Growing::new());
        // Cells of one row: a negative noisy count or gradient sum must come back as one.
        let exact = NodeHistogram { cells: vec![Cell { grad: -40_000, hess: 30_000, count: 1 }; cuts.cells()] };
        let (hospitals, runs) = (3usize, 300);
        let (mut counts, mut grads, mut hess) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let vectors: Vec<Vec<f64>> = (0..hospitals)
                .map(|_| {
                    let mut histograms = vec![exact.clone()];
                    sampler.add_histogram_noise(&mut histograms, &scales).unwrap();
                    let evaluation = LocalEvaluation::of_logits(&[], &[], layout.bins);
                    let contribution = BoostingContribution::Level { evaluation: Some(evaluation), histograms };
                    boosting_vector(&layout, &step, cuts.cells(), &contribution, 0).unwrap()
                })
                .collect();
            let BoostingSum::Level { histograms, .. } =
                decode_boosting(&layout, &step, cuts.cells(), &sum_through_codec(&vectors), 0).unwrap()
            else {
                panic!("a level decodes as a level")
            };
            let h = hospitals as i64;
            for cell in &histograms[0].cells {
                counts.push((cell.count - h) as f64);
                grads.push((cell.grad + h * 40_000) as f64);
                hess.push((cell.hess - h * 30_000) as f64);
            }
        }
        assert!(counts.iter().any(|&d| d < -3.0), "a noisy count below zero decodes as negative");
        let h = hospitals as f64;
        assert_noise("rows", &counts, h * scales.count.powi(2), 0.15);
        assert_noise("gradients", &grads, h * scales.grad.powi(2), 0.15);
        assert_noise("hessians", &hess, h * scales.hess.powi(2), 0.15);
    }

    #[test]
    fn noisy_fine_counts_of_the_base_session_sum_to_the_exact_ones_plus_noise_of_the_inputs_without_edges() {
        use fedcare_core::gbdt::{BoostingConfig, FINE_BINS};
        use fedcare_protocol::boosting::{Boosting, BoostingContribution, BoostingSum, Step};
        use fedcare_protocol::boosting::{boosting_vector, decode_boosting};

        let noise = PooledNoise { multiplier: 0.5, evaluation_multiplier: 1.0, rows_per_patient: 2 };
        let sampler = PooledSampler::new(noise);
        // Four numeric inputs, one with thresholds: a row is in one fine bin of each of the
        // other three, so one patient (2 rows) moves the fine counts by 2·√3 in L2 norm.
        let boosting =
            Boosting { config: BoostingConfig::default(), numeric_thresholds: vec![vec![], vec![1.0], vec![], vec![]] };
        let scale = boosting.fine_noise(&noise);
        assert!((scale - 0.5 * 2.0 * 3f64.sqrt()).abs() < 1e-12, "{scale}");
        let layout = ContributionLayout {
            params: 0,
            bins: 4,
            numeric: 4,
            top_k: Vec::new(),
            explore: Vec::new(),
            subgroups: Vec::new(),
        };
        let step = Step::Base { quantiled: 3 };
        let (hospitals, runs) = (3usize, 40);
        let mut differences = Vec::new();
        for _ in 0..runs {
            let vectors: Vec<Vec<f64>> = (0..hospitals)
                .map(|_| {
                    let mut fine = vec![vec![2u64; FINE_BINS]; 3];
                    sampler.add_count_noise(fine.iter_mut().flatten(), scale).unwrap();
                    let contribution = BoostingContribution::Base { rows: 9, positives: 1, fine };
                    boosting_vector(&layout, &step, 1, &contribution, 0).unwrap()
                })
                .collect();
            let BoostingSum::Base { fine, .. } =
                decode_boosting(&layout, &step, 1, &sum_through_codec(&vectors), 0).unwrap()
            else {
                panic!("a base session decodes as one")
            };
            differences.extend(fine.iter().flatten().map(|&c| (c - 2 * hospitals as i64) as f64));
        }
        assert!(differences.iter().any(|&d| d < -6.0), "a noisy count below zero decodes as negative");
        assert_noise("fine counts", &differences, hospitals as f64 * scale.powi(2), 0.15);
    }
}
