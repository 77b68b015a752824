// step.wgsl: bookkeeping between steps, and copying scores out.
//
// `advance` ends a step (next batch, next global step for Adam's bias correction). It is the
// only writer of the step counters during an epoch, so every other kernel of a step reads the
// same values. `collect_logits` copies the bound (last) layer's outputs of the current batch to
// record[2 + dataset position] for scoring.

@compute @workgroup_size(1)
fn advance() {
    record[0] += 1u;
    record[1] += 1u;
}

@compute @workgroup_size(256)
fn collect_logits(@builtin(global_invocation_id) id: vec3<u32>) {
    let base = step_base();
    if id.x < step_rows(base) {
        record[RECORD_HEADER + base + id.x] = bitcast<u32>(scratch[layer.output_offset + id.x]);
    }
}
