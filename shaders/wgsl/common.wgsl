// common.wgsl: the declarations every fedcare kernel shares. It is prepended to each kernel file,
// so all kernels see the same run settings, layer shape and buffer bindings.
//
// Parameter layout (the one `fedcare_core::spec` documents): per layer W[fan_in][fan_out]
// row-major, then b[fan_out]. Rows of a batch are dataset rows `order[step_base + r]`.

struct Run {
    rows: u32,          // rows in the dataset
    batch: u32,         // rows per step; the last step of an epoch may have fewer
    width: u32,         // features per row
    param_count: u32,
    pos_weight: f32,
    l2: f32,
    prox_mu: f32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    momentum: f32,
    optimizer: u32,     // 0 = SGD with momentum, 1 = Adam
    layer_count: u32,
    // DP-SGD (see private.wgsl): 1 when the steps are patient batches, else 0 and unused.
    private: u32,
    _pad2: u32,            // (the plan's steps come first in `order`: (first position, rows) each)
    patients_offset: u32,  // in `order`: per position (first, end) of its patient's positions
    row_grad_offset: u32,  // in `scratch`: per batch row, ∂loss/∂logit before clipping
    row_norm_offset: u32,  // in `scratch`: per batch row, its share of its patient's squared norm
    clip_norm: f32,
    noise_scale: f32,      // σ·C / expected patients
    inv_expected: f32,     // 1 / expected patients
    key0: u32,             // the Philox key of the noise
    key1: u32,
    // Per layer: (first bias index, one past the last bias index, 0, 0).
    bias_ranges: array<vec4<u32>, 16>,
}

struct Layer {
    fan_in: u32,
    fan_out: u32,
    weight_offset: u32,    // W in `params` and `grad`
    bias_offset: u32,      // b in `params` and `grad`
    input_offset: u32,     // this layer's input activations in `scratch` (unused when first == 1)
    output_offset: u32,    // this layer's output activations in `scratch`
    delta_out_offset: u32, // d(loss)/d(output) in `scratch`
    delta_in_offset: u32,  // d(loss)/d(input) written here for the layer below
    relu: u32,
    first: u32,            // 1: the input is the dataset, gathered through `order`
    partial_offset: u32,   // split-K partial weight gradients in `scratch` (see matmul.wgsl)
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> run: Run;
@group(0) @binding(1) var<storage, read> features: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;
@group(0) @binding(3) var<storage, read> order: array<u32>;
@group(0) @binding(4) var<storage, read_write> params: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad: array<f32>;
// Activations of every layer, then two ping-pong regions of back-propagated gradients.
@group(0) @binding(6) var<storage, read_write> scratch: array<f32>;
// Optimizer state: first moment (or SGD velocity) | second moment | FedProx anchor.
@group(0) @binding(7) var<storage, read_write> state: array<f32>;
// [step within the epoch, global step, then per-step loss sums or per-row logits as f32 bits].
@group(0) @binding(8) var<storage, read_write> record: array<u32>;
@group(1) @binding(0) var<uniform> layer: Layer;

const RECORD_HEADER: u32 = 2u;

// Batch rows each split of a tiled weight-gradient product sums over (see matmul.wgsl).
const SPLIT_ROWS: u32 = 128u;

// Threads of the one-dimensional kernels' workgroups.
const THREADS: u32 = 256u;

var<workgroup> partial: array<f32, 256>;

// The sum of `value` over the THREADS threads of the workgroup, by a fixed-order tree, so results
// are repeatable. Every thread of the workgroup must call it, from uniform control flow.
fn workgroup_sum(thread: u32, value: f32) -> f32 {
    partial[thread] = value;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride /= 2u) {
        if thread < stride {
            partial[thread] += partial[thread + stride];
        }
        workgroupBarrier();
    }
    return partial[0];
}

// First dataset position (in `order`) of the current step: fixed-size batches in order, or a
// DP-SGD step's entry of the plan.
fn step_base() -> u32 {
    if run.private == 1u {
        return order[2u * record[0]];
    }
    return record[0] * run.batch;
}

// Rows in the current step.
fn step_rows(base: u32) -> u32 {
    if run.private == 1u {
        return order[2u * record[0] + 1u];
    }
    return min(run.batch, run.rows - base);
}

// Input activation `col` of batch row `row` for the bound layer.
fn layer_input(base: u32, row: u32, col: u32) -> f32 {
    if layer.first == 1u {
        return features[order[base + row] * run.width + col];
    }
    return scratch[layer.input_offset + row * layer.fan_in + col];
}
