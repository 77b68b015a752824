// narrow.wgsl: the forward and weight-gradient products of narrow layers (fewer than 16 outputs,
// such as every model's logit layer and all of logistic regression), where the 64x64 tiles of
// matmul.wgsl would compute mostly padding.
//   forward_narrow:         one thread per (row, output): out = relu?(b + Σ_k input[row][k]·W[k][o])
//   weight_gradient_narrow: one workgroup per (input, output): gW[k][o] = Σ_rows input[row][k]·dZ[row][o],
//                           a fixed-order tree reduction, so results are repeatable; the
//                           workgroups of input k = fan_in take 1 as input and so give the bias
//                           gradient gb[o] = Σ_rows dZ[row][o], which lies after W as b does.

@compute @workgroup_size(256)
fn forward_narrow(@builtin(global_invocation_id) id: vec3<u32>) {
    let base = step_base();
    let row = id.x;
    let output = id.y;
    if row >= step_rows(base) {
        return;
    }
    var acc = 0.0;
    for (var k = 0u; k < layer.fan_in; k++) {
        acc = fma(layer_input(base, row, k), params[layer.weight_offset + k * layer.fan_out + output], acc);
    }
    var out = acc + params[layer.bias_offset + output];
    if layer.relu == 1u {
        out = max(out, 0.0);
    }
    scratch[layer.output_offset + row * layer.fan_out + output] = out;
}

@compute @workgroup_size(256)
fn weight_gradient_narrow(
    @builtin(local_invocation_index) thread: u32,
    @builtin(workgroup_id) group: vec3<u32>,
) {
    let base = step_base();
    let rows = step_rows(base);
    let input = group.x;
    let output = group.y;
    var total = 0.0;
    let bias = input == layer.fan_in;
    for (var r = thread; r < rows; r += THREADS) {
        let x = select(layer_input(base, r, input), 1.0, bias);
        total = fma(x, scratch[layer.delta_out_offset + r * layer.fan_out + output], total);
    }
    let sum = workgroup_sum(thread, total);
    if thread == 0u {
        grad[layer.weight_offset + input * layer.fan_out + output] = sum;
    }
}
