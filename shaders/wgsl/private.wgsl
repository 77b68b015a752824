// private.wgsl: DP-SGD's per-patient clipping and its noise (`fedcare_core::train_private`).
//
// A step's batch is its sampled patients' rows, each patient's rows contiguous; position p of
// the step (dataset position base + p) belongs to the patient whose positions are
// order[patients_offset + 2(base + p)] .. order[patients_offset + 2(base + p) + 1], relative to
// base. After the loss kernel (which keeps each row's ∂loss/∂logit):
//
// `patient_norms`, once per layer from the last down (with the input gradients in between, as in
// back-propagation): row r adds Σ_{s of r's patient} (a_r·a_s + 1)(δ_r·δ_s), a_r the layer's
// input and δ_r the gradient at its output, so that a patient's rows together hold the squared
// norm of the patient's gradient (`Network::group_gradient_norms`).
// `clip_rows` (last layer bound): δ_r = ∂loss/∂logit_r · min(1, C/‖g_patient‖) / expected.
// Back-propagation of these deltas is then the clipped sum. `add_noise` adds σ·C/expected times
// the normals of Philox4x32-10 under the run's key at counter (i/4, global step, 0, 0), the
// CPU's `noise::add_noise`; a step without rows has the noise alone as gradient.

// Position range (relative to the step's base) of the patient of batch row `row`.
fn patient_of(base: u32, row: u32) -> vec2<u32> {
    let at = run.patients_offset + 2u * (base + row);
    return vec2<u32>(order[at], order[at + 1u]);
}

// Gradient at the bound layer's output for batch row `row`, column `col`.
fn layer_delta(row: u32, col: u32) -> f32 {
    return scratch[layer.delta_out_offset + row * layer.fan_out + col];
}

@compute @workgroup_size(256)
fn patient_norms(@builtin(global_invocation_id) id: vec3<u32>) {
    let base = step_base();
    let r = id.x;
    if r >= step_rows(base) {
        return;
    }
    let patient = patient_of(base, r);
    var total = 0.0;
    for (var s = patient.x; s < patient.y; s++) {
        var inputs = 1.0;
        for (var c = 0u; c < layer.fan_in; c++) {
            inputs += layer_input(base, r, c) * layer_input(base, s, c);
        }
        var deltas = 0.0;
        for (var c = 0u; c < layer.fan_out; c++) {
            deltas += layer_delta(r, c) * layer_delta(s, c);
        }
        total += inputs * deltas;
    }
    scratch[run.row_norm_offset + r] += total;
}

@compute @workgroup_size(256)
fn clip_rows(@builtin(global_invocation_id) id: vec3<u32>) {
    let base = step_base();
    let r = id.x;
    if r >= step_rows(base) {
        return;
    }
    let patient = patient_of(base, r);
    // Every row of a patient sums the same values in the same order: one factor per patient.
    var squared = 0.0;
    for (var s = patient.x; s < patient.y; s++) {
        squared += scratch[run.row_norm_offset + s];
    }
    let norm = sqrt(max(squared, 0.0));
    let factor = select(1.0, run.clip_norm / norm, norm > run.clip_norm) * run.inv_expected;
    scratch[layer.delta_out_offset + r] = scratch[run.row_grad_offset + r] * factor;
}

// The high and low words of a · b (WGSL has no 64-bit integers): 16-bit halves.
fn mul_hi_lo(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let low = a0 * b0;
    let middle1 = a1 * b0;
    let middle0 = a0 * b1;
    let carry = ((low >> 16u) + (middle1 & 0xffffu) + (middle0 & 0xffffu)) >> 16u;
    return vec2<u32>(a1 * b1 + (middle1 >> 16u) + (middle0 >> 16u) + carry, a * b);
}

// Philox4x32 with 10 rounds (Salmon et al. 2011), as `fedcare_core::privacy::noise::philox`.
fn philox(counter: vec4<u32>) -> vec4<u32> {
    var c = counter;
    var k0 = run.key0;
    var k1 = run.key1;
    for (var round = 0u; round < 10u; round++) {
        let p0 = mul_hi_lo(0xD2511F53u, c.x);
        let p1 = mul_hi_lo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k0, p1.y, p0.x ^ c.w ^ k1, p0.y);
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c;
}

fn open_unit(word: u32) -> f32 {
    return (f32(word) + 0.5) * (1.0 / 4294967296.0);
}

// Box–Muller: the cosine's normal of (u1, u2), or the sine's.
fn box_muller(u1: u32, u2: u32, sine: bool) -> f32 {
    let radius = sqrt(-2.0 * log(open_unit(u1)));
    let angle = 3.14159265358979 * (2.0 * open_unit(u2) - 1.0);
    return radius * select(cos(angle), sin(angle), sine);
}

@compute @workgroup_size(256)
fn add_noise(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.x + id.y * groups.x * 256u;
    if i >= run.param_count {
        return;
    }
    let words = philox(vec4<u32>(i / 4u, record[1], 0u, 0u));
    let pair = select(words.xy, words.zw, i % 4u >= 2u);
    let noise = run.noise_scale * box_muller(pair.x, pair.y, i % 2u == 1u);
    if step_rows(step_base()) == 0u {
        grad[i] = noise;
    } else {
        grad[i] += noise;
    }
}
