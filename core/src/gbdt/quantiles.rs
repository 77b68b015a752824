//! Thresholds at pooled quantiles, for numeric inputs whose schema gives no edges.
//!
//! Each party counts its rows' standardised values in [`FINE_BINS`] fine bins, a sixteenth of a
//! standard deviation wide within ±4 (the first and the last also hold what lies beyond); the
//! counts are summed, and [`quantile_thresholds`] puts a threshold at the fine edge where every
//! `1/QUANTILE_BINS` of the pooled rows is passed. Whoever reads the same pooled counts gets the
//! same thresholds, so a federation's cuts equal those of the union of its rows.

use alloc::vec::Vec;

/// Fine bins of one input.
pub const FINE_BINS: usize = 128;
/// The most bins pooled quantiles give one input.
pub const QUANTILE_BINS: usize = 32;
/// Fine bins per standard deviation.
const FINE_PER_STD: f32 = 16.0;
/// The lower edge of the second fine bin less one bin's width: −4 standard deviations.
const FINE_LOW: f32 = -4.0;

/// The fine bin of a standardised value (a NaN is in the first).
pub fn fine_bin(z: f32) -> usize {
    let bin = libm::floorf((z - FINE_LOW) * FINE_PER_STD);
    if bin >= (FINE_BINS - 1) as f32 {
        FINE_BINS - 1
    } else if bin > 0.0 {
        bin as usize
    } else {
        0
    }
}

/// The upper edge of fine bin `bin`, in standard deviations (exact in `f32`).
fn upper_edge(bin: usize) -> f32 {
    FINE_LOW + (bin + 1) as f32 / FINE_PER_STD
}

/// Ascending thresholds at the pooled quantiles of one input's [`FINE_BINS`] `counts`: where the
/// running count first reaches each `k/QUANTILE_BINS` of the total (k = 1 … QUANTILE_BINS − 1),
/// the upper edge of that fine bin, once, and only where rows lie on both sides. Negative
/// (noisy) counts count as 0; no rows: no thresholds.
pub fn quantile_thresholds(counts: &[i64]) -> Vec<f32> {
    let clamped = || counts.iter().map(|&c| c.max(0) as u64);
    let total: u64 = clamped().sum();
    let mut thresholds = Vec::new();
    let (mut passed, mut next) = (0u64, 1u64);
    for (bin, count) in clamped().enumerate().take(counts.len().saturating_sub(1)) {
        passed += count;
        let mut crossed = false;
        while next < QUANTILE_BINS as u64 && passed * QUANTILE_BINS as u64 >= next * total {
            next += 1;
            crossed = true;
        }
        if crossed && passed > 0 && passed < total {
            thresholds.push(upper_edge(bin));
        }
    }
    thresholds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_their_sixteenth_of_a_standard_deviation_and_the_tails_in_the_end_bins() {
        assert_eq!(
            [-9.0, -4.0, -3.97, -3.9375, 0.0, 0.05, 3.99, 4.0, 1e9].map(fine_bin),
            [0, 0, 0, 1, 64, 64, 127, 127, 127]
        );
        assert_eq!(fine_bin(f32::NAN), 0);
        assert_eq!(upper_edge(63), 0.0);
    }

    #[test]
    fn thresholds_split_the_pooled_rows_into_equal_shares() {
        // Rows spread evenly over 64 fine bins: a threshold every 2 bins.
        let mut counts = alloc::vec![0i64; FINE_BINS];
        counts[32..96].iter_mut().for_each(|c| *c = 10);
        let thresholds = quantile_thresholds(&counts);
        assert_eq!(thresholds.len(), QUANTILE_BINS - 1);
        assert_eq!(thresholds[0], upper_edge(33));
        assert!(thresholds.windows(2).all(|w| w[0] < w[1]));
        let below =
            |t: f32| counts.iter().enumerate().filter(|&(b, _)| upper_edge(b) <= t).map(|(_, &c)| c).sum::<i64>();
        assert!(thresholds.iter().enumerate().all(|(k, &t)| below(t) == 20 * (k as i64 + 1)));
    }

    #[test]
    fn a_few_values_get_a_threshold_between_each_and_none_beyond() {
        // An input of three values (0, 1, 2 standard deviations) with most rows at 0.
        let mut counts = alloc::vec![0i64; FINE_BINS];
        (counts[64], counts[80], counts[96]) = (900, 80, 20);
        assert_eq!(quantile_thresholds(&counts), [upper_edge(64), upper_edge(80)]);
        // One value: nothing to split; no rows, or only noise below zero: no thresholds.
        counts.iter_mut().for_each(|c| *c = 0);
        counts[10] = 5;
        assert!(quantile_thresholds(&counts).is_empty());
        counts[10] = -3;
        assert!(quantile_thresholds(&counts).is_empty());
        counts[20] = 7;
        counts[30] = -2;
        counts[40] = 7;
        assert_eq!(quantile_thresholds(&counts), [upper_edge(20)]);
    }
}
