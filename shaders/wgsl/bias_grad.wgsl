// bias_grad.wgsl: the bias gradient of a layer, the column sums of its output delta.
//
// One workgroup per output column; a fixed-order tree reduction, so results are repeatable.

@compute @workgroup_size(256)
fn bias_gradient(
    @builtin(local_invocation_index) thread: u32,
    @builtin(workgroup_id) group: vec3<u32>,
) {
    let column = group.x;
    let rows = step_rows(step_base());
    var total = 0.0;
    for (var r = thread; r < rows; r += THREADS) {
        total += scratch[layer.delta_out_offset + r * layer.fan_out + column];
    }
    let sum = workgroup_sum(thread, total);
    if thread == 0u {
        grad[layer.bias_offset + column] = sum;
    }
}
