// fused_step.wgsl: one whole training step of a small model in one workgroup, one dispatch:
// forward, loss, back-propagation, penalties and the optimizer update, then the step counters.
// The same maths as the tiled path's kernels (matmul.wgsl, narrow.wgsl, loss.wgsl,
// optimizer.wgsl, step.wgsl) and the same scratch layout (every layer's activations for one
// batch, then two regions of batch × widest for the deltas), computed by the workgroup's threads
// over each phase's elements, a storage barrier between phases. Every sum is in a fixed order
// (over a row's inputs, a weight's rows, a row's outputs), so results are repeatable. Used for
// models whose parameters × batch rows are few (see the host), where a step of the tiled path is
// mostly dispatches; the layers' shapes come from the run's bias ranges, so no layer is bound.

// One dense layer: widths, where its parameters are, where its input and output activations are.
struct Dense {
    fan_in: u32,
    fan_out: u32,
    weight: u32,
    bias: u32,
    input: u32,
    output: u32,
}

// Layer l of the run's model (l < layer_count).
fn dense(l: u32) -> Dense {
    var d = Dense(run.width, 0u, 0u, 0u, 0u, 0u);
    var output = 0u;
    for (var j = 0u; j < l + 1u; j++) {
        let range = run.bias_ranges[j];
        if j > 0u {
            d.fan_in = d.fan_out;
            d.input = d.output;
            d.weight = run.bias_ranges[j - 1u].y;
        }
        d.fan_out = range.y - range.x;
        d.bias = range.x;
        d.output = output;
        output += run.batch * d.fan_out;
    }
    return d;
}

// Where delta region `which` (0 or 1) starts: after every layer's activations.
fn delta_region(which: u32) -> u32 {
    var activations = 0u;
    var widest = run.width;
    for (var j = 0u; j < run.layer_count; j++) {
        let fan_out = run.bias_ranges[j].y - run.bias_ranges[j].x;
        activations += run.batch * fan_out;
        widest = max(widest, fan_out);
    }
    return activations + which * run.batch * widest;
}

// Input activation `col` of batch row `row` of layer l.
fn dense_input(d: Dense, l: u32, base: u32, row: u32, col: u32) -> f32 {
    if l == 0u {
        return features[order[base + row] * run.width + col];
    }
    return scratch[d.input + row * d.fan_in + col];
}

@compute @workgroup_size(256)
fn fused_step(@builtin(local_invocation_index) thread: u32) {
    let base = step_base();
    let rows = step_rows(base);
    let layers = run.layer_count;

    // Forward: out = relu?(b + Σ_k input·W), ReLU on every layer but the last.
    for (var l = 0u; l < layers; l++) {
        let d = dense(l);
        for (var e = thread; e < rows * d.fan_out; e += THREADS) {
            let row = e / d.fan_out;
            let o = e % d.fan_out;
            var acc = 0.0;
            for (var k = 0u; k < d.fan_in; k++) {
                acc = fma(dense_input(d, l, base, row, k), params[d.weight + k * d.fan_out + o], acc);
            }
            var out = acc + params[d.bias + o];
            if l + 1u < layers {
                out = max(out, 0.0);
            }
            scratch[d.output + e] = out;
        }
        storageBarrier();
    }

    // Loss and its gradient (of the mean loss) at the logit.
    let last = dense(layers - 1u);
    let scale = 1.0 / f32(rows);
    var total = 0.0;
    for (var r = thread; r < rows; r += THREADS) {
        let loss = row_loss(scratch[last.output + r], labels[order[base + r]], scale);
        total += loss.x;
        scratch[delta_region((layers - 1u) % 2u) + r] = loss.y;
    }
    let loss_sum = workgroup_sum(thread, total);
    storageBarrier();

    // Back-propagation, last layer first: the weight and bias gradient (input k = fan_in is the
    // bias, input 1), then the input gradient with the ReLU mask into the other delta region.
    for (var i = 0u; i < layers; i++) {
        let l = layers - 1u - i;
        let d = dense(l);
        let delta = delta_region(l % 2u);
        for (var e = thread; e < (d.fan_in + 1u) * d.fan_out; e += THREADS) {
            let k = e / d.fan_out;
            let o = e % d.fan_out;
            var g = 0.0;
            for (var r = 0u; r < rows; r++) {
                let x = select(dense_input(d, l, base, r, k), 1.0, k == d.fan_in);
                g = fma(x, scratch[delta + r * d.fan_out + o], g);
            }
            grad[d.weight + e] = g;
        }
        if l > 0u {
            let below = delta_region((l + 1u) % 2u);
            for (var e = thread; e < rows * d.fan_in; e += THREADS) {
                let r = e / d.fan_in;
                let k = e % d.fan_in;
                var g = 0.0;
                for (var o = 0u; o < d.fan_out; o++) {
                    g = fma(scratch[delta + r * d.fan_out + o], params[d.weight + k * d.fan_out + o], g);
                }
                scratch[below + e] = select(0.0, g, scratch[d.input + e] > 0.0);
            }
        }
        storageBarrier();
    }

    // Penalties and the optimizer, then the step's loss and counters (read above by every
    // thread, so written last, by one).
    for (var i = thread; i < run.param_count; i += THREADS) {
        update_parameter(i);
    }
    storageBarrier();
    if thread == 0u {
        record[RECORD_HEADER + record[1]] = bitcast<u32>(loss_sum);
        record[0] += 1u;
        record[1] += 1u;
    }
}
