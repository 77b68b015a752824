// matmul.wgsl: the three matrix products of a dense layer, register-blocked.
//
// One workgroup computes a 64x64 tile of C = L·R; each of its 16x16 threads keeps a 4x4 block of
// C in registers and the workgroup stages 64x16 slices of L and 16x64 slices of R in shared
// memory. The pipeline constant MODE picks the product (and what L, R and the epilogue are):
//   0 forward:         out[m][n]  = relu?(input[m][k] · W[k][n] + b[n])
//   1 weight gradient: gW[k][n]   = Σ_rows input[row][k] · dZ[row][n], and the bias gradient
//                      gb[n] = Σ_rows dZ[row][n] beside it: the workgroups of C's first row of
//                      tiles also sum the dZ slices they stage, which lies after gW as b after W.
//                      With one workgroup along z each sums the whole batch into `grad`; with
//                      more, workgroup z sums rows [z·SPLIT_ROWS, (z+1)·SPLIT_ROWS) into its
//                      own partial matrix, and split_sum.wgsl adds the partials in a fixed
//                      order (so a small gradient over a long batch still spreads over the GPU)
//   2 input gradient:  dA[m][k]   = (Σ_n dZ[m][n] · W[k][n]) · [input[m][k] > 0]
// Edges are guarded, so any shape works (rows, widths and batches need not divide 64). Every sum
// is in a fixed order, so results are repeatable.

override MODE: u32 = 0u;

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;
const BLOCK: u32 = 4u;

var<workgroup> tile_l: array<f32, 1024>; // TILE x TILE_K
var<workgroup> tile_r: array<f32, 1024>; // TILE_K x TILE

// (rows of C, columns of C, inner dimension) for the current step.
fn dims(m: u32) -> vec3<u32> {
    if MODE == 0u {
        return vec3<u32>(m, layer.fan_out, layer.fan_in);
    }
    if MODE == 1u {
        return vec3<u32>(layer.fan_in, layer.fan_out, m);
    }
    return vec3<u32>(m, layer.fan_in, layer.fan_out);
}

fn load_l(base: u32, r: u32, k: u32) -> f32 {
    if MODE == 0u {
        return layer_input(base, r, k);
    }
    if MODE == 1u {
        return layer_input(base, k, r);
    }
    return scratch[layer.delta_out_offset + r * layer.fan_out + k];
}

fn load_r(k: u32, c: u32) -> f32 {
    if MODE == 0u {
        return params[layer.weight_offset + k * layer.fan_out + c];
    }
    if MODE == 1u {
        return scratch[layer.delta_out_offset + k * layer.fan_out + c];
    }
    return params[layer.weight_offset + c * layer.fan_out + k];
}

// Writes C[r][c]; in MODE 1 row r = fan_in is the bias gradient, and `splits` (the workgroups
// along z) says whether the value is the whole sum or split `split`'s partial.
fn store(split: u32, splits: u32, r: u32, c: u32, value: f32) {
    if MODE == 0u {
        var out = value + params[layer.bias_offset + c];
        if layer.relu == 1u {
            out = max(out, 0.0);
        }
        scratch[layer.output_offset + r * layer.fan_out + c] = out;
    } else if MODE == 1u {
        if splits == 1u {
            grad[layer.weight_offset + r * layer.fan_out + c] = value;
        } else {
            let count = (layer.fan_in + 1u) * layer.fan_out;
            scratch[layer.partial_offset + split * count + r * layer.fan_out + c] = value;
        }
    } else {
        let passes = scratch[layer.input_offset + r * layer.fan_in + c] > 0.0;
        scratch[layer.delta_in_offset + r * layer.fan_in + c] = select(0.0, value, passes);
    }
}

@compute @workgroup_size(16, 16)
fn matmul(
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let base = step_base();
    let size = dims(step_rows(base));
    let row0 = group.y * TILE;
    let col0 = group.x * TILE;
    // The inner range this workgroup sums: all of it, or its split of the batch (MODE 1).
    var k_begin = 0u;
    var k_end = size.z;
    if MODE == 1u && groups.z > 1u {
        k_begin = group.z * SPLIT_ROWS;
        k_end = min(k_begin + SPLIT_ROWS, size.z);
    }
    // MODE 1, first row of tiles: thread t sums column t % 64 of the staged dZ slices' rows
    // 4·(t / 64) .. 4·(t / 64) + 4, for the bias gradient.
    let bias_tile = MODE == 1u && group.y == 0u;
    var bias_sum = 0.0;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    for (var k0 = k_begin; k0 < k_end; k0 += TILE_K) {
        for (var i = 0u; i < 4u; i++) {
            let index = thread + i * THREADS;
            // L slice: index = r * TILE_K + k.
            let r = row0 + index / TILE_K;
            let k = k0 + index % TILE_K;
            var l = 0.0;
            if r < size.x && k < k_end {
                l = load_l(base, r, k);
            }
            tile_l[index] = l;
            // R slice: index = k * TILE + c.
            let kr = k0 + index / TILE;
            let c = col0 + index % TILE;
            var rv = 0.0;
            if kr < k_end && c < size.y {
                rv = load_r(kr, c);
            }
            tile_r[index] = rv;
        }
        workgroupBarrier();
        if bias_tile {
            let quarter = thread / TILE;
            for (var i = 0u; i < BLOCK; i++) {
                bias_sum += tile_r[(quarter * BLOCK + i) * TILE + thread % TILE];
            }
        }
        for (var kk = 0u; kk < TILE_K; kk++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < BLOCK; i++) {
                a[i] = tile_l[(local.y * BLOCK + i) * TILE_K + kk];
                b[i] = tile_r[kk * TILE + local.x * BLOCK + i];
            }
            for (var i = 0u; i < BLOCK; i++) {
                for (var j = 0u; j < BLOCK; j++) {
                    acc[i * BLOCK + j] = fma(a[i], b[j], acc[i * BLOCK + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < BLOCK; i++) {
        let r = row0 + local.y * BLOCK + i;
        for (var j = 0u; j < BLOCK; j++) {
            let c = col0 + local.x * BLOCK + j;
            if r < size.x && c < size.y {
                store(group.z, groups.z, r, c, acc[i * BLOCK + j]);
            }
        }
    }
    if bias_tile {
        // The four quarters' sums of each column, added in order.
        tile_l[thread] = bias_sum;
        workgroupBarrier();
        let c = col0 + thread;
        if thread < TILE && c < size.y {
            let total = ((tile_l[thread] + tile_l[TILE + thread]) + tile_l[2u * TILE + thread]) + tile_l[3u * TILE + thread];
            store(group.z, groups.z, layer.fan_in, c, total);
        }
    }
}
