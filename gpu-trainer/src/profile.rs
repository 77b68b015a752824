//! A profile of training steps on the GPU: every dispatch's time from GPU timestamps
//! ([`crate::recorder`]), and per kernel and layer the median time a step spends in it.
//!
//! [`GpuTrainer::profile`](crate::GpuTrainer::profile) records the steps exactly as training
//! does, so the dispatches per step are the trainer's own.

use core::fmt;

use crate::recorder::DispatchLabel;
pub use crate::recorder::TimestampPlacement;

/// One dispatch's time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimedDispatch {
    /// The step it belongs to, from 0.
    pub step: usize,
    /// The kernel, e.g. "forward".
    pub kernel: &'static str,
    /// The layer bound, for the kernels that work on one layer.
    pub layer: Option<usize>,
    /// GPU time between its timestamps.
    pub nanoseconds: f64,
}

/// One kernel on one layer, over the profiled steps.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelTime {
    /// The kernel.
    pub kernel: &'static str,
    /// The layer, where it works on one.
    pub layer: Option<usize>,
    /// Its dispatches in the first step.
    pub dispatches: usize,
    /// The median over steps of the time a step spends in it.
    pub median_ns: f64,
}

impl fmt::Display for KernelTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.layer {
            Some(layer) => write!(f, "{} (layer {})", self.kernel, layer + 1),
            None => write!(f, "{}", self.kernel),
        }
    }
}

/// Timed steps of one training run.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Where the timestamps were written.
    pub placement: TimestampPlacement,
    /// Steps profiled.
    pub steps: usize,
    /// Every dispatch, in the order they ran.
    pub dispatches: Vec<TimedDispatch>,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl Profile {
    /// Builds the profile from each dispatch's label and time, `steps` steps recorded one after
    /// the other.
    pub(crate) fn new(placement: TimestampPlacement, steps: usize, timed: Vec<(DispatchLabel, f64)>) -> Self {
        let dispatches = timed
            .into_iter()
            .map(|(label, nanoseconds)| TimedDispatch {
                step: label.step,
                kernel: label.kernel,
                layer: label.layer,
                nanoseconds,
            })
            .collect();
        Self { placement, steps, dispatches }
    }

    /// Dispatches of the first step (a step of fewer rows, an epoch's last, may have fewer).
    pub fn dispatches_per_step(&self) -> usize {
        self.dispatches.iter().filter(|d| d.step == 0).count()
    }

    /// The median over steps of a step's total time.
    pub fn median_step_ns(&self) -> f64 {
        let mut totals = vec![0.0; self.steps];
        for dispatch in &self.dispatches {
            if let Some(total) = totals.get_mut(dispatch.step) {
                *total += dispatch.nanoseconds;
            }
        }
        median(&mut totals)
    }

    /// Per kernel and layer, in the order a step first dispatches them: its dispatches in a step
    /// and the median time a step spends in it.
    pub fn by_kernel(&self) -> Vec<KernelTime> {
        let mut keys: Vec<(&'static str, Option<usize>)> = Vec::new();
        for dispatch in &self.dispatches {
            if !keys.contains(&(dispatch.kernel, dispatch.layer)) {
                keys.push((dispatch.kernel, dispatch.layer));
            }
        }
        keys.into_iter()
            .map(|(kernel, layer)| {
                let mut per_step = vec![0.0; self.steps];
                let mut count = 0;
                for dispatch in self.dispatches.iter().filter(|d| d.kernel == kernel && d.layer == layer) {
                    if let Some(total) = per_step.get_mut(dispatch.step) {
                        *total += dispatch.nanoseconds;
                    }
                    count += usize::from(dispatch.step == 0);
                }
                KernelTime { kernel, layer, dispatches: count, median_ns: median(&mut per_step) }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_sums_each_kernels_dispatches_per_step_and_takes_the_median_over_steps() {
        let label = |kernel, layer, step| DispatchLabel { kernel, layer, step };
        let step = |step: usize, scale: f64| {
            vec![
                (label("forward", Some(0), step), 10.0 * scale),
                (label("loss", None, step), 2.0 * scale),
                (label("forward", Some(0), step), 5.0 * scale),
            ]
        };
        let timed = [step(0, 1.0), step(1, 3.0), step(2, 2.0)].concat();
        let profile = Profile::new(TimestampPlacement::InsidePass, 3, timed);
        assert_eq!(profile.dispatches_per_step(), 3);
        assert_eq!(profile.median_step_ns(), 34.0);
        let kernels = profile.by_kernel();
        assert_eq!(kernels.len(), 2);
        assert_eq!((kernels[0].kernel, kernels[0].layer, kernels[0].dispatches), ("forward", Some(0), 2));
        assert_eq!(kernels[0].median_ns, 30.0);
        assert_eq!((kernels[1].to_string(), kernels[1].median_ns), ("loss".to_owned(), 4.0));
        assert_eq!(kernels[0].to_string(), "forward (layer 1)");
    }
}
