// split_sum.wgsl: adds the split-K partial weight gradients of a tiled layer (see matmul.wgsl)
// into `grad`, one thread per weight, splits in increasing order, so results are repeatable.

@compute @workgroup_size(256)
fn split_sum(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.x + id.y * groups.x * 256u;
    let count = layer.fan_in * layer.fan_out;
    if i >= count {
        return;
    }
    let splits = (step_rows(step_base()) + SPLIT_ROWS - 1u) / SPLIT_ROWS;
    var total = 0.0;
    for (var s = 0u; s < splits; s++) {
        total += scratch[layer.partial_offset + s * count + i];
    }
    grad[layer.weight_offset + i] = total;
}
