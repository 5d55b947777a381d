#!/usr/bin/env bash
# Builds the CUDA emulator into OUT (default kernels/emulator/bin): libkiln-cuda-emulator.so, the header the
# emulated NVRTC compiles kernels with, and links under the names Kiln looks for (libcuda.so.1, libnvrtc.so,
# libcublas.so, libnccl.so.2). Point Kiln at it with KILN_CUDA_LIB=OUT. Needs g++ (or $CXX), nothing from NVIDIA.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$HERE/bin}"
CXX="${CXX:-g++}"
mkdir -p "$OUT"
tmp="$OUT/libkiln-cuda-emulator.so.$$"
"$CXX" -std=c++17 -O2 -g -fPIC -shared -Wall -Wextra -Werror -Wno-unused-parameter \
  "$HERE/driver.cpp" "$HERE/streams.cpp" "$HERE/nvrtc.cpp" "$HERE/cublas.cpp" "$HERE/nccl.cpp" -o "$tmp" -ldl -lpthread
mv "$tmp" "$OUT/libkiln-cuda-emulator.so"
cp "$HERE/kiln_emu_kernel.h" "$HERE/kiln_emu_fibers.h" "$HERE/kernel_abi.h" "$OUT/"
for name in libcuda.so.1 libnvrtc.so libcublas.so libnccl.so.2; do ln -sf libkiln-cuda-emulator.so "$OUT/$name"; done
echo "$OUT"
