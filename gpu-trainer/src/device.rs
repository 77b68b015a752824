//! Adapter listing and choice, and opening a device.
//!
//! Preference order: discrete GPU, integrated GPU, virtual GPU, software (CPU) adapter, other.
//! `FEDCARE_ADAPTER` picks by adapter index (as `fedcare devices` lists them) or by a
//! case-insensitive part of its name; `WGPU_BACKEND` (e.g. `vulkan`) restricts the backends
//! searched. Limits are the adapter's own, so large datasets fit where the hardware allows.

use core::fmt;

use crate::error::{GpuError, Result};

/// Environment variable that picks an adapter by index or name.
pub const ADAPTER_ENV: &str = "FEDCARE_ADAPTER";

/// What `fedcare devices` prints about one adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Position in the listing (what `FEDCARE_ADAPTER` takes).
    pub index: usize,
    /// Adapter name, e.g. "NVIDIA H200" or "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Backend, e.g. "Vulkan".
    pub backend: String,
    /// Device type, e.g. "DiscreteGpu" or "Cpu".
    pub device_type: wgpu::DeviceType,
    /// Driver name and version.
    pub driver: String,
    /// Largest storage buffer binding, bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer, bytes.
    pub max_buffer_size: u64,
    /// Most workgroups per dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Shared memory per workgroup, bytes.
    pub max_compute_workgroup_storage_size: u32,
}

impl AdapterSummary {
    fn of(index: usize, adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        Self {
            index,
            name: info.name,
            backend: format!("{:?}", info.backend),
            device_type: info.device_type,
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_owned(),
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        }
    }

    /// Whether this is real GPU hardware (not a software rasteriser such as lavapipe).
    pub fn is_hardware(&self) -> bool {
        matches!(
            self.device_type,
            wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu | wgpu::DeviceType::VirtualGpu
        )
    }
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {} ({}, {:?})", self.index, self.name, self.backend, self.device_type)
    }
}

/// An open device: what every GPU function takes.
#[derive(Debug, Clone)]
pub struct Gpu {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The adapter it was opened on.
    pub adapter: AdapterSummary,
}

/// Which backends to search and which adapter to pick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Backends to search (`WGPU_BACKEND`, default all).
    pub backends: wgpu::Backends,
    /// An adapter index or part of its name (`FEDCARE_ADAPTER`); `None` takes the preferred one.
    pub adapter: Option<String>,
}

impl Selection {
    /// From `WGPU_BACKEND` and `FEDCARE_ADAPTER`.
    pub fn from_env() -> Self {
        Self {
            backends: wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all()),
            adapter: std::env::var(ADAPTER_ENV).ok(),
        }
    }
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    descriptor.backends = backends;
    wgpu::Instance::new(descriptor)
}

fn rank(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn adapters(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance(backends).enumerate_adapters(backends))
}

/// Every adapter wgpu sees on the selected backends, in listing order.
pub fn list_adapters(selection: &Selection) -> Vec<AdapterSummary> {
    adapters(selection.backends).iter().enumerate().map(|(index, a)| AdapterSummary::of(index, a)).collect()
}

/// The index of the adapter [`open`] would use, given the listing and the adapter asked for.
pub fn preferred(adapters: &[AdapterSummary], wanted: Option<&str>, backends: wgpu::Backends) -> Result<usize> {
    let listing = || {
        if adapters.is_empty() {
            "none".to_owned()
        } else {
            adapters.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        }
    };
    if let Some(wanted) = wanted.map(str::trim).filter(|w| !w.is_empty()) {
        let lower = wanted.to_lowercase();
        let by_index = wanted.parse::<usize>().ok().filter(|&i| i < adapters.len());
        let by_name = || adapters.iter().position(|a| a.name.to_lowercase().contains(&lower));
        return by_index
            .or_else(by_name)
            .ok_or_else(|| GpuError::AdapterNotFound { wanted: wanted.to_owned(), found: listing() });
    }
    adapters
        .iter()
        .min_by_key(|a| (rank(a.device_type), a.index))
        .map(|a| a.index)
        .ok_or_else(|| GpuError::NoAdapter { backends: format!("{backends:?}") })
}

/// Opens the adapter `selection` picks, with the adapter's own limits.
pub fn open(selection: &Selection) -> Result<Gpu> {
    let found = adapters(selection.backends);
    let summaries: Vec<_> = found.iter().enumerate().map(|(i, a)| AdapterSummary::of(i, a)).collect();
    let index = preferred(&summaries, selection.adapter.as_deref(), selection.backends)?;
    open_adapter(&found[index], summaries[index].clone())
}

/// Features the trainer uses where the adapter has them: timestamp queries, for profiles.
fn wanted_features() -> wgpu::Features {
    wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
}

/// Opens a device on `adapter`, requesting the adapter's own limits and the [`wanted_features`]
/// it has.
fn open_adapter(adapter: &wgpu::Adapter, summary: AdapterSummary) -> Result<Gpu> {
    let descriptor = wgpu::DeviceDescriptor {
        label: Some("fedcare"),
        required_features: adapter.features() & wanted_features(),
        required_limits: adapter.limits(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&descriptor))
        .map_err(|e| GpuError::RequestDevice { adapter: summary.name.clone(), reason: e.to_string() })?;
    Ok(Gpu { device, queue, adapter: summary })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(index: usize, name: &str, device_type: wgpu::DeviceType) -> AdapterSummary {
        AdapterSummary {
            index,
            name: name.to_owned(),
            backend: "Vulkan".to_owned(),
            device_type,
            driver: String::new(),
            max_storage_buffer_binding_size: 1 << 27,
            max_buffer_size: 1 << 28,
            max_compute_workgroups_per_dimension: 65535,
            max_compute_workgroup_storage_size: 16384,
        }
    }

    #[test]
    fn a_discrete_gpu_is_preferred_and_the_environment_overrides() {
        let list = [
            summary(0, "llvmpipe (LLVM 15)", wgpu::DeviceType::Cpu),
            summary(1, "Intel UHD 770", wgpu::DeviceType::IntegratedGpu),
            summary(2, "NVIDIA H200", wgpu::DeviceType::DiscreteGpu),
        ];
        assert_eq!(preferred(&list, None, wgpu::Backends::all()).unwrap(), 2);
        assert_eq!(preferred(&list, Some(""), wgpu::Backends::all()).unwrap(), 2);
        assert_eq!(preferred(&list, Some("llvm"), wgpu::Backends::all()).unwrap(), 0);
        assert_eq!(preferred(&list, Some("INTEL"), wgpu::Backends::all()).unwrap(), 1);
        assert_eq!(preferred(&list, Some("0"), wgpu::Backends::all()).unwrap(), 0);
        let error = preferred(&list, Some("radeon"), wgpu::Backends::all()).unwrap_err().to_string();
        assert!(error.contains("radeon") && error.contains("NVIDIA H200") && error.contains("llvmpipe"), "{error}");
        assert!(list[2].is_hardware() && !list[0].is_hardware());
    }

    #[test]
    fn no_adapter_is_a_clear_error() {
        let error = preferred(&[], None, wgpu::Backends::VULKAN).unwrap_err();
        assert!(matches!(error, GpuError::NoAdapter { .. }));
        assert!(error.to_string().contains("no GPU adapter found"), "{error}");
        assert!(matches!(
            preferred(&[], Some("nvidia"), wgpu::Backends::VULKAN),
            Err(GpuError::AdapterNotFound { .. })
        ));
    }

    #[test]
    fn opening_with_no_backend_gives_the_documented_error() {
        let selection = Selection { backends: wgpu::Backends::empty(), adapter: None };
        assert!(list_adapters(&selection).is_empty());
        assert!(matches!(open(&selection), Err(GpuError::NoAdapter { .. })));
    }
}
