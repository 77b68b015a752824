//! Recording one submission's dispatches: into one compute pass, or, for a profile, with a GPU
//! timestamp beside every dispatch so that each kernel's time can be read back.
//!
//! Timestamps go between the dispatches of one pass where the device allows it
//! (`TIMESTAMP_QUERY_INSIDE_PASSES`); otherwise every dispatch gets a pass of its own with
//! timestamps at its start and end (`TIMESTAMP_QUERY`), which adds a pass's cost to each figure.
//! Either way the same dispatches run in the same order on the same buffers: a profile changes
//! where timestamps are written, never what is computed.

use crate::error::{GpuError, Result};

/// A compute pipeline and the name a profile gives its dispatches.
#[derive(Debug)]
pub struct Pipeline {
    /// What the kernel does, e.g. "forward" or "weight gradient".
    pub name: &'static str,
    /// Whether it works on the bound layer (a profile then names the layer).
    pub per_layer: bool,
    pub(crate) pipeline: wgpu::ComputePipeline,
}

/// Where a profile's timestamps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampPlacement {
    /// Between the dispatches of one pass: each figure is one dispatch.
    InsidePass,
    /// At the start and end of a pass of its own around each dispatch: each figure is one
    /// dispatch and its pass.
    PassPerDispatch,
}

impl TimestampPlacement {
    /// The placement `device` allows, best first; `None` without timestamp queries.
    pub fn of(device: &wgpu::Device) -> Option<Self> {
        let features = device.features();
        if features.contains(wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES) {
            Some(Self::InsidePass)
        } else if features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            Some(Self::PassPerDispatch)
        } else {
            None
        }
    }
}

/// One recorded dispatch of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DispatchLabel {
    pub(crate) kernel: &'static str,
    /// The layer bound when it was dispatched, for the kernels that work on one layer.
    pub(crate) layer: Option<usize>,
    /// The step it belongs to ([`Recorder::end_step`] counts them), from 0.
    pub(crate) step: usize,
}

/// The timestamps of a profiled submission.
#[derive(Debug)]
struct Timing {
    placement: TimestampPlacement,
    /// Query sets of `wgpu::QUERY_SET_MAX_QUERIES` each, filled in order.
    sets: Vec<wgpu::QuerySet>,
    written: u32,
    labels: Vec<DispatchLabel>,
}

/// The timestamps a profiled submission wrote, to resolve after it: see [`Recorder::finish`].
#[derive(Debug)]
pub(crate) struct PendingTimestamps {
    pub(crate) placement: TimestampPlacement,
    /// `written` timestamps of 8 bytes each.
    pub(crate) resolved: wgpu::Buffer,
    pub(crate) written: u32,
    pub(crate) labels: Vec<DispatchLabel>,
}

impl PendingTimestamps {
    /// Each dispatch's nanoseconds from the resolved timestamps (`ticks`, one per query) and the
    /// queue's timestamp period: the label and its duration, in recording order.
    pub(crate) fn durations(&self, ticks: &[u64], period_ns: f32) -> Vec<(DispatchLabel, f64)> {
        let span = |start: u64, end: u64| end.saturating_sub(start) as f64 * f64::from(period_ns);
        self.labels
            .iter()
            .enumerate()
            .map(|(index, &label)| {
                let seconds = match self.placement {
                    TimestampPlacement::InsidePass => span(ticks[index], ticks[index + 1]),
                    TimestampPlacement::PassPerDispatch => span(ticks[2 * index], ticks[2 * index + 1]),
                };
                (label, seconds)
            })
            .collect()
    }
}

/// Records dispatches into a command encoder, keeping groups 0 (the workspace's buffers) and 1
/// (the current layer) bound across the passes it opens.
pub(crate) struct Recorder<'w> {
    device: &'w wgpu::Device,
    encoder: wgpu::CommandEncoder,
    pass: Option<wgpu::ComputePass<'static>>,
    buffers: &'w wgpu::BindGroup,
    layer: Option<(usize, &'w wgpu::BindGroup)>,
    timing: Option<Timing>,
    step: usize,
}

impl<'w> Recorder<'w> {
    /// A recorder for `device` whose dispatches see `buffers` as group 0; `placement` asks for a
    /// timestamp beside every dispatch.
    pub(crate) fn new(
        device: &'w wgpu::Device,
        buffers: &'w wgpu::BindGroup,
        placement: Option<TimestampPlacement>,
    ) -> Self {
        let encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("fedcare steps") });
        let timing = placement.map(|placement| Timing { placement, sets: Vec::new(), written: 0, labels: Vec::new() });
        Self { device, encoder, pass: None, buffers, layer: None, timing, step: 0 }
    }

    /// Ends a step: the dispatches after it belong to the next (a step's dispatches vary with
    /// its rows, so a profile counts steps here rather than dividing).
    pub(crate) fn end_step(&mut self) {
        self.step += 1;
    }

    /// Binds layer `index`'s shape (group 1) for the dispatches that follow.
    pub(crate) fn set_layer(&mut self, index: usize, group: &'w wgpu::BindGroup) {
        self.layer = Some((index, group));
        if let Some(pass) = &mut self.pass {
            pass.set_bind_group(1, group, &[]);
        }
    }

    /// The query set and slot of the next timestamp, making a new set when the last is full.
    fn next_query(device: &wgpu::Device, timing: &mut Timing) -> (wgpu::QuerySet, u32) {
        let slot = timing.written % wgpu::QUERY_SET_MAX_QUERIES;
        if slot == 0 {
            timing.sets.push(device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("fedcare profile"),
                ty: wgpu::QueryType::Timestamp,
                count: wgpu::QUERY_SET_MAX_QUERIES,
            }));
        }
        timing.written += 1;
        // Invariant: a set was pushed above when none had room.
        let set = timing.sets.last().expect("a query set was just made").clone();
        (set, slot)
    }

    /// Opens a pass (with `timestamps` at its start and end) and binds the groups.
    fn open_pass(&mut self, timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>) {
        let mut pass = self
            .encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("fedcare steps"),
                timestamp_writes: timestamps,
            })
            .forget_lifetime();
        pass.set_bind_group(0, self.buffers, &[]);
        if let Some((_, group)) = self.layer {
            pass.set_bind_group(1, group, &[]);
        }
        self.pass = Some(pass);
    }

    /// Dispatches `pipeline` over `workgroups` (x, y, z).
    pub(crate) fn dispatch(&mut self, pipeline: &Pipeline, workgroups: [u32; 3]) {
        let placement = self.timing.as_ref().map(|t| t.placement);
        if placement == Some(TimestampPlacement::PassPerDispatch) {
            self.pass = None;
            let timing = self.timing.as_mut().expect("a profile has timing");
            let (set, start) = Self::next_query(self.device, timing);
            let (end_set, end) = Self::next_query(self.device, timing);
            // Both slots in one set: sets hold an even number of queries and pairs start even.
            debug_assert!(set == end_set && end == start + 1);
            let writes = wgpu::ComputePassTimestampWrites {
                query_set: &set,
                beginning_of_pass_write_index: Some(start),
                end_of_pass_write_index: Some(end),
            };
            self.open_pass(Some(writes));
        } else if self.pass.is_none() {
            self.open_pass(None);
            if placement == Some(TimestampPlacement::InsidePass) {
                self.write_timestamp();
            }
        }
        let pass = self.pass.as_mut().expect("a pass was opened above");
        pass.set_pipeline(&pipeline.pipeline);
        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        if let Some(timing) = &mut self.timing {
            let layer = self.layer.filter(|_| pipeline.per_layer).map(|(index, _)| index);
            timing.labels.push(DispatchLabel { kernel: pipeline.name, layer, step: self.step });
            match timing.placement {
                TimestampPlacement::InsidePass => self.write_timestamp(),
                TimestampPlacement::PassPerDispatch => self.pass = None,
            }
        }
    }

    /// Writes the next timestamp inside the open pass.
    fn write_timestamp(&mut self) {
        let timing = self.timing.as_mut().expect("a profile has timing");
        let (set, slot) = Self::next_query(self.device, timing);
        self.pass.as_mut().expect("timestamps are written inside a pass").write_timestamp(&set, slot);
    }

    /// Ends recording: the commands, and for a profile the timestamps to read back after they ran.
    pub(crate) fn finish(mut self) -> Result<(wgpu::CommandBuffer, Option<PendingTimestamps>)> {
        self.pass = None;
        let pending = match self.timing.take() {
            None => None,
            Some(timing) => {
                let bytes = u64::from(timing.written.max(1)) * u64::from(wgpu::QUERY_SIZE);
                let resolved = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("fedcare profile"),
                    size: bytes,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                for (index, set) in timing.sets.iter().enumerate() {
                    let first = index as u32 * wgpu::QUERY_SET_MAX_QUERIES;
                    let count = (timing.written - first).min(wgpu::QUERY_SET_MAX_QUERIES);
                    let offset = u64::from(first) * u64::from(wgpu::QUERY_SIZE);
                    self.encoder.resolve_query_set(set, 0..count, &resolved, offset);
                }
                if timing.written == 0 {
                    return Err(GpuError::Device("a profile recorded no dispatch".to_owned()));
                }
                Some(PendingTimestamps {
                    placement: timing.placement,
                    resolved,
                    written: timing.written,
                    labels: timing.labels,
                })
            }
        };
        Ok((self.encoder.finish(), pending))
    }
}
