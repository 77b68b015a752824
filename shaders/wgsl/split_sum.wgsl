// split_sum.wgsl: adds the split-K partial weight and bias gradients of a tiled layer (see
// matmul.wgsl) into `grad`, one thread per parameter, splits in increasing order, so results are
// repeatable. Dispatched only after a weight gradient split over more than one workgroup.

@compute @workgroup_size(256)
fn split_sum(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.x + id.y * groups.x * 256u;
    let count = (layer.fan_in + 1u) * layer.fan_out;
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
