#!/usr/bin/env bash
# Runs fedcare's GPU training benchmark and, where PyTorch is installed, the PyTorch peer on the
# same GPU, one after the other, so both tables come from one machine and one run.
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

echo "== fedcare (CPU one thread vs GPU through wgpu)"
"$binary" bench-train --repeats 5

echo "== fedcare DP-SGD (per-patient clipping and noise; CPU one thread vs GPU)"
"$binary" bench-train --repeats 3 --batch-sizes 256 --dp-sgd

peer=""
for candidate in shared/peers/torch_train_bench.py ../shared/peers/torch_train_bench.py; do
  [ -f "$candidate" ] && peer=$candidate && break
done
if [ -n "$peer" ] && python3 -c 'import torch' 2>/dev/null; then
  echo "== PyTorch eager on the same GPU ($peer)"
  python3 "$peer" --epochs 5 || echo "(the PyTorch peer failed: $?)"
else
  echo "== PyTorch peer not run (script or torch missing)"
fi
