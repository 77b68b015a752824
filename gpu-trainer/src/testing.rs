//! What tests that need a GPU adapter share: open the adapter, or skip the test visibly when the
//! machine has none — unless `FEDCARE_REQUIRE_GPU` is set (CI sets it, so a missing lavapipe is
//! a failure there, never a silent pass).

use std::io::Write as _;

use crate::device::{Gpu, Selection, open};

/// The environment variable that turns a missing adapter into a test failure.
pub const REQUIRE_GPU_ENV: &str = "FEDCARE_REQUIRE_GPU";

/// Whether `FEDCARE_REQUIRE_GPU` asks for a GPU (set, and neither empty nor `0`).
pub fn gpu_required() -> bool {
    std::env::var(REQUIRE_GPU_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The preferred adapter (`FEDCARE_ADAPTER`, `WGPU_BACKEND` apply), or `None` after telling the
/// person running the tests, on the terminal, that `test` was skipped and how to run it.
///
/// # Panics
/// When no adapter opens and `FEDCARE_REQUIRE_GPU` is set.
pub fn gpu_or_skip(test: &str) -> Option<Gpu> {
    gpu_or_skip_with(test, &Selection::from_env(), gpu_required())
}

fn gpu_or_skip_with(test: &str, selection: &Selection, required: bool) -> Option<Gpu> {
    match open(selection) {
        Ok(gpu) => Some(gpu),
        Err(error) if required => panic!("{test} needs a GPU adapter and {REQUIRE_GPU_ENV} is set: {error}"),
        Err(error) => {
            // Written to the real stderr, not through the test harness's capture, so that the
            // skip is seen even when the test passes.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no GPU adapter ({error}). To run it without a GPU install Mesa's lavapipe \
                 (apt-get install --no-install-recommends libvulkan1 mesa-vulkan-drivers) and set \
                 WGPU_BACKEND=vulkan; set {REQUIRE_GPU_ENV}=1 to make a missing adapter a failure."
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_backends() -> Selection {
        Selection { backends: wgpu::Backends::empty(), adapter: None }
    }

    #[test]
    fn without_an_adapter_a_test_is_skipped_unless_a_gpu_is_required() {
        assert!(
            gpu_or_skip_with("(this test of the skip itself, with no backend on purpose)", &no_backends(), false)
                .is_none()
        );
    }

    #[test]
    #[should_panic(expected = "a test needs a GPU adapter and FEDCARE_REQUIRE_GPU is set")]
    fn a_required_gpu_that_is_missing_fails_the_test() {
        gpu_or_skip_with("a test", &no_backends(), true);
    }
}
