//! Row subsampling for boosting that every party draws alike: whether a tree is grown on a
//! patient's rows is a function of the patient's key and the tree's number alone, so hospitals
//! holding different patients sample as one table would, and the federated trees stay equal to
//! the centralized ones grown on the same sample.
//!
//! A patient's key is a keyed hash of their id made where the rows are read
//! (`fedcare_data::patient_key`, keyed by the federation's training seed); here it is mixed with
//! the tree's number (SplitMix64's finalizer, a bijection on 64 bits) into a uniform draw. The
//! draw is not secret (the seed is in the federation's settings), so the sample gives no privacy
//! amplification and is not claimed to.

/// Whether tree `tree` is grown on the rows of the patient whose key is `patient`, when each
/// tree takes a fraction `subsample` of the patients (every one at 1).
pub fn sampled(patient: u64, tree: u32, subsample: f64) -> bool {
    if subsample >= 1.0 {
        return true;
    }
    let mut z = patient ^ u64::from(tree).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64) / ((1u64 << 53) as f64) < subsample
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_takes_about_its_fraction_of_the_patients_and_each_tree_another_sample() {
        let patients: alloc::vec::Vec<u64> = (0..20_000u64).map(|p| p.wrapping_mul(0x2545_F491_4F6C_DD1D)).collect();
        let share = |tree| patients.iter().filter(|&&p| sampled(p, tree, 0.7)).count() as f64 / 20_000.0;
        assert!((share(0) - 0.7).abs() < 0.02 && (share(5) - 0.7).abs() < 0.02, "{} {}", share(0), share(5));
        let both = patients.iter().filter(|&&p| sampled(p, 0, 0.7) && sampled(p, 1, 0.7)).count() as f64 / 20_000.0;
        assert!((both - 0.49).abs() < 0.02, "the trees' samples are independent: {both}");
        assert!(patients.iter().all(|&p| sampled(p, 3, 1.0)));
    }
}
