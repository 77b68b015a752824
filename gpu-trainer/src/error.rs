//! The one error type of the GPU trainer: every failure names what was found or what was asked.

use fedcare_core::Error as CoreError;

/// What can go wrong choosing a GPU or training on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// wgpu found no adapter at all (no Vulkan/Metal/DX12/GL driver, or `WGPU_BACKEND` excludes it).
    #[error(
        "no GPU adapter found (backends tried: {backends}); install a Vulkan driver (for a software GPU: \
         mesa-vulkan-drivers) or use the CPU trainer"
    )]
    NoAdapter {
        /// The backends wgpu searched.
        backends: String,
    },
    /// `FEDCARE_ADAPTER` named an adapter that is not there.
    #[error("no adapter matches FEDCARE_ADAPTER={wanted:?}; found: {found}")]
    AdapterNotFound {
        /// What was asked for.
        wanted: String,
        /// The adapters wgpu sees.
        found: String,
    },
    /// The adapter refused to open a device.
    #[error("adapter {adapter:?} could not open a device: {reason}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's message.
        reason: String,
    },
    /// A buffer would exceed what the device allows.
    #[error("{what} needs {bytes} bytes on the GPU but this device allows {limit} per buffer")]
    TooLarge {
        /// Which buffer.
        what: &'static str,
        /// Its size.
        bytes: u64,
        /// The device's limit.
        limit: u64,
    },
    /// The model or data has a shape this trainer does not support.
    #[error("unsupported on the GPU: {0}")]
    Unsupported(String),
    /// The device ran out of memory.
    #[error("the GPU ran out of memory while {what}: {detail}; use a smaller batch or the CPU trainer")]
    OutOfMemory {
        /// What was being done.
        what: &'static str,
        /// wgpu's message.
        detail: String,
    },
    /// The device failed while running or reading back (lost device, validation, mapping).
    #[error("GPU failure: {0}")]
    Device(String),
    /// The training settings, model or data were refused by the shared `core` checks, or
    /// training diverged.
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// `Result` with [`GpuError`].
pub type Result<T> = core::result::Result<T, GpuError>;
