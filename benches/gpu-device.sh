#!/usr/bin/env bash
# Runs fedcare's GPU training benchmark (CPU one thread, CPU every core, GPU with a per-kernel
# profile), DP-SGD on each trainer, both PyTorch peers on the same GPU where PyTorch is installed,
# and the real-workload federation with each trainer, one after the other, so every ratio comes
# from one machine and one run.
#
# Usage (from the repository root of a copy that carries the release binary):
#   benches/gpu-device.sh [BINARY]        # default target/release/fedcare
# Build the binary first on any x86-64 machine:
#   cargo build --release --bin fedcare
# The GPU machine needs only its driver and the Vulkan loader (libvulkan.so.1). If the loader is
# missing, put Debian's libvulkan1 .deb into .gl/ beside this repository copy and it is unpacked.
set -euo pipefail
binary=${1:-target/release/fedcare}
[ -x "$binary" ] || { echo "no benchmark binary at $binary (build it first, see above)" >&2; exit 2; }

if ! ldconfig -p | grep -q 'libvulkan.so.1' && ls .gl/*.deb >/dev/null 2>&1; then
  for deb in .gl/*.deb; do dpkg -x "$deb" /; done
  ldconfig
fi
# NVIDIA containers often keep the Vulkan ICD outside the default search path.
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; fi
done
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
echo "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"

echo "== fedcare (CPU one thread, CPU every core, GPU through wgpu with the measured step kind; every GPU cell profiled)"
"$binary" bench-train --repeats 5 --trainers cpu,cpu-all,gpu --profile

echo "== fedcare GPU with every step fused into one dispatch, then every step tiled (--gpu-step)"
"$binary" bench-train --repeats 5 --trainers gpu --gpu-step fused --profile
"$binary" bench-train --repeats 5 --trainers gpu --gpu-step tiled --profile

echo "== fedcare, the Diabetes-130 model's shape (359-256-128-64-1)"
"$binary" bench-train --repeats 5 --features 359 --mlp 256,128,64 --trainers cpu,cpu-all,gpu --profile

echo "== fedcare DP-SGD (per-patient clipping and noise)"
"$binary" bench-train --repeats 3 --batch-sizes 256 --dp-sgd --trainers cpu,cpu-all,gpu

# The peers and the published file, wherever the copy carries them (shared/ travels, ../shared
# beside a checkout does not).
find_shared() {
  for candidate in "shared/$1" "../shared/$1"; do
    [ -e "$candidate" ] && { echo "$candidate"; return; }
  done
}
for script in torch_train_bench.py torch_graph_bench.py; do
  peer=$(find_shared "peers/$script")
  if [ -n "$peer" ] && python3 -c 'import torch' 2>/dev/null; then
    echo "== PyTorch peer on the same GPU: $script"
    python3 "$peer" --epochs 5 || echo "(the PyTorch peer failed: $?)"
  else
    echo "== PyTorch peer $script not run (script or torch missing)"
  fi
done

# The real workload: the published Diabetes-130 file split into 5 sites, one federation per
# trainer, the round times from its log.
zip=$(find_shared data/diabetes130/dataset_diabetes.zip)
if [ -n "$zip" ] && command -v unzip >/dev/null; then
  work=$(mktemp -d)
  unzip -q -o "$zip" -d "$work"
  "$binary" split --data "$work"/dataset_diabetes/diabetic_data.csv --sites 5 --holdout 0.2 --out "$work/split" >/dev/null
  for trainer in cpu gpu; do
    echo "== the real workload with --trainer $trainer (5 sites, --hidden 256,128,64 --epochs 3)"
    start=$(date +%s%N)
    "$binary" simulate --data "$work/split/sites" --hidden 256,128,64 --epochs 3 --rounds 3 \
      --trainer "$trainer" --out "$work/run-$trainer" 2>&1 | grep -Ei "trainer|round|auroc" | tail -12 || true
    echo "wall: $(( ($(date +%s%N) - start) / 1000000 )) ms for the setup and 3 rounds"
  done
  rm -rf "$work"
else
  echo "== real workload not run (the Diabetes-130 zip or unzip missing)"
fi
