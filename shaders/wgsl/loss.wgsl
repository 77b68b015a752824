// loss.wgsl: mean BCE-with-logits (pos_weight) of the current batch and its gradient.
//
// One workgroup. For logit z and label y (PyTorch's BCEWithLogitsLoss):
//   loss = w·y·softplus(−z) + (1 − y)·softplus(z),   ∂loss/∂z = w·y·(σ(z) − 1) + (1 − y)·σ(z)
// The gradient of the *mean* loss (÷ rows) goes to the last layer's delta; the batch's loss
// *sum* is recorded at record[2 + global step] for the per-epoch loss. Under DP-SGD the gradient
// is of the loss *sum*, kept per row for the clipping (private.wgsl), whose squared norms start
// at zero here.

fn softplus(x: f32) -> f32 {
    return max(x, 0.0) + log(1.0 + exp(-abs(x)));
}

fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

// One row's loss and `scale`·∂loss/∂z, for logit z and label y.
fn row_loss(z: f32, y: f32, scale: f32) -> vec2<f32> {
    let w = run.pos_weight;
    let s = sigmoid(z);
    return vec2<f32>(w * y * softplus(-z) + (1.0 - y) * softplus(z), (w * y * (s - 1.0) + (1.0 - y) * s) * scale);
}

@compute @workgroup_size(256)
fn loss_gradient(@builtin(local_invocation_index) thread: u32) {
    let base = step_base();
    let rows = step_rows(base);
    let scale = select(1.0 / f32(rows), 1.0, run.private == 1u);
    var total = 0.0;
    for (var r = thread; r < rows; r += THREADS) {
        let loss = row_loss(scratch[layer.output_offset + r], labels[order[base + r]], scale);
        total += loss.x;
        let gradient = loss.y;
        scratch[layer.delta_out_offset + r] = gradient;
        if run.private == 1u {
            scratch[run.row_grad_offset + r] = gradient;
            scratch[run.row_norm_offset + r] = 0.0;
        }
    }
    let sum = workgroup_sum(thread, total);
    if thread == 0u {
        record[RECORD_HEADER + record[1]] = bitcast<u32>(sum);
    }
}
