// optimizer.wgsl: penalties and the optimizer update, one thread per parameter.
//
// g = ∂(mean loss) + λ·w (weights only, not biases) + μ·(w − w_anchor) (FedProx), then
//   SGD:  v ← m·v + g;  w ← w − lr·v
//   Adam: m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  w ← w − (lr/(1−β1^t))·m / (√v/√(1−β2^t) + ε)
// with t = global step + 1: PyTorch's update rules, as `fedcare_core::optim`.

fn is_bias(index: u32) -> bool {
    for (var l = 0u; l < run.layer_count; l++) {
        let range = run.bias_ranges[l];
        if index >= range.x && index < range.y {
            return true;
        }
    }
    return false;
}

@compute @workgroup_size(256)
fn update(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.x + id.y * groups.x * 256u;
    if i < run.param_count {
        update_parameter(i);
    }
}

// The update of parameter i from its gradient.
fn update_parameter(i: u32) {
    let count = run.param_count;
    let w = params[i];
    var g = grad[i];
    if run.l2 != 0.0 && !is_bias(i) {
        g += run.l2 * w;
    }
    if run.prox_mu > 0.0 {
        g += run.prox_mu * (w - state[2u * count + i]);
    }
    if run.optimizer == 1u {
        let t = f32(record[1] + 1u);
        let m = run.beta1 * state[i] + (1.0 - run.beta1) * g;
        let v = run.beta2 * state[count + i] + (1.0 - run.beta2) * g * g;
        state[i] = m;
        state[count + i] = v;
        let step_size = run.lr / (1.0 - pow(run.beta1, t));
        let denom = sqrt(v) / sqrt(1.0 - pow(run.beta2, t)) + run.eps;
        params[i] = w - step_size * m / denom;
    } else {
        let velocity = run.momentum * state[i] + g;
        state[i] = velocity;
        params[i] = w - run.lr * velocity;
    }
}
